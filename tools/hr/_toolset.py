"""The HR toolset object and helpers shared by its modules.

Every module of ``routine_tools.hr`` registers its tools on this single ``toolset``;
it imports nothing from those modules, so they can all import it.
"""

from __future__ import annotations

import re
from datetime import date

from routine import Toolset

from .db import HRDatabase, fresh_database

__all__ = ["toolset", "require_employee", "parse_time", "not_in_past"]

toolset = Toolset("hr", setup=fresh_database)

_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def require_employee(db: HRDatabase, employee_id: int) -> str:
    """The employee's name; LookupError when there is no such employee."""
    row = db.conn.execute("SELECT name FROM employees WHERE id = ?", (employee_id,)).fetchone()
    if row is None:
        raise LookupError(f"no employee with id {employee_id}")
    return str(row["name"])


def parse_time(value: str, argument: str) -> str:
    """A 24-hour time as zero-padded ``HH:MM``; ValueError naming ``argument`` otherwise."""
    match = _TIME_RE.match(value)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"{argument} {value!r} is not a time in 24-hour HH:MM format")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def not_in_past(db: HRDatabase, day: date, argument: str) -> None:
    """ValueError when ``day`` is before the scenario's today."""
    if day < db.today:
        raise ValueError(f"{argument} {day} is in the past (today is {db.today})")
