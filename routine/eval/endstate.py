"""End states compared the way the step protocol compares arguments.

A task succeeds only if the database ends in the gold end state. Most columns
must match exactly (ids, amounts, dates, statuses), but a free-text column (a
cancellation's reason, a ticket's description) holds words the model chose: a
right action in other words must not fail the task. The domain declares its
free-text columns and the tool argument each comes from
(``Domain.free_text = {"returns.reason": "request_return.reason"}``); those
columns are left out of the digest and compared, row by row, with that
argument's matching mode (``Domain.arg_modes``: ``fuzzy`` word overlap,
``loose`` normalised, ``exact``).

An :class:`EndState` is computed from a snapshot of the toolset's state
(``deps.state_snapshot()``: table -> row id -> row) and the seeded state it
started from: the digest of every non-free-text value, and the free-text
values of the rows that differ from the seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import DatasetError
from ..tools.sqlite import Snapshot
from .scoring import ArgMode, text_matches

__all__ = ["EndState", "Snapshot", "end_state", "compare_end_states", "snapshot_of"]


@dataclass(frozen=True)
class EndState:
    """What a run left behind, in the form the task protocol compares.

    Attributes:
        digest: SHA-256 over every table and row with the free-text columns blanked.
        texts: ``"table.column"`` -> row id -> value, for the free-text values that
            differ from the seeded state (new rows, changed rows).
    """

    digest: str
    texts: dict[str, dict[str, str]] = field(default_factory=dict)


def snapshot_of(deps: Any) -> Snapshot:
    """The state snapshot of a toolset's deps; one clear error if it has none."""
    take = getattr(deps, "state_snapshot", None)
    if not callable(take):
        raise DatasetError(
            f"the domain's toolset deps ({type(deps).__name__}) need a state_snapshot() method "
            "returning {table: {row id: {column: value}}} (for SQLite: "
            "routine.tools.sqlite.snapshot(conn)); the task protocol compares end states with it")
    return take()


def end_state(snapshot: Snapshot, seed: Snapshot, free_text: dict[str, str]) -> EndState:
    """The :class:`EndState` of ``snapshot``; ``free_text`` maps ``table.column`` to the
    tool argument it comes from (only the keys matter here)."""
    blank = {tuple(column.split(".", 1)) for column in free_text}
    digest = hashlib.sha256()
    texts: dict[str, dict[str, str]] = {column: {} for column in free_text}
    for table in sorted(snapshot):
        rows = snapshot[table]
        seeded = seed.get(table, {})
        for key in sorted(rows, key=_row_order):
            row = rows[key]
            kept = {c: (None if (table, c) in blank else v) for c, v in row.items()}
            digest.update(json.dumps([table, key, kept], sort_keys=True, default=str).encode())
            for column in row:
                if (table, column) in blank and seeded.get(key, {}).get(column) != row[column]:
                    texts[f"{table}.{column}"][key] = str(row[column])
    return EndState(digest.hexdigest(), {c: v for c, v in texts.items() if v})


def compare_end_states(run: EndState, gold: EndState, free_text: dict[str, str],
                       modes: dict[str, ArgMode]) -> tuple[bool, str]:
    """(same end state?, why not). Free text is matched with its argument's mode."""
    if run.digest != gold.digest:
        return False, "the database differs from the gold end state"
    for column in sorted(set(run.texts) | set(gold.texts)):
        ours, theirs = run.texts.get(column, {}), gold.texts.get(column, {})
        if set(ours) != set(theirs):
            return False, f"{column}: other rows were written than in the gold end state"
        mode = modes.get(free_text.get(column, ""), "exact")
        for key in sorted(ours):
            if not text_matches(ours[key], theirs[key], mode):
                return False, (f"{column} (row {key}): {ours[key]!r} does not match the gold "
                               f"{theirs[key]!r} ({mode})")
    return True, ""


def _row_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (0, key)
