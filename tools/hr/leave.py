"""Leave: balances and leave requests (days are deducted when a request is made)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

from routine import RunContext

from ._toolset import require_employee, toolset
from .db import HRDatabase

__all__ = [
    "LeaveType", "LeaveBalance", "LeaveRequest", "get_leave_balance", "submit_leave_request",
    "list_leave_requests", "cancel_leave_request",
]

LeaveType = Literal["annual", "sick", "parental", "unpaid"]


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


_REQUEST_SQL = (
    "SELECT id AS request_id, employee_id, leave_type, start_date, end_date, days, status "
    "FROM leave_requests "
)


@toolset.tool
def list_leave_requests(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    status: Literal["pending", "approved", "cancelled", "all"] = "all",
) -> list[LeaveRequest]:
    """List an employee's leave requests, oldest first, optionally only those with one status.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        status: pending, approved or cancelled to keep only those requests, or all.
    """
    db = ctx.deps
    require_employee(db, employee_id)
    rows = db.conn.execute(
        _REQUEST_SQL + "WHERE employee_id = ? AND (? = 'all' OR status = ?) ORDER BY start_date, id",
        (employee_id, status, status),
    ).fetchall()
    return [LeaveRequest(**dict(r)) for r in rows]


@toolset.tool
def cancel_leave_request(
    ctx: RunContext[HRDatabase], employee_id: int, start_date: date
) -> LeaveRequest:
    """Cancel an employee's pending or approved leave request that starts on a given day.

    The request's days go back to the leave balance. Leave that has already started cannot
    be cancelled.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        start_date: the first day of the leave to cancel (YYYY-MM-DD).
    """
    db = ctx.deps
    require_employee(db, employee_id)
    rows = db.conn.execute(
        _REQUEST_SQL + "WHERE employee_id = ? AND start_date = ? ORDER BY id DESC",
        (employee_id, start_date.isoformat()),
    ).fetchall()
    active = [r for r in rows if r["status"] in ("pending", "approved")]
    if not active:
        if rows:
            raise ValueError(f"the leave request starting {start_date} is already cancelled")
        upcoming = [r["start_date"] for r in db.conn.execute(
            "SELECT start_date FROM leave_requests WHERE employee_id = ? AND start_date >= ?"
            " AND status IN ('pending', 'approved') ORDER BY start_date",
            (employee_id, db.today.isoformat()))]
        known = ("their upcoming requests start on " + ", ".join(upcoming) if upcoming
                 else "they have no upcoming pending or approved requests")
        raise LookupError(f"employee {employee_id} has no pending or approved leave request "
                          f"starting {start_date}; {known}")
    request = active[0]
    if start_date < db.today:
        raise ValueError(f"the leave starting {start_date} has already started (today is "
                         f"{db.today}); leave can only be cancelled before it starts")
    with db.conn:
        db.conn.execute("UPDATE leave_requests SET status = 'cancelled' WHERE id = ?",
                        (request["request_id"],))
        db.conn.execute(
            "UPDATE leave_balances SET taken = taken - ? WHERE employee_id = ? AND leave_type = ?",
            (request["days"], employee_id, request["leave_type"]),
        )
    return LeaveRequest(**{**dict(request), "status": "cancelled"})
