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

When a run's end state is not the gold one, :func:`row_diffs` says where, row by
row, from the two snapshots: the rows missing or extra, and per differing column
the value got, the value expected and how they were compared (``exact``, or the
free-text mode with the rule that failed, e.g. ``word overlap 0.33 < 0.5``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer

from ..errors import DatasetError
from ..tools.sqlite import Snapshot
from .scoring import FUZZY_OVERLAP, ArgMode, standardize, text_matches, words

__all__ = ["EndState", "Snapshot", "end_state", "compare_end_states", "snapshot_of", "RowDiff",
           "row_diffs", "describe_diffs"]



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
    return _keyed_by_text(take(), type(deps).__name__)


def _keyed_by_text(state: Any, owner: str) -> Snapshot:
    """A snapshot with its tables' and rows' keys as text (a store of one's own keys rows by
    their int ids: ``{"accounts": {7: {...}}}``); one clear error for another shape."""
    def mapping(value: Any, what: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise DatasetError(
                f"{owner}.state_snapshot() returned {what} as {type(value).__name__}, not a "
                "mapping: it must return {table: {row id: {column: value}}}")
        return value
    return {str(table): {str(key): dict(mapping(row, f"row {key!r} of table {table!r}"))
                         for key, row in mapping(rows, f"table {table!r}").items()}
            for table, rows in mapping(state, "the snapshot").items()}


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


class RowDiff(BaseModel):
    """One difference between a run's end state and the gold one: a missing or extra row,
    or one column of a row both have."""

    table: str
    key: str = Field(description="The row id (the rowid, as text).")
    column: str | None = Field(None, description="None for a whole row missing or extra.")
    got: Any = Field(None, description="The run's value (an extra row: the row; a missing "
                     "row: None).")
    expected: Any = Field(None, description="The gold value (a missing row: the row).")
    compared: Literal["exact", "fuzzy", "loose", "ignore", "missing", "extra"] = Field(
        description="How the values were compared: exact, a free-text mode, or a row one "
        "side lacks.")
    rule: str = Field("", description="Why they do not match, e.g. 'free text: word "
                      "overlap 0.33 < 0.5'.")

    @field_serializer("got", "expected", when_used="json")
    def _as_data(self, value: Any) -> Any:
        """A value as the digest sees it (a BLOB's bytes as their repr): a record is JSON."""
        return json.loads(_json(value))

    def __str__(self) -> str:
        where = f"{self.table} row {self.key}"
        if self.compared == "extra":
            return f"{where}: extra row {_short(self.got)}"
        if self.compared == "missing":
            return f"{where}: missing, gold row {_short(self.expected)}"
        return (f"{where}: {self.column} {_short(self.got)} != gold {_short(self.expected)} "
                f"({self.rule})")


def row_diffs(run: Snapshot, gold: Snapshot, seed: Snapshot, free_text: dict[str, str],
              modes: dict[str, ArgMode]) -> list[RowDiff]:
    """Where the run's snapshot differs from the gold one, judged as
    :func:`compare_end_states` judges: exactly, but free-text columns (``free_text``:
    ``table.column`` -> tool argument) by their argument's mode, and only where either
    side wrote them (changed them from ``seed``)."""
    diffs: list[RowDiff] = []
    for table in sorted(set(run) | set(gold)):
        ours, theirs, seeded = run.get(table, {}), gold.get(table, {}), seed.get(table, {})
        for key in sorted(set(ours) | set(theirs), key=_row_order):
            if key not in theirs:
                diffs.append(RowDiff(table=table, key=key, got=ours[key], compared="extra",
                                     rule="a row the gold end state does not have"))
            elif key not in ours:
                diffs.append(RowDiff(table=table, key=key, expected=theirs[key],
                                     compared="missing", rule="a gold row the run lacks"))
            else:
                diffs += _column_diffs(table, key, ours[key], theirs[key],
                                       seeded.get(key, {}), free_text, modes)
    return diffs


def describe_diffs(diffs: list[RowDiff], limit: int = 5) -> str:
    """The first ``limit`` differences in one line, and how many more there are."""
    text = "; ".join(str(d) for d in diffs[:limit])
    return text + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def _column_diffs(table: str, key: str, got: dict[str, Any], expected: dict[str, Any],
                  seeded: dict[str, Any], free_text: dict[str, str],
                  modes: dict[str, ArgMode]) -> list[RowDiff]:
    diffs = []
    for column in dict.fromkeys([*expected, *got]):
        ours, theirs = got.get(column), expected.get(column)
        source = free_text.get(f"{table}.{column}")
        if source is None:
            if _json(ours) != _json(theirs):
                diffs.append(RowDiff(table=table, key=key, column=column, got=ours,
                                     expected=theirs, compared="exact", rule="exact"))
            continue
        mode = modes.get(source, "exact")
        rule = _free_text_mismatch(ours, theirs, seeded.get(column), mode)
        if rule:
            diffs.append(RowDiff(table=table, key=key, column=column, got=ours,
                                 expected=theirs, compared=mode, rule=rule))
    return diffs


def _free_text_mismatch(got: Any, expected: Any, seeded: Any, mode: ArgMode) -> str:
    """Why a free-text value does not match the gold one ('' if it does)."""
    wrote, gold_wrote = got != seeded, expected != seeded
    if not wrote and not gold_wrote:
        return ""
    if wrote != gold_wrote:
        return f"free text ({mode}): " + ("the gold calls left the seeded value" if wrote
                                           else "the run left the seeded value")
    if text_matches(str(got), str(expected), mode):
        return ""
    if mode == "fuzzy":
        ours, theirs = words(str(got)), words(str(expected))
        if ours and theirs:
            overlap = len(ours & theirs) / len(ours | theirs)
            return f"free text: word overlap {overlap:.2f} < {FUZZY_OVERLAP}"
        return "free text (fuzzy): normalised texts differ"
    if mode == "loose":
        return f"free text (loose): {standardize(str(got))!r} != {standardize(str(expected))!r}"
    return "free text, exact mode: the texts differ"


def _json(value: Any) -> str:
    """A value as the digest sees it."""
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, chars: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= chars else text[:chars] + "…"


def _row_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (0, key)
