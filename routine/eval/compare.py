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
"""

from __future__ import annotations

from pathlib import Path

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


def _load(folder: Path) -> tuple[dict[tuple[str, str], bool], dict[tuple[str, str, int], bool]]:
    if not folder.is_dir():
        raise RoutineError(f"{folder}: no such results folder (routine eval --out)")
    steps = {(r.condition, r.sample_id): r.correct
             for r in read_records(folder / "steps.jsonl", StepResult, torn_tail_ok=True)} \
        if (folder / "steps.jsonl").exists() else {}
    tasks = {(r.condition, r.example_id, r.trial): r.success
             for r in read_records(folder / "tasks.jsonl", TaskResult, torn_tail_ok=True)} \
        if (folder / "tasks.jsonl").exists() else {}
    return steps, tasks


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
    a_steps, a_tasks = _load(Path(a))
    b_steps, b_tasks = _load(Path(b))
    for folder, records in ((a, [*a_steps, *a_tasks]), (b, [*b_steps, *b_tasks])):
        if not records:
            raise RoutineError(f"{folder} holds no records of `routine eval` (steps.jsonl, "
                               "tasks.jsonl): nothing to compare")
    conditions = {k[0] for k in a_steps} | {k[0] for k in a_tasks}
    b_conditions = {k[0] for k in [*b_steps, *b_tasks]}
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
        if sa is None and ta is None:
            raise RoutineError(f"no shared samples for {b_condition} (in {b}) against "
                               f"{a_condition} (in {a})")
        rows.append(ComparisonRow(a_condition=a_condition, b_condition=b_condition,
                                  steps_a=sa, steps_b=sb, steps_gain=sg,
                                  tasks_a=ta, tasks_b=tb, tasks_gain=tg))
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
    lines = [f"| {a} | {b} | step accuracy, {a} | step accuracy, {b} | gain | "
             f"task success, {a} | task success, {b} | gain |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.a_condition} | {row.b_condition} | {_pct(row.steps_a)} | "
                     f"{_pct(row.steps_b)} | {_gain(row.steps_gain)} | {_pct(row.tasks_a)} | "
                     f"{_pct(row.tasks_b)} | {_gain(row.tasks_gain)} |")
    return "\n".join(lines) + "\n"
