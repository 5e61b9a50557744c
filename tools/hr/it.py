"""IT support: service desk tickets."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

from routine import RunContext

from ._toolset import require_employee, toolset
from .db import HRDatabase

__all__ = ["TicketCategory", "TicketPriority", "Ticket", "create_it_ticket", "get_it_ticket",
           "list_it_tickets"]

TicketCategory = Literal["hardware", "software", "access", "network", "other"]
TicketPriority = Literal["low", "normal", "high"]


class Ticket(BaseModel):
    ticket_id: int
    employee_id: int
    category: TicketCategory
    priority: TicketPriority
    description: str
    status: Literal["open", "in_progress", "resolved"]
    created_on: date


_TICKET_SQL = ("SELECT id AS ticket_id, employee_id, category, priority, description, status,"
               " created_on FROM it_tickets ")


@toolset.tool
def create_it_ticket(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    category: TicketCategory,
    description: str,
    priority: TicketPriority = "normal",
) -> Ticket:
    """Open an IT support ticket for an employee; it starts with status open.

    Args:
        employee_id: the numeric id of the employee who needs help (from find_employee).
        category: hardware, software, access, network or other.
        description: what the problem or request is, in the employee's words.
        priority: low, normal or high (high only if the employee cannot work at all).
    """
    db = ctx.deps
    require_employee(db, employee_id)
    if not description.strip():
        raise ValueError("description is empty: describe the problem or request")
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO it_tickets (employee_id, category, priority, description, status,"
            " created_on) VALUES (?, ?, ?, ?, 'open', ?)",
            (employee_id, category, priority, description.strip(), db.today.isoformat()))
    return Ticket(ticket_id=int(cur.lastrowid or 0), employee_id=employee_id, category=category,
                  priority=priority, description=description.strip(), status="open",
                  created_on=db.today)


@toolset.tool
def get_it_ticket(ctx: RunContext[HRDatabase], ticket_id: int) -> Ticket:
    """Get an IT ticket by its number, with its current status.

    Args:
        ticket_id: the ticket's number.
    """
    row = ctx.deps.conn.execute(_TICKET_SQL + "WHERE id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise LookupError(f"no IT ticket with number {ticket_id}")
    return Ticket(**dict(row))


@toolset.tool
def list_it_tickets(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    status: Literal["open", "in_progress", "resolved", "all"] = "all",
) -> list[Ticket]:
    """List an employee's IT tickets, oldest first, optionally only those with one status.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        status: open, in_progress or resolved to keep only those tickets, or all.
    """
    db = ctx.deps
    require_employee(db, employee_id)
    rows = db.conn.execute(
        _TICKET_SQL + "WHERE employee_id = ? AND (? = 'all' OR status = ?)"
        " ORDER BY created_on, id", (employee_id, status, status)).fetchall()
    return [Ticket(**dict(r)) for r in rows]
