"""Per-run SQLite databases for tools: seeded once per process, copied for each run.

Tools that write must not see each other's runs. :class:`SeededSqlite` builds
the seeded database once (in memory, by your ``build`` function) and hands
every run a private in-memory copy through SQLite's backup API — milliseconds
for a few thousand rows. :func:`state_digest` fingerprints a database's whole
state, so a run's end state can be compared with a gold one.

    seeded = SeededSqlite(build_database)

    @contextlib.contextmanager
    def fresh_database():
        with seeded.connect() as conn:
            yield MyDeps(conn)

    toolset = Toolset("hr", setup=fresh_database)
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["SeededSqlite", "Snapshot", "snapshot", "state_digest"]

Snapshot = dict[str, dict[str, dict[str, Any]]]


def state_digest(conn: sqlite3.Connection) -> str:
    """SHA-256 of a database's schema and every row (its SQL dump): equal digest, equal state."""
    digest = hashlib.sha256()
    for line in conn.iterdump():
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def snapshot(conn: sqlite3.Connection) -> Snapshot:
    """Every row of every table, keyed by table, then by row id (``rowid``, as text; a
    ``WITHOUT ROWID`` table's rows by their primary key, its columns' values joined by
    ``|``, a ``|`` inside one escaped as ``\\|``). A virtual table (FTS5) is read through
    itself, not its shadow tables.

    What an evaluation compares column by column: exactly for most, by a matching mode
    for free text (see ``routine.eval.endstate``)."""
    out: Snapshot = {}
    for table, keys in _tables(conn):
        key = ", ".join(map(_quoted, keys)) if keys else _rowid(conn, table)
        cursor = conn.execute(f"SELECT {key}, * FROM {_quoted(table)} ORDER BY {key}")
        names = [d[0] for d in cursor.description][len(keys) or 1:]
        out[table] = {_row_key(tuple(row)[:len(keys) or 1]):
                      dict(zip(names, tuple(row)[len(keys) or 1:], strict=True))
                      for row in cursor.fetchall()}
    return out


def _quoted(name: str) -> str:
    """An SQL identifier in double quotes (a quote inside doubled): any table's name."""
    return '"' + name.replace('"', '""') + '"'


def _rowid(conn: sqlite3.Connection, table: str) -> str:
    """The name that reads a table's row id: ``rowid``, unless a column of that name hides
    it (a ``rowid TEXT`` column), then ``_rowid_`` or ``oid``."""
    columns = {r[1].lower() for r in conn.execute(f"PRAGMA table_info({_quoted(table)})")}
    return next((n for n in ("rowid", "_rowid_", "oid") if n not in columns), "rowid")


def _row_key(values: tuple[Any, ...]) -> str:
    """A row's key: its row id, or its primary key's values joined by ``|`` (a ``|`` or
    ``\\`` inside one escaped with ``\\``, so that ('a|b', 'c') and ('a', 'b|c') stay two)."""
    if len(values) == 1:
        return str(values[0])
    return "|".join(str(v).replace("\\", "\\\\").replace("|", "\\|") for v in values)


def _tables(conn: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    """The tables a snapshot reads, by name, each with its primary key's columns when it has
    no rowid (else none): SQLite's own and a virtual table's shadow tables left out."""
    try:
        listed = conn.execute("PRAGMA main.table_list").fetchall()
    except sqlite3.OperationalError:  # SQLite before 3.37: every table has a rowid here
        listed = [("main", r[0], "table", 0, 0, 0) for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
    tables = []
    for row in sorted(listed, key=lambda r: r[1]):
        name, kind, without_rowid = row[1], row[2], row[4]
        if kind not in ("table", "virtual") or name.startswith("sqlite_"):
            continue
        keys: list[str] = []
        if without_rowid:
            info = conn.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
            keys = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        tables.append((name, keys))
    return tables


class SeededSqlite:
    """A seeded template database and fresh private copies of it."""

    def __init__(self, build: Callable[[sqlite3.Connection], None]):
        self._build = build
        self._template: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _ready_template(self) -> sqlite3.Connection:
        if self._template is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            self._build(conn)
            conn.commit()
            self._template = conn
        return self._template

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A private in-memory copy of the seeded database (rows as ``sqlite3.Row``)."""
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.row_factory = sqlite3.Row
        with self._lock:
            self._ready_template().backup(conn)
        try:
            yield conn
        finally:
            conn.close()
