"""HR assistant tools over a real SQLite database (see ``db.py``).

Each run gets a fresh copy of the seeded database through the toolset's setup;
every tool takes the run's :class:`HRDatabase` as its ``RunContext`` deps.
Errors a user could cause (unknown employee, dates in the past, too few days
left) raise ``ValueError``/``LookupError`` with a clear message: the executor
shows it to the model.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

from routine import RunContext, Toolset

from .db import HRDatabase, fresh_database

__all__ = ["toolset", "Employee", "LeaveBalance", "LeaveRequest", "HRDatabase"]

toolset = Toolset("hr", setup=fresh_database)
LeaveType = Literal["annual", "sick", "parental", "unpaid"]


class Employee(BaseModel):
    id: int
    name: str
    email: str
    title: str
    department: str
    manager_id: int | None


class LeaveBalance(BaseModel):
    employee_id: int
    leave_type: LeaveType
    entitled: float
    taken: float
    remaining: float


class LeaveRequest(BaseModel):
    request_id: int
    employee_id: int
    leave_type: LeaveType
    start_date: date
    end_date: date
    days: float
    status: str


_EMPLOYEE_SQL = (
    "SELECT e.id, e.name, e.email, e.title, d.name AS department, e.manager_id "
    "FROM employees e JOIN departments d ON d.id = e.department_id "
)


@toolset.tool
def find_employee(ctx: RunContext[HRDatabase], name: str) -> Employee:
    """Find an employee by full name (case-insensitive) and return their record.

    Args:
        name: the employee's full name, as written in the request.
    """
    rows = ctx.deps.conn.execute(
        _EMPLOYEE_SQL + "WHERE lower(e.name) = lower(?)", (name.strip(),)
    ).fetchall()
    if not rows:
        rows = ctx.deps.conn.execute(
            _EMPLOYEE_SQL + "WHERE lower(e.name) LIKE lower(?) ORDER BY e.id LIMIT 6",
            (f"%{name.strip()}%",),
        ).fetchall()
    if not rows:
        raise LookupError(f"no employee named {name!r}")
    if len(rows) > 1:
        names = ", ".join(r["name"] for r in rows[:5])
        raise LookupError(f"{name!r} matches several employees ({names}); give the full name")
    return Employee(**dict(rows[0]))


@toolset.tool
def get_employee(ctx: RunContext[HRDatabase], employee_id: int) -> Employee:
    """Get an employee's record by id.

    Args:
        employee_id: the employee's numeric id.
    """
    row = ctx.deps.conn.execute(_EMPLOYEE_SQL + "WHERE e.id = ?", (employee_id,)).fetchone()
    if row is None:
        raise LookupError(f"no employee with id {employee_id}")
    return Employee(**dict(row))


@toolset.tool
def get_leave_balance(
    ctx: RunContext[HRDatabase], employee_id: int, leave_type: LeaveType = "annual"
) -> LeaveBalance:
    """Get how many days of a leave type an employee is entitled to, has taken and has left.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        leave_type: annual, sick, parental or unpaid.
    """
    row = ctx.deps.conn.execute(
        "SELECT employee_id, leave_type, entitled, taken FROM leave_balances "
        "WHERE employee_id = ? AND leave_type = ?",
        (employee_id, leave_type),
    ).fetchone()
    if row is None:
        raise LookupError(f"no employee with id {employee_id}")
    return LeaveBalance(**dict(row), remaining=row["entitled"] - row["taken"])


def _working_days(start: date, end: date) -> float:
    days = 0
    for offset in range((end - start).days + 1):
        if date.fromordinal(start.toordinal() + offset).weekday() < 5:
            days += 1
    return float(days)


@toolset.tool
def submit_leave_request(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    leave_type: LeaveType,
    start_date: date,
    end_date: date,
    reason: str = "",
) -> LeaveRequest:
    """Submit a leave request; the days are deducted from the balance at once.

    Args:
        employee_id: the employee's numeric id.
        leave_type: annual, sick, parental or unpaid.
        start_date: first day of leave (YYYY-MM-DD), not in the past.
        end_date: last day of leave (YYYY-MM-DD), on or after start_date.
        reason: optional note for the manager.
    """
    db = ctx.deps
    if start_date < db.today:
        raise ValueError(f"start_date {start_date} is in the past (today is {db.today})")
    if end_date < start_date:
        raise ValueError(f"end_date {end_date} is before start_date {start_date}")
    days = _working_days(start_date, end_date)
    if days == 0:
        raise ValueError("the period contains no working days")
    balance = get_leave_balance(ctx, employee_id, leave_type)
    if days > balance.remaining:
        raise ValueError(
            f"insufficient {leave_type} balance: {days:g} working days requested, "
            f"{balance.remaining:g} left"
        )
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO leave_requests (employee_id, leave_type, start_date, end_date, days,"
            " reason, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
            (employee_id, leave_type, start_date.isoformat(), end_date.isoformat(), days, reason),
        )
        db.conn.execute(
            "UPDATE leave_balances SET taken = taken + ? WHERE employee_id = ? AND leave_type = ?",
            (days, employee_id, leave_type),
        )
    return LeaveRequest(
        request_id=int(cur.lastrowid or 0), employee_id=employee_id, leave_type=leave_type,
        start_date=start_date, end_date=end_date, days=days, status="pending",
    )
