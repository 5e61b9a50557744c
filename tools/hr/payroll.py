"""Payroll: monthly payslips."""

from __future__ import annotations

import re

from pydantic import BaseModel

from routine import RunContext

from ._toolset import require_employee, toolset
from .db import HRDatabase

__all__ = ["Payslip", "PayslipSummary", "get_payslip", "list_payslips"]

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class Payslip(BaseModel):
    employee_id: int
    month: str
    gross: float
    tax: float
    net: float
    currency: str


class PayslipSummary(BaseModel):
    month: str
    net: float


def _range(db: HRDatabase, employee_id: int) -> tuple[str, str] | None:
    row = db.conn.execute("SELECT MIN(month) AS first, MAX(month) AS last FROM payslips"
                          " WHERE employee_id = ?", (employee_id,)).fetchone()
    return None if row["first"] is None else (row["first"], row["last"])


@toolset.tool
def get_payslip(ctx: RunContext[HRDatabase], employee_id: int, month: str) -> Payslip:
    """Get an employee's payslip for one month: gross salary, tax withheld and net pay.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        month: the month of the payslip as YYYY-MM.
    """
    db = ctx.deps
    month = month.strip()
    if not _MONTH_RE.match(month):
        raise ValueError(f"month {month!r} is not in YYYY-MM format")
    require_employee(db, employee_id)
    row = db.conn.execute(
        "SELECT employee_id, month, gross, tax, net, currency FROM payslips"
        " WHERE employee_id = ? AND month = ?", (employee_id, month)).fetchone()
    if row is None:
        span = _range(db, employee_id)
        if span is None:
            raise LookupError(f"employee {employee_id} has no payslips")
        first, last = span
        if month > last:
            note = " (this month's salary is paid on the 25th)" if month == f"{db.today:%Y-%m}" else ""
            raise LookupError(f"no payslip for {month}: payslips exist up to {last}{note}")
        raise LookupError(f"no payslip for {month}: employee {employee_id}'s payslips run "
                          f"from {first} to {last}")
    return Payslip(**dict(row))


@toolset.tool
def list_payslips(
    ctx: RunContext[HRDatabase], employee_id: int, year: int
) -> list[PayslipSummary]:
    """List the months of one year for which an employee has a payslip, with the net pay of each.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        year: the calendar year, four digits.
    """
    db = ctx.deps
    require_employee(db, employee_id)
    rows = db.conn.execute(
        "SELECT month, net FROM payslips WHERE employee_id = ? AND month LIKE ? ORDER BY month",
        (employee_id, f"{year:04d}-%")).fetchall()
    if not rows:
        span = _range(db, employee_id)
        where = f"payslips run from {span[0]} to {span[1]}" if span else "there are none"
        raise LookupError(f"employee {employee_id} has no payslips in {year}; {where}")
    return [PayslipSummary(**dict(r)) for r in rows]
