"""The helpdesk toolset: two typed tools over a SQLite database (replace them with yours).

A tool is a plain typed function. Its parameters (with the docstring's ``Args:``) become
the JSON schema the model sees and the validator checks routines against; its return
type gives the output fields routines reference (``${steps.find_user.output.user_id}``).
Raise ``LookupError`` / ``ValueError`` with a clear message for anything the user can
get wrong: the message goes back to the model, the run goes on.

Each run gets a private copy of the seeded database (``fresh_database``), so runs never
see each other's writes, and ``state_snapshot()`` lets ``routine eval`` compare the
database a run leaves behind with the gold one.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from routine import RunContext, Toolset
from routine.tools.sqlite import SeededSqlite, Snapshot, snapshot

Priority = Literal["low", "normal", "high"]

USERS = [
    ("Ana Lima", "ana.lima@example.com", "Finance"),
    ("Ben Okoro", "ben.okoro@example.com", "Sales"),
    ("Chloe Martin", "chloe.martin@example.com", "Engineering"),
    ("Dev Patel", "dev.patel@example.com", "Support"),
    ("Eva Novak", "eva.novak@example.com", "Legal"),
]


def build_database(conn: sqlite3.Connection) -> None:
    """The seeded state every run starts from."""
    conn.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                            email TEXT NOT NULL UNIQUE, team TEXT NOT NULL);
        CREATE TABLE tickets (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL
                              REFERENCES users(id), summary TEXT NOT NULL,
                              priority TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open');
    """)
    conn.executemany("INSERT INTO users (name, email, team) VALUES (?, ?, ?)", USERS)


_SEEDED = SeededSqlite(build_database)


@dataclass
class HelpdeskDatabase:
    """What every tool gets as ``ctx.deps``: this run's private connection."""

    conn: sqlite3.Connection

    def state_snapshot(self) -> Snapshot:
        """Every row of every table: what the task protocol compares with the gold state."""
        return snapshot(self.conn)


@contextlib.contextmanager
def fresh_database() -> Iterator[HelpdeskDatabase]:
    with _SEEDED.connect() as conn:
        yield HelpdeskDatabase(conn)


toolset = Toolset("helpdesk", setup=fresh_database)


class User(BaseModel):
    user_id: int
    name: str
    email: str
    team: str


class Ticket(BaseModel):
    ticket_id: int
    user_id: int
    summary: str
    priority: Priority
    status: str


@toolset.tool
def find_user(ctx: RunContext[HelpdeskDatabase], email: str) -> User:
    """Look a user up by their email address.

    Args:
        email: the user's email address, e.g. ana.lima@example.com.
    """
    row = ctx.deps.conn.execute("SELECT * FROM users WHERE lower(email) = lower(?)",
                                (email.strip(),)).fetchone()
    if row is None:
        raise LookupError(f"no user with the email {email!r}")
    return User(user_id=row["id"], name=row["name"], email=row["email"], team=row["team"])


@toolset.tool
def open_ticket(ctx: RunContext[HelpdeskDatabase], user_id: int, summary: str,
                priority: Priority = "normal") -> Ticket:
    """Open a support ticket for a user.

    Args:
        user_id: the id of the user the ticket is for.
        summary: what is wrong, in a sentence.
        priority: how urgent it is.
    """
    conn = ctx.deps.conn
    if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
        raise LookupError(f"no user with the id {user_id}")
    with conn:
        cursor = conn.execute("INSERT INTO tickets (user_id, summary, priority) VALUES (?, ?, ?)",
                              (user_id, summary.strip(), priority))
    return Ticket(ticket_id=cursor.lastrowid or 0, user_id=user_id, summary=summary.strip(),
                  priority=priority, status="open")
