"""HR assistant tools over a real SQLite database (see ``db.py``).

Each run gets a fresh copy of the seeded database through the toolset's setup;
every tool takes the run's :class:`HRDatabase` as its ``RunContext`` deps.
Errors a user could cause (unknown employee, dates in the past, too few days
left) raise ``ValueError``/``LookupError`` with a clear message: the executor
shows it to the model.

The 25 tools live in one module per sub-scenario, all registered on the single
``toolset`` of ``_toolset.py``: ``people``, ``leave``, ``payroll``, ``expenses``,
``policies`` (handbook and announcements), ``it``, ``rooms`` and ``training``
(courses and onboarding).
"""

from __future__ import annotations

# isort: off
# The modules register their tools on `toolset` when imported, in this order.
from ._toolset import toolset
from .db import HRDatabase, fresh_database
from .people import Department, Employee
from .leave import LeaveBalance, LeaveRequest
from .payroll import Payslip, PayslipSummary
from .expenses import ExpenseClaim, ExpensePolicy
from .policies import Announcement, HandbookHit, HandbookSection
from .it import Ticket
from .rooms import Booking, Room
from .training import ChecklistItem, Course, Enrollment
# isort: on

__all__ = [
    "toolset", "HRDatabase", "fresh_database",
    "Employee", "Department",
    "LeaveBalance", "LeaveRequest",
    "Payslip", "PayslipSummary",
    "ExpensePolicy", "ExpenseClaim",
    "HandbookHit", "HandbookSection", "Announcement",
    "Ticket",
    "Room", "Booking",
    "Course", "Enrollment", "ChecklistItem",
]
