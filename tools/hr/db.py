"""The HR scenario's SQLite database: schema, deterministic seed, a fresh copy per run.

The seeded database is built once per process (fixed seed, so every machine
gets the same rows) and each run gets its own in-memory copy through SQLite's
backup API: runs never see each other's writes.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["HRDatabase", "fresh_database", "build_database", "SEED", "TODAY"]

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


_template: sqlite3.Connection | None = None
_lock = threading.RLock()


def _template_db() -> sqlite3.Connection:
    global _template
    with _lock:
        if _template is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            build_database(conn)
            _template = conn
        return _template


@dataclass
class HRDatabase:
    """Per-run state of the HR tools: a private connection and the scenario's date."""

    conn: sqlite3.Connection
    today: date = TODAY


@contextlib.contextmanager
def fresh_database() -> Iterator[HRDatabase]:
    """A private in-memory copy of the seeded database for one run."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.row_factory = sqlite3.Row
    with _lock:
        _template_db().backup(conn)
    try:
        yield HRDatabase(conn)
    finally:
        conn.close()
