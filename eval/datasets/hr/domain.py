"""HR assistant gold data: query templates over the seeded HR database.

``routine dataset build eval/datasets/hr`` turns these templates into
train/dev/test JSONL files; see README.md beside this file for the split rule.
Samplers pick real entities by calling the HR tools themselves on the run's
fresh database, so they never depend on table layouts.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from routine_tools.hr import toolset

from routine import RunContext
from routine.eval.dataset import Domain, Template, UserSpec

TOOLS = toolset.tools
TODAY = date(2026, 6, 1)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def call(db: Any, name: str, **arguments: Any) -> Any:
    """Run an HR tool directly on the sampling database."""
    return TOOLS[name].function(RunContext(db), **arguments)


def employees(db: Any) -> list[Any]:
    return db.conn.execute("SELECT id, name FROM employees ORDER BY id").fetchall()


def some_employee(db: Any, rng: random.Random) -> dict[str, Any]:
    row = rng.choice(employees(db))
    return {"employee_name": row["name"], "employee_id": row["id"]}


def num(x: float) -> str:
    return f"{x:g}"


def month_text(month: str) -> str:
    year, mon = month.split("-")
    return f"{MONTHS[int(mon) - 1]} {year}"


def next_monday(rng: random.Random) -> date:
    start = TODAY + timedelta(days=(7 - TODAY.weekday()) % 7 or 7)
    return start + timedelta(weeks=rng.randrange(2, 12))


# ---------------------------------------------------------------- leave
def leave_balance(leave_type: str | None):
    def sample(db: Any, rng: random.Random) -> dict[str, Any]:
        values = some_employee(db, rng)
        values["leave_type"] = leave_type or rng.choice(["annual", "sick", "parental"])
        return values

    return sample


def balance_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    b = out["check_balance"]
    return (f"{values['employee_name']} has {num(b['remaining'])} of {num(b['entitled'])} "
            f"{b['leave_type']} leave days left.", [num(b["remaining"])])


def sample_booking(enough: bool):
    def sample(db: Any, rng: random.Random) -> dict[str, Any] | None:
        values = some_employee(db, rng)
        kind = rng.choice(["annual", "sick"]) if enough else rng.choice(["annual", "sick",
                                                                          "parental"])
        balance = call(db, "get_leave_balance", employee_id=values["employee_id"],
                       leave_type=kind)
        if enough != (balance.remaining > 0):
            return None
        start = next_monday(rng)
        days = 1 if not enough else rng.randrange(1, int(min(balance.remaining, 4)) + 1)
        end = start + timedelta(days=days - 1)
        values.update(leave_type=kind, start_date=start.isoformat(), end_date=end.isoformat(),
                      start_text=f"{start.day} {MONTHS[start.month - 1]}",
                      end_text=f"{end.day} {MONTHS[end.month - 1]}")
        return values

    return sample


def booked_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    if "submit" in out:
        r = out["submit"]
        return (f"Booked: request {r['request_id']}, {r['start_date']} to {r['end_date']}, "
                f"{num(r['days'])} working days.", [str(r["request_id"])])
    return (f"{values['employee_name']} has no {values['leave_type']} leave left, so nothing "
            "was booked.", ["no"])


def sample_cancellable(db: Any, rng: random.Random) -> dict[str, Any] | None:
    values = employee_among(db, rng, "SELECT employee_id FROM leave_requests WHERE start_date > ?"
                            " AND status IN ('pending', 'approved')", TODAY.isoformat())
    requests = call(db, "list_leave_requests", employee_id=values["employee_id"], status="all")
    future = [r for r in requests if r.status in ("pending", "approved")
              and r.start_date > TODAY]
    if not future:
        return None
    chosen = rng.choice(future)
    values.update(start_date=chosen.start_date.isoformat(),
                  start_text=f"{chosen.start_date.day} {MONTHS[chosen.start_date.month - 1]}")
    return values


def cancel_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    r = out["cancel"]
    return (f"Cancelled the leave from {r['start_date']} to {r['end_date']}; {num(r['days'])} "
            "days were given back.", [str(r["start_date"])])


def sample_history(status: str):
    def sample(db: Any, rng: random.Random) -> dict[str, Any] | None:
        values = employee_among(db, rng, "SELECT employee_id FROM leave_requests WHERE "
                                "status = ?", status)
        found = call(db, "list_leave_requests", employee_id=values["employee_id"], status=status)
        if not found:
            return None
        values["status"] = status
        return values

    return sample


def history_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    rows = out["list_requests"]
    first = rows[0]
    return (f"{len(rows)} request(s), e.g. {first['start_date']} to {first['end_date']} "
            f"({first['status']}).", [str(first["start_date"])])


LEAVE = [
    Template("leave.balance.typed", "leave", "train", "leave_balance", [
        "How many {leave_type} leave days does {employee_name} have left?",
        "What's {employee_name}'s remaining {leave_type} leave balance?",
        "Can you check how much {leave_type} leave {employee_name} still has?",
    ], leave_balance(None), balance_answer, count=6),
    Template("leave.balance.default", "leave", "train", "leave_balance", [
        "How many days of holiday does {employee_name} have left this year?",
        "{employee_name} wants to know their remaining vacation days.",
        "Check the annual leave balance for {employee_name}, please.",
    ], leave_balance("annual"), balance_answer, count=5),
    Template("leave.request.book", "leave", "train", "request_leave", [
        "Please book {leave_type} leave for {employee_name} from {start_date} to {end_date}.",
        "{employee_name} would like {leave_type} leave from {start_text} to {end_text} 2026.",
        "Submit a {leave_type} leave request for {employee_name}, {start_date} until {end_date}.",
    ], sample_booking(True), booked_answer, count=6),
    Template("leave.cancel", "leave", "dev", "cancel_leave", [
        "Cancel {employee_name}'s leave starting {start_date}.",
        "{employee_name} no longer needs the time off that begins on {start_text} 2026; "
        "please cancel it.",
    ], sample_cancellable, cancel_answer, count=5),
    Template("leave.history.pending", "leave", "test", "leave_history", [
        "Which leave requests of {employee_name} are still pending?",
        "Show me {employee_name}'s pending leave requests.",
        "Does {employee_name} have any leave requests waiting for approval?",
    ], sample_history("pending"), history_answer, count=5),
    Template("leave.request.none_left", "leave", "test", "request_leave", [
        "Book {leave_type} leave for {employee_name} on {start_date}.",
        "{employee_name} needs a day of {leave_type} leave on {start_text} 2026, can you "
        "request it?",
    ], sample_booking(False), booked_answer, count=4),
]


# ---------------------------------------------------------------- people
def sample_with_manager(db: Any, rng: random.Random) -> dict[str, Any] | None:
    values = some_employee(db, rng)
    return values if call(db, "get_employee", employee_id=values["employee_id"]).manager_id \
        else None


def manager_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    m = out["find_manager"]
    return f"{m['name']} ({m['title']}, {m['email']}).", [m["name"]]


def head_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    d, h = out["get_department"], out["get_head"]
    return f"{d['name']} is headed by {h['name']} ({h['email']}).", [h["name"]]


PEOPLE = [
    Template("people.manager", "people", "train", "manager_lookup", [
        "Who is {employee_name}'s manager?",
        "Who does {employee_name} report to?",
        "I need the contact details of {employee_name}'s line manager.",
    ], sample_with_manager, manager_answer, count=6),
    Template("people.department_head", "people", "dev", "department_head", [
        "Who heads the department {employee_name} works in?",
        "Who is in charge of {employee_name}'s department?",
    ], some_employee, head_answer, count=5),
    Template("people.manager.email", "people", "test", "manager_lookup", [
        "What's the email address of the person {employee_name} reports to?",
        "Give me the name and email of {employee_name}'s boss.",
    ], sample_with_manager, manager_answer, count=5),
]


# ---------------------------------------------------------------- payroll
def sample_month(iso: bool, months: tuple[str, ...] = ("2025-09", "2025-12", "2026-01",
                                                        "2026-03", "2026-04", "2026-05")):
    def sample(db: Any, rng: random.Random) -> dict[str, Any]:
        values = some_employee(db, rng)
        month = rng.choice(months)
        values.update(month=month, month_text=month if iso else month_text(month))
        return values

    return sample


def payslip_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    p = out["get_payslip"]
    return (f"{values['month']}: gross {num(p['gross'])}, tax {num(p['tax'])}, net "
            f"{num(p['net'])} {p['currency']}.", [num(p["net"])])


def sample_year(db: Any, rng: random.Random) -> dict[str, Any]:
    values = some_employee(db, rng)
    values["year"] = rng.choice([2025, 2026])
    return values


def summary_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    rows = out["list_payslips"]
    total = round(sum(r["net"] for r in rows), 2)
    return (f"{len(rows)} payslips in {values['year']}, net total {num(total)}.",
            [str(len(rows))])


PAYROLL = [
    Template("payroll.payslip.month", "payroll", "train", "payslip_lookup", [
        "Show me {employee_name}'s payslip for {month_text}.",
        "What did {employee_name} earn in {month_text}, gross and net?",
        "Pull up the {month_text} payslip of {employee_name}.",
    ], sample_month(False), payslip_answer, count=6),
    Template("payroll.payslip.net", "payroll", "train", "payslip_lookup", [
        "What was {employee_name}'s net pay in {month_text}?",
        "How much tax was deducted from {employee_name}'s salary in {month_text}?",
    ], sample_month(False), payslip_answer, count=5),
    Template("payroll.summary.year", "payroll", "dev", "pay_summary", [
        "Give me an overview of {employee_name}'s net pay in {year}.",
        "List {employee_name}'s payslips for {year}.",
    ], sample_year, summary_answer, count=5),
    Template("payroll.payslip.iso", "payroll", "test", "payslip_lookup", [
        "Payslip {month_text} for {employee_name}, please.",
        "I need {employee_name}'s salary statement for {month_text}.",
    ], sample_month(True), payslip_answer, count=5),
    Template("payroll.summary.total", "payroll", "test", "pay_summary", [
        "How much net pay did {employee_name} receive in total in {year}?",
        "Sum up {employee_name}'s take-home pay for {year}.",
    ], sample_year, summary_answer, count=5),
]


# ---------------------------------------------------------------- expenses
EXPENSES_WHAT = {"travel": ["a train ticket to the client", "a taxi from the airport"],
                 "meals": ["a team lunch", "dinner with a customer"],
                 "equipment": ["a new keyboard", "a laptop stand"],
                 "training": ["a conference ticket", "an online course"],
                 "other": ["printing posters", "a courier delivery"]}


def sample_expense(within: bool, categories: tuple[str, ...]):
    def sample(db: Any, rng: random.Random) -> dict[str, Any]:
        values = some_employee(db, rng)
        category = rng.choice(categories)
        limit = call(db, "get_expense_policy", category=category).limit
        amount = round(rng.uniform(0.2, 0.9) * limit, 2) if within else \
            round(limit * rng.uniform(1.2, 2.0))
        day = TODAY - timedelta(days=rng.randrange(1, 40))
        values.update(category=category, amount=float(amount), expense_date=day.isoformat(),
                      description=rng.choice(EXPENSES_WHAT[category]),
                      amount_text=f"{amount:.2f}".removesuffix(".00"))
        return values

    return sample


def expense_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    if "submit" in out:
        c = out["submit"]
        return f"Filed claim {c['claim_id']} ({c['status']}).", [str(c["claim_id"])]
    limit = out["get_policy"]["limit"]
    return f"Not filed: {num(values['amount'])} is above the {num(limit)} limit.", [num(limit)]


def sample_claims(status: str):
    def sample(db: Any, rng: random.Random) -> dict[str, Any] | None:
        values = some_employee(db, rng)
        if not call(db, "list_expense_claims", employee_id=values["employee_id"], status=status):
            return None
        values["status"] = status
        values["status_text"] = {"submitted": "still waiting for approval", "all": "",
                                 "paid": "paid out"}.get(status, status)
        return values

    return sample


def claims_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    rows = out["list_claims"]
    listed = "; ".join(f"claim {r['claim_id']}: {r['status']}" for r in rows)
    return f"{len(rows)} claim(s): {listed}.", [str(rows[0]["claim_id"])]


EXPENSES = [
    Template("expenses.submit.ok", "expenses", "train", "submit_expense", [
        "File a {category} expense of {amount_text} for {employee_name}: {description} on "
        "{expense_date}.",
        "{employee_name} spent {amount_text} on {description} ({category}) on {expense_date}; "
        "please submit the claim.",
    ], sample_expense(True, ("travel", "equipment", "other")), expense_answer, count=6),
    Template("expenses.submit.over", "expenses", "train", "submit_expense", [
        "Submit a {category} claim of {amount_text} for {employee_name} for {description}, dated "
        "{expense_date}.",
        "Claim {amount_text} in {category} expenses for {employee_name} ({description}, "
        "{expense_date}).",
    ], sample_expense(False, ("travel", "meals", "equipment")), expense_answer, count=5),
    Template("expenses.status.all", "expenses", "train", "expense_status", [
        "What expense claims has {employee_name} filed?",
        "List all of {employee_name}'s expense claims.",
    ], sample_claims("all"), claims_answer, count=5),
    Template("expenses.status.filtered", "expenses", "dev", "expense_status", [
        "Which of {employee_name}'s expense claims are {status_text}?",
        "Show {employee_name}'s {status} expense claims.",
    ], sample_claims("paid"), claims_answer, count=5),
    Template("expenses.submit.meals", "expenses", "test", "submit_expense", [
        "{employee_name} paid {amount_text} for {description} on {expense_date}. File it under "
        "{category}.",
        "Please claim back {amount_text} ({category}: {description}, {expense_date}) for "
        "{employee_name}.",
    ], sample_expense(True, ("meals", "training")), expense_answer, count=5),
    Template("expenses.submit.over.test", "expenses", "test", "submit_expense", [
        "{employee_name} needs {amount_text} reimbursed for {description} ({category}) from "
        "{expense_date}.",
        "Put in a {category} expense claim for {employee_name}: {amount_text}, {description}, "
        "{expense_date}.",
    ], sample_expense(False, ("training", "other")), expense_answer, count=4),
]


# ---------------------------------------------------------------- policies
TOPICS_TRAIN = ["remote work", "travel expenses", "parental leave", "sick leave"]
TOPICS_TEST = ["IT security", "training budget", "code of conduct", "annual leave"]


def sample_topic(topics: list[str]):
    def sample(db: Any, rng: random.Random) -> dict[str, Any]:
        return {"topic": rng.choice(topics)}

    return sample


def policy_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    section = out["read_section"]
    return f"According to the handbook section '{section['title']}': ...", [section["title"]]


def sample_limit(db: Any, rng: random.Random) -> dict[str, Any]:
    return {"limit": rng.choice([2, 3, 4, 5])}


def announcements_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    rows = out["list_announcements"]
    return "; ".join(f"{a['date']}: {a['title']}" for a in rows), [rows[0]["title"]]


POLICIES = [
    Template("policies.question.what", "policies", "train", "policy_question", [
        "What does the handbook say about {topic}?",
        "What's our policy on {topic}?",
        "Can you explain the company rules for {topic}?",
    ], sample_topic(TOPICS_TRAIN), policy_answer, count=4),
    Template("policies.question.how", "policies", "train", "policy_question", [
        "How does {topic} work here?",
        "I have a question about {topic}: what am I allowed to do?",
    ], sample_topic(TOPICS_TRAIN), policy_answer, count=4),
    Template("policies.announcements.latest", "policies", "train", "announcements", [
        "What are the {limit} latest company announcements?",
        "Show me the last {limit} announcements.",
    ], sample_limit, announcements_answer, count=4),
    Template("policies.announcements.news", "policies", "dev", "announcements", [
        "Any news from the company? Give me the {limit} most recent items.",
        "What has been announced lately? Top {limit}, please.",
    ], sample_limit, announcements_answer, count=4),
    Template("policies.question.test", "policies", "test", "policy_question", [
        "Where can I read about {topic} in the handbook?",
        "Tell me the rules on {topic}.",
        "What is the company's guidance on {topic}?",
    ], sample_topic(TOPICS_TEST), policy_answer, count=4),
]


# ---------------------------------------------------------------- IT support
PROBLEMS = {
    "hardware": ["my laptop screen flickers", "the docking station does not charge my laptop"],
    "software": ["the spreadsheet app crashes on start", "I cannot install the VPN client"],
    "access": ["I lost access to the finance share", "my account is locked after a password "
               "change"],
    "network": ["the office wifi drops every few minutes", "I cannot reach the intranet"],
}


def sample_problem(categories: tuple[str, ...], priority: str | None):
    def sample(db: Any, rng: random.Random) -> dict[str, Any]:
        values = some_employee(db, rng)
        category = rng.choice(categories)
        values.update(category=category, description=rng.choice(PROBLEMS[category]),
                      priority=priority or "normal")
        return values

    return sample


def ticket_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    t = out["create_ticket"]
    return f"Opened ticket {t['ticket_id']} ({t['status']}).", [str(t["ticket_id"])]


def sample_ticket(db: Any, rng: random.Random) -> dict[str, Any] | None:
    values = some_employee(db, rng)
    tickets = call(db, "list_it_tickets", employee_id=values["employee_id"], status="all")
    if not tickets:
        return None
    values["ticket_id"] = rng.choice(tickets).ticket_id
    return values


def status_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    t = out["get_ticket"]
    status = t["status"].replace("_", " ")
    return f"Ticket {t['ticket_id']} is {status}.", [status]


def employee_among(db: Any, rng: random.Random, sql: str, *params: Any) -> dict[str, Any]:
    """A random employee among those whose ids the query returns."""
    ids = sorted({r[0] for r in db.conn.execute(sql, params)})
    row = db.conn.execute("SELECT id, name FROM employees WHERE id = ?",
                          (rng.choice(ids),)).fetchone()
    return {"employee_name": row["name"], "employee_id": row["id"]}


def sample_open(db: Any, rng: random.Random) -> dict[str, Any]:
    return employee_among(db, rng, "SELECT employee_id FROM it_tickets WHERE status = 'open'")


def open_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    rows = out["list_tickets"]
    ids = ", ".join(str(r["ticket_id"]) for r in rows)
    return (f"{len(rows)} open ticket(s): {ids}.", [str(rows[0]["ticket_id"])])


IT = [
    Template("it.report.normal", "it", "train", "report_it_issue", [
        "Open an IT ticket for {employee_name}: {description}.",
        "{employee_name} reports that {description}. Please log it with IT.",
    ], sample_problem(("hardware", "software"), None), ticket_answer, count=6),
    Template("it.report.urgent", "it", "train", "report_it_issue", [
        "Urgent for {employee_name}: {description}. Raise a high-priority ticket.",
        "High priority IT issue from {employee_name} - {description}.",
    ], sample_problem(("access", "network"), "high"), ticket_answer, count=5),
    Template("it.status", "it", "dev", "ticket_status", [
        "What's the status of IT ticket {ticket_id}?",
        "Has ticket #{ticket_id} been resolved yet?",
    ], sample_ticket, status_answer, count=5),
    Template("it.open", "it", "test", "open_tickets", [
        "Which IT tickets of {employee_name} are still open?",
        "Does {employee_name} have open IT tickets?",
    ], sample_open, open_answer, count=4),
    Template("it.report.test", "it", "test", "report_it_issue", [
        "Please create a support ticket for {employee_name}, the problem: {description}.",
        "Log an IT incident: {employee_name} says {description}.",
    ], sample_problem(("network", "access", "hardware"), None), ticket_answer, count=5),
]


# ---------------------------------------------------------------- rooms
def sample_room_request(free: bool, capacities: tuple[int, ...]):
    def sample(db: Any, rng: random.Random) -> dict[str, Any] | None:
        values = some_employee(db, rng)
        day = TODAY + timedelta(days=rng.randrange(1, 28))
        if day.weekday() >= 5:
            return None
        hour = rng.randrange(9, 17)
        start, end = f"{hour:02d}:00", f"{hour + 1:02d}:00"
        capacity = rng.choice(capacities)
        rooms = call(db, "find_available_rooms", date=day, start_time=start, end_time=end,
                     capacity=capacity)
        if bool(rooms) != free:
            return None
        values.update(date=day.isoformat(), start_time=start, end_time=end, capacity=capacity,
                      title=rng.choice(["Planning", "1:1", "Sprint review", "Interview"]),
                      day_text=f"{day.day} {MONTHS[day.month - 1]}")
        return values

    return sample


def room_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    if "book" in out:
        b = out["book"]
        return f"Booked room {b['room_id']} (booking {b['booking_id']}).", [str(b["booking_id"])]
    return "No room with enough seats is free then.", ["no"]


def sample_active_booking(db: Any, rng: random.Random) -> dict[str, Any] | None:
    rows = db.conn.execute("SELECT id FROM room_bookings WHERE status = 'booked' AND date > ? "
                           "ORDER BY id", (TODAY.isoformat(),)).fetchall()
    return {"booking_id": rng.choice(rows)["id"]} if rows else None


def cancel_booking_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    b = out["cancel"]
    return f"Booking {b['booking_id']} is cancelled.", [str(b["booking_id"])]


ROOMS = [
    Template("rooms.book.small", "rooms", "train", "book_meeting_room", [
        "Book a room for {capacity} people for {employee_name} on {date} from {start_time} to "
        "{end_time}, title '{title}'.",
        "{employee_name} needs a meeting room for {capacity} on {day_text} 2026, "
        "{start_time}-{end_time} ({title}).",
    ], sample_room_request(True, (2, 4, 6)), room_answer, count=6),
    Template("rooms.book.large", "rooms", "train", "book_meeting_room", [
        "Find and book a room for {capacity} people on {date}, {start_time} to {end_time}, "
        "for {employee_name}'s '{title}'.",
    ], sample_room_request(False, (40, 60)), room_answer, count=4),
    Template("rooms.cancel", "rooms", "dev", "cancel_room_booking", [
        "Cancel room booking {booking_id}.",
        "We don't need booking #{booking_id} anymore, please release the room.",
    ], sample_active_booking, cancel_booking_answer, count=5),
    Template("rooms.book.test", "rooms", "test", "book_meeting_room", [
        "Reserve a meeting room on {day_text} 2026 from {start_time} until {end_time} for "
        "{capacity} people. It's for {employee_name}, meeting '{title}'.",
        "Can you get {employee_name} a room ({capacity} seats) on {date} between {start_time} "
        "and {end_time}? Title: {title}.",
    ], sample_room_request(True, (3, 8, 10)), room_answer, count=5),
    Template("rooms.cancel.test", "rooms", "test", "cancel_room_booking", [
        "Please drop the room reservation with number {booking_id}.",
        "Booking {booking_id} can be cancelled.",
    ], sample_active_booking, cancel_booking_answer, count=4),
]


# ---------------------------------------------------------------- training & onboarding
def sample_course(found: bool, topics: tuple[str, ...]):
    def sample(db: Any, rng: random.Random) -> dict[str, Any] | None:
        values = some_employee(db, rng)
        topic = rng.choice(topics)
        courses = call(db, "list_training_courses", topic=topic)
        if bool(courses) != found:
            return None
        if found:
            enrolled = db.conn.execute(
                "SELECT 1 FROM enrollments WHERE employee_id = ? AND course_id = ?",
                (values["employee_id"], courses[0].course_id)).fetchone()
            if enrolled or courses[0].seats_left <= 0:
                return None
        values["topic"] = topic
        return values

    return sample


def enroll_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    if "enroll" in out:
        course = out["find_courses"][0]
        return f"Enrolled in '{course['title']}' starting {course['start_date']}.", [
            course["title"]]
    return f"There is no upcoming course on {values['topic']}.", ["no"]


def sample_onboarding(open_only: bool):
    def sample(db: Any, rng: random.Random) -> dict[str, Any] | None:
        values = some_employee(db, rng)
        try:
            items = call(db, "get_onboarding_checklist", employee_id=values["employee_id"])
        except LookupError:
            return None
        todo = [i for i in items if not i.done]
        if open_only:
            if not todo:
                return None
            item = rng.choice(todo)
            values.update(item_id=item.item_id, task=item.task)
        return values

    return sample


def progress_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    items = out["checklist"]
    done = sum(i["done"] for i in items)
    return f"{done} of {len(items)} onboarding tasks done.", [f"{done}"]


def complete_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    return f"Marked '{out['complete']['task']}' as done.", [out["complete"]["task"]]


TRAINING = [
    Template("training.enroll.ok", "training", "train", "enroll_training", [
        "Sign {employee_name} up for a {topic} course.",
        "{employee_name} wants to take training on {topic}; please enrol them.",
    ], sample_course(True, ("security", "leadership", "python", "data")), enroll_answer, count=6),
    Template("training.enroll.none", "training", "train", "enroll_training", [
        "Enrol {employee_name} in a course about {topic}.",
    ], sample_course(False, ("pottery", "sailing", "origami", "calligraphy")), enroll_answer,
        count=4),
    Template("training.onboarding.progress", "training", "dev", "onboarding_progress", [
        "How far along is {employee_name} with onboarding?",
        "What onboarding tasks does {employee_name} still have to do?",
    ], sample_onboarding(False), progress_answer, count=5),
    Template("training.onboarding.complete", "training", "test", "complete_onboarding_task", [
        "{employee_name} finished onboarding task {item_id} ({task}); mark it done.",
        "Please tick off checklist item {item_id} for {employee_name}.",
    ], sample_onboarding(True), complete_answer, count=5),
    Template("training.enroll.test", "training", "test", "enroll_training", [
        "Is there a {topic} training coming up? If so, book {employee_name} on it.",
        "Register {employee_name} for the next {topic} course.",
    ], sample_course(True, ("communication", "data", "security")), enroll_answer, count=5),
]


# ---------------------------------------------------------------- outside every routine
def fixed(**values: Any):
    def sample(db: Any, rng: random.Random) -> dict[str, Any]:
        return {**some_employee(db, rng), **values}

    return sample


def refusal(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    return "Sorry, I can't help with that: it is outside the HR processes I support.", []


def ask_back(what: str):
    def answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
        return f"Could you tell me {what}?", []

    return answer


OTHER = [
    Template("other.refuse.offtopic", "other", "train", None, [
        "Order a pizza to the office for {employee_name}.",
        "What will the weather be like tomorrow? Ask for {employee_name}.",
        "Write a poem about {employee_name}.",
    ], fixed(), refusal, kind="refuse", count=4),
    Template("other.refuse.privileged", "other", "test", None, [
        "Raise {employee_name}'s salary by 10 percent.",
        "Delete {employee_name}'s employee record.",
        "Give {employee_name} admin rights to the payroll system.",
    ], fixed(), refusal, kind="refuse", count=4),
    Template("other.ask.leave_no_name", "other", "train", None, [
        "How many leave days do I have left?",
        "Book me three days off next month.",
        "What's my remaining sick leave?",
    ], fixed(), ask_back("your full name (and the dates, if you want to book)"), kind="ask",
        count=3),
    Template("other.ask.payslip_no_month", "other", "dev", None, [
        "Show me {employee_name}'s payslip.",
        "What did {employee_name} earn?",
    ], fixed(), ask_back("which month you mean"), kind="ask", count=3),
    Template("other.ask.room_no_time", "other", "test", None, [
        "Book a meeting room for {employee_name}.",
        "{employee_name} needs a room for a meeting.",
    ], fixed(), ask_back("the day, the start and end time and how many people"), kind="ask",
        count=3),
]

# ---------------------------------------------------------------- conversations
# The first message leaves the dates out; a simulated user gives them when asked and says
# yes (or no) to the booking (`routine eval --protocols conversation`).
def declined_answer(values: dict[str, Any], out: dict[str, Any]) -> tuple[str, list[str]]:
    return "Nothing was booked.", []


DATES = {"start_date": "from {value}", "end_date": "until {value}"}

CONVERSATIONS = [
    Template("talk.leave.dates_later", "conversations", "train", "request_leave", [
        "I'd like to book some {leave_type} leave for {employee_name}.",
        "{employee_name} wants to take {leave_type} leave.",
    ], sample_booking(True), booked_answer, count=4,
        user=UserSpec(holds=["start_date", "end_date"], says=DATES)),
    Template("talk.leave.dates_later_b", "conversations", "test", "request_leave", [
        "Please request {leave_type} leave for {employee_name}.",
        "Can you put in a {leave_type} leave request for {employee_name}?",
    ], sample_booking(True), booked_answer, count=4,
        user=UserSpec(holds=["start_date", "end_date"], says=DATES)),
    Template("talk.leave.declines", "conversations", "test", "request_leave", [
        "Book {leave_type} leave for {employee_name} from {start_date} to {end_date}.",
    ], sample_booking(True), declined_answer, count=4,
        user=UserSpec(confirms=False)),
]

DOMAIN = Domain(
    name="hr",
    toolsets=["routine_tools.hr"],
    routines_dir="routines/hr",
    templates=LEAVE + PEOPLE + PAYROLL + EXPENSES + POLICIES + IT + ROOMS + TRAINING + OTHER
    + CONVERSATIONS,
    seed=20260601,
    # free text is matched by word overlap; ids, dates, amounts and enums exactly (loosely)
    arg_modes={"create_it_ticket.description": "fuzzy", "submit_expense_claim.description":
               "fuzzy", "book_room.title": "fuzzy", "search_handbook.query": "fuzzy",
               "submit_leave_request.reason": "fuzzy"},
    # the free-text columns those arguments fill: compared the same way in the end state
    free_text={"it_tickets.description": "create_it_ticket.description",
               "expense_claims.description": "submit_expense_claim.description",
               "room_bookings.title": "book_room.title",
               "leave_requests.reason": "submit_leave_request.reason"},
)
