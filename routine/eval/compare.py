"""Two evaluations side by side, paired on the same samples (``routine compare-results``).

    routine compare-results eval/results/retail-0.5b eval/results/retail-0.5b-distilled \\
        --labels base,adapter --cross none=nl --cross none=nl+track

Each row puts one condition of the first results folder (``A``) against one of the
second (``B``): by default every condition both have, against itself; ``--cross
B_COND=A_COND`` adds rows such as "the adapter with no routine against the base
with the routine" (the paper's internalisation). Step samples pair by sample id,
tasks by example and trial; the gain is B minus A in points with its paired 95%
interval and an exact McNemar p (:func:`routine.eval.stats.paired_gain`). Only
samples both folders have are counted, so a partial run compares on what it has.
Conversations (``conversations.jsonl``, the conversation protocol) pair like tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import RoutineError
from .jobs import read_records
from .stats import Gain, Rate, paired_gain, rate
from .steps import StepResult
from .tasks import TaskResult

__all__ = ["ComparisonRow", "compare_results", "comparison_table"]


class ComparisonRow(BaseModel):
    a_condition: str
    b_condition: str
    steps_a: Rate | None = None
    steps_b: Rate | None = None
    steps_gain: Gain | None = None
    tasks_a: Rate | None = None
    tasks_b: Rate | None = None
    tasks_gain: Gain | None = None
    talks_a: Rate | None = None
    talks_b: Rate | None = None
    talks_gain: Gain | None = None


Records = dict[tuple[Any, ...], bool]


def _load(folder: Path) -> tuple[Records, Records, Records]:
    """(steps, tasks, conversations) of a results folder: each sample's verdict by key."""
    if not folder.is_dir():
        raise RoutineError(f"{folder}: no such results folder (routine eval --out)")
    steps = {(r.condition, r.sample_id): r.correct
             for r in read_records(folder / "steps.jsonl", StepResult, torn_tail_ok=True)} \
        if (folder / "steps.jsonl").exists() else {}
    tasks, talks = ({(r.condition, r.example_id, r.trial): r.success
                     for r in read_records(folder / name, TaskResult, torn_tail_ok=True)}
                    if (folder / name).exists() else {}
                    for name in ("tasks.jsonl", "conversations.jsonl"))
    return steps, tasks, talks


def _paired(a: dict, b: dict, a_condition: str, b_condition: str
            ) -> tuple[Rate | None, Rate | None, Gain | None]:
    keys = sorted(k[1:] for k in a if k[0] == a_condition and (b_condition, *k[1:]) in b)
    if not keys:
        return None, None, None
    left = [a[(a_condition, *k)] for k in keys]
    right = [b[(b_condition, *k)] for k in keys]
    return rate(left), rate(right), paired_gain(left, right)


def compare_results(a: str | Path, b: str | Path, cross: list[tuple[str, str]] = ()
                    ) -> list[ComparisonRow]:
    """Rows for every condition both folders have, then the ``cross`` pairs
    ``(b_condition, a_condition)``."""
    a_steps, a_tasks, a_talks = _load(Path(a))
    b_steps, b_tasks, b_talks = _load(Path(b))
    for folder, records in ((a, [*a_steps, *a_tasks, *a_talks]),
                            (b, [*b_steps, *b_tasks, *b_talks])):
        if not records:
            raise RoutineError(f"{folder} holds no records of `routine eval` (steps.jsonl, "
                               "tasks.jsonl, conversations.jsonl): nothing to compare")
    conditions = {k[0] for k in [*a_steps, *a_tasks, *a_talks]}
    b_conditions = {k[0] for k in [*b_steps, *b_tasks, *b_talks]}
    shared = sorted(c for c in conditions if c in b_conditions)
    pairs = [(c, c) for c in shared] + [(a_cond, b_cond) for b_cond, a_cond in cross]
    if not pairs:
        raise RoutineError(f"no condition in common: {a} has {', '.join(sorted(conditions))}; "
                           f"{b} has {', '.join(sorted(b_conditions))} (pair two with "
                           "--cross B_CONDITION=A_CONDITION)")
    rows = []
    for a_condition, b_condition in pairs:
        sa, sb, sg = _paired(a_steps, b_steps, a_condition, b_condition)
        ta, tb, tg = _paired(a_tasks, b_tasks, a_condition, b_condition)
        ca, cb, cg = _paired(a_talks, b_talks, a_condition, b_condition)
        if sa is None and ta is None and ca is None:
            raise RoutineError(f"no shared samples for {b_condition} (in {b}) against "
                               f"{a_condition} (in {a})")
        rows.append(ComparisonRow(a_condition=a_condition, b_condition=b_condition,
                                  steps_a=sa, steps_b=sb, steps_gain=sg,
                                  tasks_a=ta, tasks_b=tb, tasks_gain=tg,
                                  talks_a=ca, talks_b=cb, talks_gain=cg))
    return rows


def _pct(value: Rate | None) -> str:
    if value is None:
        return "–"
    low, high = value.ci95
    return f"{100 * value.rate:.1f}% [{100 * low:.0f}–{100 * high:.0f}] (n={value.n})"


def _gain(value: Gain | None) -> str:
    if value is None:
        return "–"
    low, high = value.ci95
    return (f"{100 * value.gain:+.1f} pt [{100 * low:+.0f}, {100 * high:+.0f}] "
            f"p={value.p:.2g}")


def comparison_table(rows: list[ComparisonRow], labels: tuple[str, str] = ("A", "B")) -> str:
    a, b = labels
    talks = any(row.talks_a is not None for row in rows)  # (a column group only if any)
    head = (f"| {a} | {b} | step accuracy, {a} | step accuracy, {b} | gain | "
            f"task success, {a} | task success, {b} | gain |")
    rule = "|---|---|---|---|---|---|---|---|"
    if talks:
        head += f" conversation success, {a} | conversation success, {b} | gain |"
        rule += "---|---|---|"
    lines = [head, rule]
    for row in rows:
        line = (f"| {row.a_condition} | {row.b_condition} | {_pct(row.steps_a)} | "
                f"{_pct(row.steps_b)} | {_gain(row.steps_gain)} | {_pct(row.tasks_a)} | "
                f"{_pct(row.tasks_b)} | {_gain(row.tasks_gain)} |")
        if talks:
            line += f" {_pct(row.talks_a)} | {_pct(row.talks_b)} | {_gain(row.talks_gain)} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
