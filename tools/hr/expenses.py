"""Expenses: category policies and expense claims."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

from routine import RunContext

from ._toolset import require_employee, toolset
from .db import HRDatabase

__all__ = ["ExpenseCategory", "ExpensePolicy", "ExpenseClaim", "get_expense_policy",
           "submit_expense_claim", "list_expense_claims"]

ExpenseCategory = Literal["travel", "meals", "equipment", "training", "other"]


class ExpensePolicy(BaseModel):
    category: ExpenseCategory
    limit: float
    currency: str
    needs_receipt_over: float


class ExpenseClaim(BaseModel):
    claim_id: int
    employee_id: int
    category: ExpenseCategory
    amount: float
    currency: str
    expense_date: date
    description: str
    status: str


_CLAIM_SQL = ("SELECT id AS claim_id, employee_id, category, amount, currency, expense_date,"
              " description, status FROM expense_claims ")


@toolset.tool
def get_expense_policy(ctx: RunContext[HRDatabase], category: ExpenseCategory) -> ExpensePolicy:
    """Get the expense policy of a category: the limit per claim and when a receipt is needed.

    A receipt is needed for amounts above needs_receipt_over (0: always needed).

    Args:
        category: travel, meals, equipment, training or other.
    """
    row = ctx.deps.conn.execute(
        'SELECT category, limit_amount AS "limit", currency, needs_receipt_over'
        " FROM expense_policies WHERE category = ?", (category,)).fetchone()
    if row is None:
        raise LookupError(f"no expense policy for category {category!r}")
    return ExpensePolicy(**dict(row))


@toolset.tool
def submit_expense_claim(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    category: ExpenseCategory,
    amount: float,
    expense_date: date,
    description: str,
) -> ExpenseClaim:
    """Submit an expense claim for money an employee spent for work; it starts as submitted.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        category: travel, meals, equipment, training or other.
        amount: the amount spent, in EUR; at most the category's limit.
        expense_date: the day the money was spent (YYYY-MM-DD), not in the future.
        description: what the money was spent on and why.
    """
    db = ctx.deps
    require_employee(db, employee_id)
    if amount <= 0:
        raise ValueError(f"amount must be more than 0 (got {amount:g})")
    if expense_date > db.today:
        raise ValueError(f"expense_date {expense_date} is in the future (today is {db.today})")
    if not description.strip():
        raise ValueError("description is empty: say what the money was spent on")
    policy = get_expense_policy(ctx, category)
    amount = round(amount, 2)
    if amount > policy.limit:
        raise ValueError(f"amount {amount:.2f} {policy.currency} is above the {category} limit "
                         f"of {policy.limit:.2f} {policy.currency} per claim")
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO expense_claims (employee_id, category, amount, currency, expense_date,"
            " description, status) VALUES (?, ?, ?, ?, ?, ?, 'submitted')",
            (employee_id, category, amount, policy.currency, expense_date.isoformat(),
             description.strip()))
    return ExpenseClaim(claim_id=int(cur.lastrowid or 0), employee_id=employee_id,
                        category=category, amount=amount, currency=policy.currency,
                        expense_date=expense_date, description=description.strip(),
                        status="submitted")


@toolset.tool
def list_expense_claims(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    status: Literal["submitted", "approved", "rejected", "paid", "all"] = "all",
) -> list[ExpenseClaim]:
    """List an employee's expense claims, oldest first, optionally only those with one status.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        status: submitted, approved, rejected or paid to keep only those claims, or all.
    """
    db = ctx.deps
    require_employee(db, employee_id)
    rows = db.conn.execute(
        _CLAIM_SQL + "WHERE employee_id = ? AND (? = 'all' OR status = ?)"
        " ORDER BY expense_date, id", (employee_id, status, status)).fetchall()
    return [ExpenseClaim(**dict(r)) for r in rows]
