"""The HR scenario's SQLite database: schema, deterministic seed, a fresh copy per run.

The seeded database is built once per process (fixed seed, so every machine
gets the same rows) and each run gets its own in-memory copy through SQLite's
backup API: runs never see each other's writes.

The original tables (departments, employees, leave balances) are seeded first
with ``random.Random(seed)``, exactly as before; every table added later is
seeded afterwards by its own function with its own ``random.Random(seed + k)``,
so adding a table never changes the rows of another.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from routine.tools.sqlite import SeededSqlite, Snapshot, snapshot, state_digest

from ._content import ANNOUNCEMENTS, HANDBOOK

__all__ = ["HRDatabase", "fresh_database", "build_database", "SEED", "TODAY",
           "EXPENSE_POLICIES", "PAYSLIP_FIRST_MONTH", "PAYSLIP_LAST_MONTH"]

SEED = 20260601
TODAY = date(2026, 6, 1)  # the scenario's fixed "today": gold data never goes stale

SCHEMA = """
CREATE TABLE departments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    head_id INTEGER
);
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    department_id INTEGER NOT NULL REFERENCES departments(id),
    manager_id INTEGER REFERENCES employees(id),
    hire_date TEXT NOT NULL
);
CREATE TABLE leave_balances (
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    leave_type TEXT NOT NULL,
    entitled REAL NOT NULL,
    taken REAL NOT NULL,
    PRIMARY KEY (employee_id, leave_type)
);
CREATE TABLE leave_requests (
    id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    leave_type TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    days REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL
);
"""

FIRST = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Julia",
         "Kofi", "Lena", "Mateo", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
         "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Arjun", "Beatriz", "Carlos", "Daria"]
LAST = ["Andersen", "Baptiste", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hoffmann",
        "Ito", "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn",
        "Rossi", "Schmidt", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhang"]
DEPARTMENTS = ["Engineering", "Sales", "Finance", "Human Resources", "Marketing", "Operations",
               "Legal", "Customer Support"]
TITLES = ["Analyst", "Specialist", "Engineer", "Coordinator", "Associate", "Consultant"]
LEAVE_TYPES = {"annual": 25.0, "sick": 10.0, "parental": 20.0, "unpaid": 30.0}


def build_database(conn: sqlite3.Connection, seed: int = SEED, employees: int = 200) -> None:
    """Create the schema and seed it deterministically."""
    rng = random.Random(seed)
    conn.executescript(SCHEMA)
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    names = names[:employees]
    for dep_id, dep in enumerate(DEPARTMENTS, 1):
        conn.execute("INSERT INTO departments (id, name) VALUES (?, ?)", (dep_id, dep))
    heads: dict[int, int] = {}
    for emp_id, name in enumerate(names, 1):
        dep_id = (emp_id - 1) % len(DEPARTMENTS) + 1
        is_head = dep_id not in heads
        manager = None if is_head else heads[dep_id]
        title = "Head of " + DEPARTMENTS[dep_id - 1] if is_head else rng.choice(TITLES)
        hired = date(2015, 1, 1) + timedelta(days=rng.randrange(0, 4000))
        email = name.lower().replace(" ", ".") + "@example.com"
        conn.execute(
            "INSERT INTO employees (id, name, email, title, department_id, manager_id, hire_date)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (emp_id, name, email, title, dep_id, manager, hired.isoformat()),
        )
        if is_head:
            heads[dep_id] = emp_id
            conn.execute("UPDATE departments SET head_id = ? WHERE id = ?", (emp_id, dep_id))
        for leave_type, entitled in LEAVE_TYPES.items():
            taken = float(rng.randrange(0, int(entitled) + 1)) if leave_type != "unpaid" else 0.0
            conn.execute(
                "INSERT INTO leave_balances (employee_id, leave_type, entitled, taken)"
                " VALUES (?, ?, ?, ?)",
                (emp_id, leave_type, entitled, taken),
            )
    conn.commit()
    # Everything below was added later: own schema, own random streams (seed + k).
    conn.executescript(SCHEMA_EXTRA)
    _seed_leave_requests(conn, random.Random(seed + 1))
    _seed_payslips(conn, random.Random(seed + 2))
    _seed_expenses(conn, random.Random(seed + 3))
    _seed_handbook(conn)
    _seed_it_tickets(conn, random.Random(seed + 4))
    _seed_rooms(conn, random.Random(seed + 5))
    _seed_training(conn, random.Random(seed + 6))
    _seed_onboarding(conn, random.Random(seed + 7))
    conn.commit()


# ------------------------------------------------------------------ added tables
SCHEMA_EXTRA = """
CREATE TABLE payslips (
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    month TEXT NOT NULL,
    gross REAL NOT NULL,
    tax REAL NOT NULL,
    net REAL NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (employee_id, month)
);
CREATE TABLE expense_policies (
    category TEXT PRIMARY KEY,
    limit_amount REAL NOT NULL,
    currency TEXT NOT NULL,
    needs_receipt_over REAL NOT NULL
);
CREATE TABLE expense_claims (
    id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    category TEXT NOT NULL REFERENCES expense_policies(category),
    amount REAL NOT NULL,
    currency TEXT NOT NULL,
    expense_date TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE handbook_sections (
    section_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE announcements (
    id INTEGER PRIMARY KEY,
    date TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE it_tickets (
    id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    created_on TEXT NOT NULL
);
CREATE TABLE rooms (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    capacity INTEGER NOT NULL,
    floor INTEGER NOT NULL
);
CREATE TABLE room_bookings (
    id INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL REFERENCES rooms(id),
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    date TEXT NOT NULL,
    start_time TEXT NOT NULL,
    end_time TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX room_bookings_by_day ON room_bookings (date, room_id);
CREATE TABLE courses (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    topic TEXT NOT NULL,
    start_date TEXT NOT NULL,
    capacity INTEGER NOT NULL
);
CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    status TEXT NOT NULL,
    UNIQUE (employee_id, course_id)
);
CREATE TABLE onboarding_items (
    id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id),
    task TEXT NOT NULL,
    done INTEGER NOT NULL
);
"""


def _weekdays(start: date, end: date) -> list[date]:
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return [d for d in days if d.weekday() < 5]


def _add_working_days(start: date, count: int) -> date:
    """The date of the ``count``-th working day counting ``start`` (a weekday) as the first."""
    day, left = start, count - 1
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def _hire_dates(conn: sqlite3.Connection) -> dict[int, date]:
    rows = conn.execute("SELECT id, hire_date FROM employees ORDER BY id").fetchall()
    return {int(r[0]): date.fromisoformat(r[1]) for r in rows}


LEAVE_REASONS = {
    "annual": ["Family holiday", "Summer vacation", "Long weekend", "Wedding", "Moving house",
               "Visiting family", "City trip", ""],
    "sick": ["Flu", "Medical procedure", "Back pain", "Migraine", ""],
    "parental": ["Birth of a child", "Adoption", "Parental leave block"],
}


def _seed_leave_requests(conn: sqlite3.Connection, rng: random.Random) -> None:
    """~150 requests: history since September 2025 and upcoming ones until September 2026.

    A non-cancelled request in 2026 is part of the ``taken`` days of its balance (the
    balance is never changed here: requests are only seeded where ``taken`` covers them),
    so cancelling one can refund its days without the balance going negative."""
    hired = _hire_dates(conn)
    budget = {(int(r[0]), r[1]): float(r[2]) for r in conn.execute(
        "SELECT employee_id, leave_type, taken FROM leave_balances ORDER BY employee_id, leave_type")}
    booked: dict[int, list[tuple[date, date]]] = {}
    past_days = _weekdays(date(2025, 9, 1), TODAY - timedelta(days=3))
    future_days = _weekdays(TODAY + timedelta(days=1), date(2026, 9, 30))
    plan = [("past", 110), ("future", 40)]
    rows = []
    for when, wanted in plan:
        made = 0
        while made < wanted:
            emp = rng.randint(1, len(hired))
            if when == "past":
                leave_type = rng.choices(["annual", "sick", "parental"], [65, 30, 5])[0]
                start = rng.choice(past_days)
                status = rng.choices(["approved", "cancelled"], [85, 15])[0]
            else:
                leave_type = rng.choices(["annual", "parental"], [90, 10])[0]
                start = rng.choice(future_days)
                status = rng.choices(["pending", "approved", "cancelled"], [55, 35, 10])[0]
            length = rng.choice({"annual": [1, 2, 3, 5, 5, 8, 10], "sick": [1, 1, 2, 3, 4],
                                 "parental": [5, 5, 10, 15]}[leave_type])
            end = _add_working_days(start, length)
            if start < hired[emp] or end.year != start.year:
                continue
            if any(s <= end and start <= e for s, e in booked.get(emp, [])):
                continue
            counts = status != "cancelled" and start.year == TODAY.year
            if counts and budget[(emp, leave_type)] < length:
                continue
            if counts:
                budget[(emp, leave_type)] -= length
            booked.setdefault(emp, []).append((start, end))
            rows.append((emp, leave_type, start.isoformat(), end.isoformat(), float(length),
                         rng.choice(LEAVE_REASONS[leave_type]), status))
            made += 1
    rows.sort(key=lambda r: (r[2], r[0]))
    conn.executemany(
        "INSERT INTO leave_requests (employee_id, leave_type, start_date, end_date, days, reason,"
        " status) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


# Monthly gross salary (EUR) by title; heads of department share one band.
SALARY_BY_TITLE = {"Head": 9800.0, "Engineer": 6400.0, "Consultant": 6000.0, "Analyst": 5300.0,
                   "Specialist": 5000.0, "Coordinator": 4200.0, "Associate": 3900.0}
PAYSLIP_FIRST_MONTH = "2025-07"
PAYSLIP_LAST_MONTH = "2026-05"  # May's salary is paid; June's is not yet (TODAY is 1 June)


def _months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def payslip_tax(gross: float) -> float:
    """Income tax and social contributions withheld from a monthly gross salary."""
    social = 0.09 * gross
    income = 0.20 * min(max(gross - 1000.0, 0.0), 3000.0) + 0.38 * max(gross - 4000.0, 0.0)
    return round(social + income, 2)


def _seed_payslips(conn: sqlite3.Connection, rng: random.Random) -> None:
    """A payslip per employee and month from 2025-07 (or the hire month) to 2026-05;
    salaries follow the title and rise on 1 January 2026 (the annual review)."""
    months = _months(PAYSLIP_FIRST_MONTH, PAYSLIP_LAST_MONTH)
    rows = []
    for emp, title, hired in conn.execute(
            "SELECT id, title, hire_date FROM employees ORDER BY id").fetchall():
        band = SALARY_BY_TITLE["Head" if title.startswith("Head of") else title]
        gross_2025 = float(round(band * (1 + rng.uniform(-0.06, 0.10)) / 25) * 25)
        raise_pct = rng.choice([0.0, 0.02, 0.025, 0.03, 0.035, 0.04])
        gross_2026 = float(round(gross_2025 * (1 + raise_pct)))
        for month in months:
            if month < hired[:7]:
                continue
            gross = gross_2025 if month < "2026-01" else gross_2026
            tax = payslip_tax(gross)
            rows.append((emp, month, gross, tax, round(gross - tax, 2), "EUR"))
    conn.executemany(
        "INSERT INTO payslips (employee_id, month, gross, tax, net, currency)"
        " VALUES (?, ?, ?, ?, ?, ?)", rows)


# category: (limit per claim, receipt needed above); a receipt threshold of 0 means always.
EXPENSE_POLICIES = {
    "travel": (2000.0, 25.0),
    "meals": (75.0, 25.0),
    "equipment": (1500.0, 0.0),
    "training": (2500.0, 0.0),
    "other": (300.0, 25.0),
}
EXPENSE_DESCRIPTIONS = {
    "travel": ["Train tickets to client workshop", "Taxi from airport to hotel",
               "Mileage for customer visit", "Return train to regional office",
               "Parking at trade fair", "Hotel night not booked by travel desk",
               "Airport transfer after late flight"],
    "meals": ["Dinner during business trip", "Lunch with prospective client",
              "Team lunch during offsite", "Breakfast at airport before early flight",
              "Working dinner with partner", "Meals on two-day client visit"],
    "equipment": ["Ergonomic desk chair for home office", "Height-adjustable desk",
                  "Noise-cancelling headset", "USB-C docking station", "Second monitor",
                  "Replacement laptop charger"],
    "training": ["Cloud architecture certification exam", "Conference ticket",
                 "Online course on negotiation", "Project management certification",
                 "Data engineering workshop", "Language course"],
    "other": ["Courier for signed contracts", "Printing of workshop materials",
              "Visa fee for business trip", "Stationery for team event",
              "Software subscription for one month", "Postage for customer samples"],
}
EXPENSE_RANGES = {"travel": (40, 1800), "meals": (12, 75), "equipment": (25, 1400),
                  "training": (150, 2400), "other": (10, 300)}


def _seed_expenses(conn: sqlite3.Connection, rng: random.Random) -> None:
    """The five category policies and 300 claims from July 2025 to May 2026; older claims
    are mostly paid, recent ones submitted or approved."""
    conn.executemany(
        "INSERT INTO expense_policies (category, limit_amount, currency, needs_receipt_over)"
        " VALUES (?, ?, 'EUR', ?)",
        [(cat, limit, receipt) for cat, (limit, receipt) in EXPENSE_POLICIES.items()])
    hired = _hire_dates(conn)
    days = [date(2025, 7, 1) + timedelta(days=n) for n in range((TODAY - date(2025, 7, 1)).days)]
    rows = []
    while len(rows) < 300:
        emp = rng.randint(1, len(hired))
        spent = rng.choice(days)
        if spent < hired[emp]:
            continue
        category = rng.choices(list(EXPENSE_POLICIES), [30, 35, 12, 8, 15])[0]
        low, high = EXPENSE_RANGES[category]
        amount = round(rng.uniform(low, high), 2)
        age = (TODAY - spent).days
        if age > 60:
            status = rng.choices(["paid", "rejected", "approved"], [80, 12, 8])[0]
        elif age > 30:
            status = rng.choices(["approved", "paid", "rejected", "submitted"], [45, 30, 10, 15])[0]
        else:
            status = rng.choices(["submitted", "approved", "rejected"], [60, 35, 5])[0]
        rows.append((emp, category, amount, spent.isoformat(),
                     rng.choice(EXPENSE_DESCRIPTIONS[category]), status))
    rows.sort(key=lambda r: (r[3], r[0]))
    conn.executemany(
        "INSERT INTO expense_claims (employee_id, category, amount, currency, expense_date,"
        " description, status) VALUES (?, ?, ?, 'EUR', ?, ?, ?)", rows)


def _seed_handbook(conn: sqlite3.Connection) -> None:
    """The handbook sections and announcements (fixed text, no randomness)."""
    conn.executemany("INSERT INTO handbook_sections (section_id, title, text) VALUES (?, ?, ?)",
                     HANDBOOK)
    conn.executemany("INSERT INTO announcements (date, title, body) VALUES (?, ?, ?)",
                     ANNOUNCEMENTS)


TICKET_DESCRIPTIONS = {
    "hardware": ["Laptop battery drains within two hours", "External monitor shows no signal",
                 "Keyboard keys stuck after coffee spill", "Laptop fan very loud and hot",
                 "Docking station does not charge the laptop", "Headset microphone not working",
                 "Request for a second monitor", "Cracked laptop screen"],
    "software": ["Spreadsheet application crashes when opening large files",
                 "Need a licence for a diagram editor", "Mail client does not sync calendar",
                 "Video calls freeze after a few minutes", "Update fails with an error",
                 "Request to install a statistics package", "PDF editor asks for activation"],
    "access": ["Cannot access the finance shared drive", "Locked out after password change",
               "Need access to the CRM for new role", "Multi-factor prompt not arriving",
               "Request admin rights for development tools", "Access to project workspace"],
    "network": ["VPN disconnects every few minutes", "Office Wi-Fi very slow on floor 3",
                "Cannot reach internal wiki from home", "No network on desk port in room"],
    "other": ["Suspicious email asking for bank details", "Question about printer setup",
              "Badge does not open floor 2 door", "Request for a shared mailbox"],
}


def _seed_it_tickets(conn: sqlite3.Connection, rng: random.Random) -> None:
    """120 tickets created from December 2025 to May 2026; older ones mostly resolved."""
    hired = _hire_dates(conn)
    start = date(2025, 12, 1)
    days = [start + timedelta(days=n) for n in range((TODAY - start).days)]
    rows = []
    for _ in range(120):
        emp = rng.randint(1, len(hired))
        created = rng.choice(days)
        category = rng.choices(list(TICKET_DESCRIPTIONS), [25, 30, 25, 12, 8])[0]
        priority = rng.choices(["low", "normal", "high"], [25, 55, 20])[0]
        age = (TODAY - created).days
        if age > 30:
            status = rng.choices(["resolved", "in_progress"], [92, 8])[0]
        elif age > 7:
            status = rng.choices(["resolved", "in_progress", "open"], [55, 30, 15])[0]
        else:
            status = rng.choices(["open", "in_progress", "resolved"], [60, 30, 10])[0]
        rows.append((emp, category, priority, rng.choice(TICKET_DESCRIPTIONS[category]), status,
                     created.isoformat()))
    rows.sort(key=lambda r: (r[5], r[0]))
    conn.executemany(
        "INSERT INTO it_tickets (employee_id, category, priority, description, status, created_on)"
        " VALUES (?, ?, ?, ?, ?, ?)", rows)


ROOMS = [  # (name, capacity, floor)
    ("Aurora", 2, 1), ("Birch", 4, 1), ("Cedar", 4, 2), ("Delta", 6, 2), ("Ember", 8, 2),
    ("Fjord", 8, 3), ("Granite", 10, 3), ("Harbor", 12, 3), ("Iris", 16, 4), ("Juniper", 30, 4),
]
BOOKING_TITLES = ["Team stand-up", "Sprint planning", "Client call", "Interview", "1:1",
                  "Budget review", "Design workshop", "Quarterly review", "Project kickoff",
                  "Training session", "Retrospective", "Vendor meeting", "Hiring panel"]


def _seed_rooms(conn: sqlite3.Connection, rng: random.Random) -> None:
    """Ten rooms and 150 bookings on the working days of June 2026, 08:00-18:00."""
    conn.executemany("INSERT INTO rooms (id, name, capacity, floor) VALUES (?, ?, ?, ?)",
                     [(i, *room) for i, room in enumerate(ROOMS, 1)])
    employees = len(_hire_dates(conn))
    days = _weekdays(TODAY, date(2026, 6, 30))
    taken: dict[tuple[str, int], list[tuple[int, int]]] = {}
    rows = []
    while len(rows) < 150:
        day = rng.choice(days).isoformat()
        room = rng.randint(1, len(ROOMS))
        start = rng.randrange(8 * 60, 17 * 60 + 1, 30)
        end = min(start + rng.choice([30, 60, 60, 60, 90, 120]), 18 * 60)
        if any(s < end and start < e for s, e in taken.get((day, room), [])):
            continue
        status = rng.choices(["booked", "cancelled"], [94, 6])[0]
        if status == "booked":
            taken.setdefault((day, room), []).append((start, end))
        rows.append((room, rng.randint(1, employees), day, f"{start // 60:02d}:{start % 60:02d}",
                     f"{end // 60:02d}:{end % 60:02d}", rng.choice(BOOKING_TITLES), status))
    rows.sort(key=lambda r: (r[2], r[3], r[0]))
    conn.executemany(
        "INSERT INTO room_bookings (room_id, employee_id, date, start_time, end_time, title,"
        " status) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


COURSES = [  # (title, topic, start date, seats); the first three have already started
    ("Security Awareness Essentials", "security", "2026-04-14", 30),
    ("Leadership Essentials", "leadership", "2026-05-12", 12),
    ("Python for Data Analysis", "python", "2026-05-26", 16),
    ("Security Awareness Essentials", "security", "2026-06-09", 30),
    ("Leadership Essentials", "leadership", "2026-06-16", 12),
    ("Effective Written Communication", "communication", "2026-06-18", 20),
    ("Introduction to Python Programming", "python", "2026-06-23", 16),
    ("SQL and Data Fundamentals", "data", "2026-07-01", 18),
    ("Security Awareness Essentials", "security", "2026-07-07", 30),
    ("Giving and Receiving Feedback", "communication", "2026-07-09", 14),
    ("Data Visualisation with Dashboards", "data", "2026-07-15", 15),
    ("Advanced Python: Testing and Packaging", "python", "2026-08-18", 12),
    ("Coaching Skills for Managers", "leadership", "2026-09-03", 10),
    ("Security Awareness Essentials", "security", "2026-09-08", 30),
    ("Presenting with Confidence", "communication", "2026-09-15", 12),
    ("Secure Coding Practices", "security", "2026-09-22", 20),
]
FULL_COURSE = 5  # the June cohort of Leadership Essentials has no seat left
ONE_SEAT_LEFT = 7  # Introduction to Python Programming has exactly one


def _seed_training(conn: sqlite3.Connection, rng: random.Random) -> None:
    """The course catalogue and its enrolments ('completed' for courses already started)."""
    conn.executemany("INSERT INTO courses (id, title, topic, start_date, capacity)"
                     " VALUES (?, ?, ?, ?, ?)", [(i, *c) for i, c in enumerate(COURSES, 1)])
    employees = list(_hire_dates(conn))
    rows = []
    for course_id, (_, _, start, seats) in enumerate(COURSES, 1):
        if course_id == FULL_COURSE:
            count = seats
        elif course_id == ONE_SEAT_LEFT:
            count = seats - 1
        else:
            count = rng.randint(seats * 3 // 10, seats * 9 // 10)
        status = "completed" if start <= TODAY.isoformat() else "enrolled"
        rows += [(emp, course_id, status) for emp in sorted(rng.sample(employees, count))]
    conn.executemany("INSERT INTO enrollments (employee_id, course_id, status) VALUES (?, ?, ?)",
                     rows)


ONBOARDING_TASKS = [
    "Sign the employment contract",
    "Submit bank details for payroll",
    "Set up laptop and accounts with the IT service desk",
    "Read the employee handbook",
    "Meet your onboarding buddy",
    "Complete the security awareness course",
    "Complete the code of conduct course",
    "Hold the 90-day check-in with your manager",
]


def _seed_onboarding(conn: sqlite3.Connection, rng: random.Random) -> None:
    """A checklist for each of the 25 most recently hired employees; the more recent the
    hire, the fewer tasks are done."""
    recent = conn.execute(
        "SELECT id FROM employees ORDER BY hire_date DESC, id DESC LIMIT 25").fetchall()
    rows = []
    for rank, (emp,) in enumerate(recent):
        done = min(len(ONBOARDING_TASKS) - 1, rank // 4 + rng.randint(1, 3))
        rows += [(emp, task, int(i < done)) for i, task in enumerate(ONBOARDING_TASKS)]
    conn.executemany("INSERT INTO onboarding_items (employee_id, task, done) VALUES (?, ?, ?)",
                     rows)


_SEEDED = SeededSqlite(build_database)


@dataclass
class HRDatabase:
    """Per-run state of the HR tools: a private connection and the scenario's date."""

    conn: sqlite3.Connection
    today: date = TODAY

    def state_digest(self) -> str:
        """SHA-256 of the database's full state (schema and every row)."""
        return state_digest(self.conn)

    def state_snapshot(self) -> Snapshot:
        """Every row of every table (what the task protocol compares, column by column)."""
        return snapshot(self.conn)


@contextlib.contextmanager
def fresh_database() -> Iterator[HRDatabase]:
    """A private in-memory copy of the seeded database for one run."""
    with _SEEDED.connect() as conn:
        yield HRDatabase(conn)
