"""The HR toolset: 25 typed tools over the seeded SQLite database, one scenario at a time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from routine_tools.hr import HRDatabase, fresh_database, toolset
from routine_tools.hr.db import FIRST, LAST, TODAY

from routine import RunContext
from routine.tools.core import ToolArgumentsError

from .conftest import ROOT

TOOLS = {
    "find_employee", "get_employee", "get_department",
    "get_leave_balance", "submit_leave_request", "list_leave_requests", "cancel_leave_request",
    "get_payslip", "list_payslips",
    "get_expense_policy", "submit_expense_claim", "list_expense_claims",
    "search_handbook", "get_handbook_section", "list_announcements",
    "create_it_ticket", "get_it_ticket", "list_it_tickets",
    "find_available_rooms", "book_room", "cancel_room_booking",
    "list_training_courses", "enroll_in_course", "get_onboarding_checklist",
    "complete_onboarding_task",
}


@pytest.fixture
def db() -> Iterator[HRDatabase]:
    with fresh_database() as database:
        yield database


def call(db: HRDatabase, tool_name: str, **arguments: Any) -> Any:
    """Validate and run one tool the way the executor does."""
    return asyncio.run(toolset.tools[tool_name].invoke(arguments, RunContext(db)))


def fails(db: HRDatabase, tool_name: str, **arguments: Any) -> str:
    """The model-facing message of a tool call that must fail with a user error."""
    with pytest.raises((ValueError, LookupError)) as info:
        call(db, tool_name, **arguments)
    return str(info.value)


def one(db: HRDatabase, sql: str, *params: Any) -> Any:
    return db.conn.execute(sql, params).fetchone()


# ---------------------------------------------------------------- the toolset
def test_exactly_25_tools_with_output_schemas_and_described_parameters(hr_tools):
    assert len(toolset.tools) == 25 and set(toolset.tools) == TOOLS
    assert set(hr_tools.names()) == TOOLS
    for tool in toolset.tools.values():
        assert tool.output_schema is not None, tool.name
        assert tool.description and tool.description != tool.name, tool.name
        for name, prop in tool.parameters["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


def test_descriptions_carry_no_example_names():
    names = set(FIRST) | set(LAST)
    for tool in toolset.tools.values():
        text = tool.description + " ".join(
            p.get("description", "") for p in tool.parameters["properties"].values())
        assert not names & set(text.replace(",", " ").replace(".", " ").split()), tool.name


def test_date_parameters_and_fields_are_typed_as_dates():
    props = toolset.tools["submit_expense_claim"].parameters["properties"]
    assert props["expense_date"]["format"] == "date"
    assert toolset.tools["find_available_rooms"].parameters["properties"]["date"]["format"] == "date"
    course = toolset.tools["list_training_courses"].output_schema
    assert course["$defs"]["Course"]["properties"]["start_date"]["format"] == "date"


def test_original_tools_and_rows_are_unchanged(db):
    arjun = call(db, "find_employee", name="Arjun Garcia")
    assert arjun.id == 1
    balance = call(db, "get_leave_balance", employee_id=1)
    assert (balance.entitled, balance.taken, balance.remaining) == (25.0, 18.0, 7.0)
    assert call(db, "find_employee", name="Chen Okafor").manager_id is not None
    assert one(db, "SELECT COUNT(*) FROM employees")[0] == 200


# ---------------------------------------------------------------- the database
def test_seeded_tables_have_realistic_sizes(db):
    counts = {t: one(db, f"SELECT COUNT(*) FROM {t}")[0] for t in (
        "leave_requests", "payslips", "expense_policies", "expense_claims", "handbook_sections",
        "announcements", "it_tickets", "rooms", "room_bookings", "courses", "enrollments")}
    assert counts["leave_requests"] == 150 and counts["expense_claims"] == 300
    assert counts["it_tickets"] == 120 and counts["rooms"] == 10 and counts["room_bookings"] == 150
    assert counts["expense_policies"] == 5 and counts["announcements"] == 20
    assert 12 <= counts["handbook_sections"] <= 15 and 15 <= counts["courses"] <= 16
    assert counts["payslips"] > 2000 and counts["enrollments"] > 100
    assert one(db, "SELECT COUNT(DISTINCT employee_id) FROM onboarding_items")[0] == 25
    # every non-cancelled 2026 leave request is covered by its balance's taken days
    assert one(db, "SELECT COUNT(*) FROM (SELECT b.taken, SUM(r.days) AS booked"
                   " FROM leave_balances b JOIN leave_requests r USING (employee_id, leave_type)"
                   " WHERE r.status != 'cancelled' AND r.start_date >= '2026'"
                   " GROUP BY r.employee_id, r.leave_type) WHERE booked > taken")[0] == 0


def test_seeding_is_deterministic_and_a_write_changes_the_digest(db):
    with fresh_database() as other:
        assert db.state_digest() == other.state_digest()
        call(other, "create_it_ticket", employee_id=1, category="other", description="help")
        assert other.state_digest() != db.state_digest()
    with fresh_database() as third:
        assert third.state_digest() == db.state_digest()


def test_seeding_is_the_same_in_another_process(db):
    code = "from routine_tools.hr import fresh_database\nwith fresh_database() as d: print(d.state_digest())"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == db.state_digest()


def test_writes_are_isolated_between_fresh_databases(db):
    with fresh_database() as other:
        claim = call(db, "submit_expense_claim", employee_id=3, category="meals", amount=30.0,
                     expense_date="2026-05-30", description="Lunch with a customer")
        assert claim.claim_id in {c.claim_id for c in call(db, "list_expense_claims", employee_id=3)}
        assert claim.claim_id not in {c.claim_id
                                      for c in call(other, "list_expense_claims", employee_id=3)}


# ---------------------------------------------------------------- people
def test_get_department(db):
    engineering = call(db, "get_department", department_id=1)
    assert (engineering.name, engineering.head_id) == ("Engineering", 1)
    assert engineering.employee_count == one(
        db, "SELECT COUNT(*) FROM employees WHERE department_id = 1")[0]
    message = fails(db, "get_department", department_id=99)
    assert "no department with id 99" in message and "1 Engineering" in message


# ---------------------------------------------------------------- leave
def test_list_and_cancel_a_future_leave_request_refunds_the_days(db):
    row = one(db, "SELECT employee_id, leave_type, start_date, days FROM leave_requests"
                  " WHERE status = 'pending' AND start_date > ? ORDER BY start_date, id",
              TODAY.isoformat())
    emp, leave_type = row["employee_id"], row["leave_type"]
    pending = call(db, "list_leave_requests", employee_id=emp, status="pending")
    assert row["start_date"] in [r.start_date.isoformat() for r in pending]
    everything = call(db, "list_leave_requests", employee_id=emp)
    assert len(everything) >= len(pending)
    before = call(db, "get_leave_balance", employee_id=emp, leave_type=leave_type).taken
    cancelled = call(db, "cancel_leave_request", employee_id=emp, start_date=row["start_date"])
    assert cancelled.status == "cancelled" and cancelled.days == row["days"]
    after = call(db, "get_leave_balance", employee_id=emp, leave_type=leave_type).taken
    assert after == before - row["days"]
    assert fails(db, "cancel_leave_request", employee_id=emp, start_date=row["start_date"]) \
        == f"the leave request starting {row['start_date']} is already cancelled"


def test_submitted_leave_can_be_cancelled_and_the_balance_is_restored(db):
    call(db, "submit_leave_request", employee_id=1, leave_type="annual",
         start_date="2026-07-06", end_date="2026-07-10")
    assert call(db, "get_leave_balance", employee_id=1).remaining == 2.0
    call(db, "cancel_leave_request", employee_id=1, start_date="2026-07-06")
    assert call(db, "get_leave_balance", employee_id=1).remaining == 7.0


def test_cancel_leave_errors(db):
    message = fails(db, "cancel_leave_request", employee_id=1, start_date="2026-08-03")
    assert message.startswith("employee 1 has no pending or approved leave request starting "
                              "2026-08-03")
    past = one(db, "SELECT employee_id, start_date FROM leave_requests"
                   " WHERE status = 'approved' AND start_date < ? ORDER BY id", TODAY.isoformat())
    message = fails(db, "cancel_leave_request", employee_id=past["employee_id"],
                    start_date=past["start_date"])
    assert "has already started" in message and "today is 2026-06-01" in message
    assert fails(db, "list_leave_requests", employee_id=999) == "no employee with id 999"
    with pytest.raises(ToolArgumentsError):
        call(db, "list_leave_requests", employee_id=1, status="rejected")


# ---------------------------------------------------------------- payroll
def test_payslips(db):
    slip = call(db, "get_payslip", employee_id=1, month="2026-05")
    assert slip.currency == "EUR" and slip.gross > slip.net > 0
    assert round(slip.gross - slip.tax, 2) == slip.net
    year = call(db, "list_payslips", employee_id=1, year=2025)
    assert [s.month for s in year] == [f"2025-{m:02d}" for m in range(7, 13)]
    assert year[0].net == call(db, "get_payslip", employee_id=1, month="2025-07").net
    # heads of department earn more than associates
    associate = one(db, "SELECT id FROM employees WHERE title = 'Associate' ORDER BY id")[0]
    assert call(db, "get_payslip", employee_id=associate, month="2026-05").gross < slip.gross


def test_payslip_errors(db):
    assert fails(db, "get_payslip", employee_id=1, month="2026-07") \
        == "no payslip for 2026-07: payslips exist up to 2026-05"
    assert "payslips exist up to 2026-05" in fails(db, "get_payslip", employee_id=1,
                                                   month="2026-06")
    assert "not in YYYY-MM format" in fails(db, "get_payslip", employee_id=1, month="May 2026")
    assert "payslips run from 2025-07 to 2026-05" in fails(db, "list_payslips", employee_id=1,
                                                           year=2024)
    late = one(db, "SELECT employee_id, MIN(month) AS first FROM payslips GROUP BY employee_id"
                   " HAVING MIN(month) > '2025-07' ORDER BY employee_id")
    message = fails(db, "get_payslip", employee_id=late["employee_id"], month="2025-07")
    assert f"payslips run from {late['first']} to 2026-05" in message


# ---------------------------------------------------------------- expenses
def test_expense_policy_and_claims(db):
    meals = call(db, "get_expense_policy", category="meals")
    assert (meals.limit, meals.currency, meals.needs_receipt_over) == (75.0, "EUR", 25.0)
    assert call(db, "get_expense_policy", category="equipment").needs_receipt_over == 0.0
    claim = call(db, "submit_expense_claim", employee_id=55, category="travel", amount=123.456,
                 expense_date="2026-05-28", description="Train to the client workshop")
    assert claim.status == "submitted" and claim.amount == 123.46
    assert claim.expense_date == date(2026, 5, 28)
    submitted = call(db, "list_expense_claims", employee_id=55, status="submitted")
    assert claim in submitted and all(c.status == "submitted" for c in submitted)
    paid = call(db, "list_expense_claims", employee_id=55, status="paid")
    assert claim not in paid


def test_expense_claim_errors(db):
    args = dict(employee_id=55, category="meals", expense_date="2026-05-20",
                description="Dinner with a customer")
    assert fails(db, "submit_expense_claim", amount=120.0, **args) \
        == "amount 120.00 EUR is above the meals limit of 75.00 EUR per claim"
    assert fails(db, "submit_expense_claim", amount=0.0, **args) == "amount must be more than 0 (got 0)"
    message = fails(db, "submit_expense_claim", **{**args, "expense_date": "2026-06-02"}, amount=10.0)
    assert message == "expense_date 2026-06-02 is in the future (today is 2026-06-01)"
    assert one(db, "SELECT COUNT(*) FROM expense_claims")[0] == 300


# ---------------------------------------------------------------- policies
def test_handbook_sections_are_long_and_readable(db):
    rows = db.conn.execute("SELECT section_id, text FROM handbook_sections").fetchall()
    assert all(1500 < len(r["text"]) <= 3000 for r in rows)
    section = call(db, "get_handbook_section", section_id="annual-leave")
    assert "25 working days" in section.text and section.title.startswith("Annual Leave")
    message = fails(db, "get_handbook_section", section_id="holidays")
    assert "no handbook section 'holidays'" in message and "annual-leave" in message


@pytest.mark.parametrize(("query", "expected"), [
    ("carry over unused holiday days", "annual-leave"),
    ("expense claim receipt limit", "expenses"),
    ("phishing password", "it-security"),
    ("parental leave adoption", "parental-leave"),
    ("work from home abroad", "remote-work"),
    ("hotel flight train", "business-travel"),
    ("book a meeting room", "meeting-rooms"),
    ("payslip salary pay day", "payroll"),
    ("sick doctor certificate", "sick-leave"),
    ("overtime time off in lieu", "working-hours"),
])
def test_search_ranks_the_obvious_section_first(db, query, expected):
    hits = call(db, "search_handbook", query=query)
    assert hits[0].section_id == expected and 1 <= len(hits) <= 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_errors(db):
    assert "query is empty" in fails(db, "search_handbook", query="  ")
    assert "no handbook section matches" in fails(db, "search_handbook", query="zeppelin")


def test_announcements_newest_first_and_none_after_today(db):
    latest = call(db, "list_announcements")
    assert len(latest) == 5
    dates = [a.date for a in call(db, "list_announcements", limit=20)]
    assert dates == sorted(dates, reverse=True) and max(dates) <= TODAY and len(dates) == 20
    assert all(len(a.body) > 150 for a in latest)
    assert "between 1 and 20" in fails(db, "list_announcements", limit=0)


# ---------------------------------------------------------------- IT support
def test_it_tickets(db):
    ticket = call(db, "create_it_ticket", employee_id=3, category="network",
                  description="VPN drops every hour", priority="high")
    assert (ticket.status, ticket.priority, ticket.created_on) == ("open", "high", TODAY)
    assert call(db, "get_it_ticket", ticket_id=ticket.ticket_id) == ticket
    assert ticket in call(db, "list_it_tickets", employee_id=3, status="open")
    assert ticket not in call(db, "list_it_tickets", employee_id=3, status="resolved")
    seeded = call(db, "get_it_ticket", ticket_id=1)
    assert seeded.created_on < TODAY and seeded.status in ("open", "in_progress", "resolved")


def test_it_ticket_errors(db):
    assert fails(db, "get_it_ticket", ticket_id=9999) == "no IT ticket with number 9999"
    assert fails(db, "create_it_ticket", employee_id=999, category="other",
                 description="x") == "no employee with id 999"
    with pytest.raises(ToolArgumentsError, match="priority"):
        call(db, "create_it_ticket", employee_id=3, category="other", description="x",
             priority="urgent")


# ---------------------------------------------------------------- rooms
def test_find_book_and_cancel_a_room(db):
    slot = dict(date="2026-06-10", start_time="14:00", end_time="15:30")
    free = call(db, "find_available_rooms", capacity=6, **slot)
    assert free and all(r.capacity >= 6 for r in free)
    assert [(r.capacity, r.room_id) for r in free] == sorted((r.capacity, r.room_id) for r in free)
    room = free[0]
    booking = call(db, "book_room", employee_id=1, room_id=room.room_id, title="Planning", **slot)
    assert booking.status == "booked" and booking.room_name == room.name
    assert room not in call(db, "find_available_rooms", capacity=6, **slot)
    overlap = dict(slot, start_time="15:00", end_time="16:00")
    message = fails(db, "book_room", employee_id=2, room_id=room.room_id, title="Other", **overlap)
    assert "is already booked from 14:00 to 15:30 on 2026-06-10" in message
    cancelled = call(db, "cancel_room_booking", booking_id=booking.booking_id)
    assert cancelled.status == "cancelled"
    assert room in call(db, "find_available_rooms", capacity=6, **slot)
    assert fails(db, "cancel_room_booking", booking_id=booking.booking_id) \
        == f"booking {booking.booking_id} is already cancelled"


def test_seeded_bookings_block_their_rooms(db):
    row = one(db, "SELECT room_id, date, start_time, end_time FROM room_bookings"
                  " WHERE status = 'booked' ORDER BY id")
    free = call(db, "find_available_rooms", date=row["date"], start_time=row["start_time"],
                end_time=row["end_time"])
    assert row["room_id"] not in [r.room_id for r in free]


def test_room_errors(db):
    slot = dict(date="2026-06-10", start_time="14:00", end_time="15:00")
    assert fails(db, "find_available_rooms", **{**slot, "date": "2026-05-29"}) \
        == "date 2026-05-29 is in the past (today is 2026-06-01)"
    assert fails(db, "find_available_rooms", **{**slot, "end_time": "13:00"}) \
        == "end_time 13:00 is not after start_time 14:00"
    assert "24-hour HH:MM" in fails(db, "find_available_rooms", **{**slot, "start_time": "2pm"})
    assert call(db, "find_available_rooms", capacity=500, **slot) == []  # none that large
    assert "at least 1" in fails(db, "find_available_rooms", capacity=0, **slot)
    assert fails(db, "book_room", employee_id=1, room_id=42, title="x", **slot) \
        == "no room with id 42; rooms are numbered 1 to 10"
    assert fails(db, "cancel_room_booking", booking_id=9999) == "no room booking with number 9999"


# ---------------------------------------------------------------- training and onboarding
def test_courses_and_enrolment(db):
    courses = call(db, "list_training_courses")
    assert courses and all(c.start_date > TODAY for c in courses)
    python = call(db, "list_training_courses", topic="PYTHON")
    assert python and all("python" in (c.topic + c.title).lower() for c in python)
    course = next(c for c in courses if c.seats_left > 1)
    enrolled_emp = {r[0] for r in db.conn.execute(
        "SELECT employee_id FROM enrollments WHERE course_id = ?", (course.course_id,))}
    emp = next(e for e in range(1, 201) if e not in enrolled_emp)
    enrollment = call(db, "enroll_in_course", employee_id=emp, course_id=course.course_id)
    assert enrollment.status == "enrolled" and enrollment.course_id == course.course_id
    after = next(c for c in call(db, "list_training_courses") if c.course_id == course.course_id)
    assert after.seats_left == course.seats_left - 1
    assert "already enrolled" in fails(db, "enroll_in_course", employee_id=emp,
                                       course_id=course.course_id)


def test_enrolment_errors(db):
    full = next(c for c in call(db, "list_training_courses") if c.seats_left == 0)
    outsider = one(db, "SELECT id FROM employees WHERE id NOT IN"
                       " (SELECT employee_id FROM enrollments WHERE course_id = ?) ORDER BY id",
                   full.course_id)[0]
    assert "is full: no seats left" in fails(db, "enroll_in_course", employee_id=outsider,
                                             course_id=full.course_id)
    assert "no course with id 999" in fails(db, "enroll_in_course", employee_id=1, course_id=999)
    started = one(db, "SELECT id FROM courses WHERE start_date <= ? ORDER BY id",
                  TODAY.isoformat())[0]
    assert "enrolment is closed" in fails(db, "enroll_in_course", employee_id=1,
                                          course_id=started)
    assert call(db, "list_training_courses", topic="cooking") == []


def test_onboarding_checklist(db):
    newest = one(db, "SELECT id FROM employees ORDER BY hire_date DESC, id DESC")[0]
    items = call(db, "get_onboarding_checklist", employee_id=newest)
    assert len(items) >= 5 and any(not i.done for i in items)
    todo = next(i for i in items if not i.done)
    done = call(db, "complete_onboarding_task", employee_id=newest, item_id=todo.item_id)
    assert done.done and done.task == todo.task
    assert f"item {todo.item_id} ({todo.task}) is already done" == fails(
        db, "complete_onboarding_task", employee_id=newest, item_id=todo.item_id)
    others = one(db, "SELECT id FROM onboarding_items WHERE employee_id != ? ORDER BY id", newest)[0]
    assert "is not on employee" in fails(db, "complete_onboarding_task", employee_id=newest,
                                         item_id=others)


def test_onboarding_errors_for_employees_without_a_checklist(db):
    assert one(db, "SELECT COUNT(*) FROM onboarding_items WHERE employee_id = 1")[0] == 0
    message = fails(db, "get_onboarding_checklist", employee_id=1)
    assert message == ("employee 1 (Arjun Garcia) has no onboarding checklist; only recently "
                       "hired employees have one")
