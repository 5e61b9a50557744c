"""The typed summary of an evaluation: per condition, every figure with its sample size
and 95% interval. ``summary.json`` is this record; the report reads it, nothing else."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from math import comb, inf
from pathlib import Path
from typing import Any

from pydantic import Field

from ..tools.core import FINISH_TOOL
from .conditions import CONDITIONS, tracking_baseline
from .config import EvalConfig
from .stats import Figure, Gain, Mean, Rate, mean, paired_gain, rate
from .steps import StepResult
from .tasks import TaskResult

__all__ = ["Summary", "ConditionSummary", "StepFigures", "TaskFigures", "ConversationFigures",
           "Layers", "summarize",
           "pass_hat_k", "load_summary"]


class Layers(Figure):
    """Step samples passing each scoring layer (cumulative)."""

    format: Rate
    tool: Rate
    arguments: Rate


class StepFigures(Figure):
    accuracy: Rate
    layers: Layers
    tool_steps: Rate = Field(description="Accuracy on the steps that call a tool (not finish).")
    tool_f1: Mean
    arg_match: Mean
    errors: dict[str, int] = Field(description="Samples by the layer they failed at.")
    by_scenario: dict[str, Rate]
    seconds_per_sample: float
    prompt_tokens_per_sample: float = 0.0
    completion_tokens_per_sample: float = 0.0
    gain_vs_none: Gain | None = None
    gain_vs_track: Gain | None = Field(None, description="For a tracking variant: its gain "
                                       "over unguided step tracking (its ConditionSummary's "
                                       "tracking_baseline), paired.")


class TaskFigures(Figure):
    success: Rate
    state_ok: Rate
    facts_ok: Rate
    tool_f1: Mean
    pass_k: dict[str, float]
    tasks: int
    seconds_per_task: float
    prompt_tokens_per_task: float = 0.0
    completion_tokens_per_task: float = 0.0
    gain_vs_none: Gain | None = None
    gain_vs_track: Gain | None = None
    missing_facts: dict[str, int] | None = Field(
        None, description="Required facts answers lacked in tasks whose end state was right, "
        "by kind (number or text); None when the records predate it.")


class ConversationFigures(Figure):
    """The conversation protocol: success also requires no question for what the first
    message said and no write without the user's yes."""

    success: Rate
    state_ok: Rate
    facts_ok: Rate
    tasks: int
    questions_per_task: Mean
    user_turns_per_task: Mean
    redundant_questions: int = Field(description="Questions for inputs already stated.")
    writes_without_yes: int = Field(description="Must be 0.")
    seconds_per_task: float


class ConditionSummary(Figure):
    description: str
    step: StepFigures | None = None
    task: TaskFigures | None = None
    conversation: ConversationFigures | None = None
    tracking_baseline: str | None = Field(None, description="The unguided tracking condition "
                                          "the gains vs tracking are over (when it ran).")


class Summary(Figure):
    config: dict[str, Any]
    conditions: dict[str, ConditionSummary]


def load_summary(path: str | Path) -> Summary:
    return Summary.model_validate_json(Path(path).read_text(encoding="utf-8"))


def pass_hat_k(successes: list[int], trials: int, k: int) -> float:
    """tau-bench's pass^k: the chance that k trials of a task all succeed, averaged."""
    if not successes or k > trials:
        return float("nan")
    return sum(comb(c, k) / comb(trials, k) for c in successes) / len(successes)


def _gain(rows: list[Any], base: dict[Any, bool], key: Callable[[Any], Any],
          ok: Callable[[Any], bool]) -> Gain:
    """:func:`paired_gain` of ``rows`` over the baseline verdicts ``base`` (by ``key``)."""
    shared = [r for r in rows if key(r) in base]
    return paired_gain([base[key(r)] for r in shared], [ok(r) for r in shared])


def _steps(chosen: list[StepResult]) -> StepFigures:
    by_scenario: dict[str, list[bool]] = defaultdict(list)
    for s in chosen:
        by_scenario[s.scenario].append(s.correct)
    return StepFigures(
        accuracy=rate([s.correct for s in chosen]),
        layers=Layers(format=rate([s.layer != "format" for s in chosen]),
                      tool=rate([s.layer not in ("format", "tool", "count") for s in chosen]),
                      arguments=rate([s.correct for s in chosen])),
        tool_steps=rate([s.correct for s in chosen if s.expected_tool != FINISH_TOOL]),
        tool_f1=mean([s.tool_f1 for s in chosen]),
        arg_match=mean([s.arg_match for s in chosen]),
        errors=dict(sorted(Counter(s.layer or "correct" for s in chosen).items())),
        by_scenario={k: rate(v) for k, v in sorted(by_scenario.items())},
        seconds_per_sample=sum(s.seconds for s in chosen) / len(chosen),
        prompt_tokens_per_sample=sum(s.prompt_tokens for s in chosen) / len(chosen),
        completion_tokens_per_sample=sum(s.completion_tokens for s in chosen) / len(chosen))


def _tasks(runs: list[TaskResult], trials: int) -> TaskFigures:
    per_task: dict[str, list[bool]] = defaultdict(list)
    for t in runs:
        per_task[t.example_id].append(t.success)
    full = [sum(v) for v in per_task.values() if len(v) == trials]
    return TaskFigures(
        success=rate([t.success for t in runs]), state_ok=rate([t.state_ok for t in runs]),
        facts_ok=rate([t.facts_ok for t in runs]), tool_f1=mean([t.tool_f1 for t in runs]),
        pass_k={str(k): pass_hat_k(full, trials, k) for k in range(1, trials + 1)},
        tasks=len(per_task), seconds_per_task=sum(t.seconds for t in runs) / len(runs),
        prompt_tokens_per_task=sum(t.prompt_tokens for t in runs) / len(runs),
        completion_tokens_per_task=sum(t.completion_tokens for t in runs) / len(runs),
        missing_facts=None if all(t.missing_facts is None for t in runs) else dict(Counter(
            _fact_kind(f) for t in runs if t.state_ok for f in t.missing_facts or [])))


def _fact_kind(fact: str) -> str:
    try:
        float(fact.replace(",", ""))
        return "number"
    except ValueError:
        return "text"


def _conversations(runs: list[TaskResult]) -> ConversationFigures:
    return ConversationFigures(
        success=rate([t.success for t in runs]), state_ok=rate([t.state_ok for t in runs]),
        facts_ok=rate([t.facts_ok for t in runs]), tasks=len({t.example_id for t in runs}),
        questions_per_task=mean([float(t.questions or 0) for t in runs], bounds=(0.0, inf)),
        user_turns_per_task=mean([float(t.user_turns or 0) for t in runs], bounds=(0.0, inf)),
        redundant_questions=sum(t.redundant_questions or 0 for t in runs),
        writes_without_yes=sum(t.writes_without_yes or 0 for t in runs),
        seconds_per_task=sum(t.seconds for t in runs) / len(runs))


def summarize(steps: list[StepResult], tasks: list[TaskResult], config: EvalConfig,
              conversations: list[TaskResult] | None = None) -> Summary:
    """Per-condition figures, each with its sample size and 95% interval; every routine
    condition is also compared with ``none`` on the same samples."""
    base = "none" if "none" in config.conditions else None
    base_steps = {s.sample_id: s.correct for s in steps if s.condition == base}
    base_tasks = {(t.example_id, t.trial): t.success for t in tasks if t.condition == base}
    conditions = {}
    for name in config.conditions:
        entry = ConditionSummary(description=CONDITIONS[name].description)
        chosen = [s for s in steps if s.condition == name]
        if chosen:
            entry.step = _steps(chosen)
            if base and name != base:
                entry.step.gain_vs_none = _gain(chosen, base_steps, lambda s: s.sample_id,
                                                lambda s: s.correct)
        talks = [t for t in conversations or [] if t.condition == name]
        if talks:
            entry.conversation = _conversations(talks)
        runs = [t for t in tasks if t.condition == name]
        if runs:
            entry.task = _tasks(runs, config.trials)
            if base and name != base:
                entry.task.gain_vs_none = _gain(runs, base_tasks,
                                                lambda t: (t.example_id, t.trial),
                                                lambda t: t.success)
        conditions[name] = entry
    for name, entry in conditions.items():
        baseline = tracking_baseline(name)
        if baseline is None or baseline not in config.conditions:
            continue
        entry.tracking_baseline = baseline
        track_steps = {s.sample_id: s.correct for s in steps if s.condition == baseline}
        track_tasks = {(t.example_id, t.trial): t.success for t in tasks
                       if t.condition == baseline}
        if entry.step is not None and track_steps:
            entry.step.gain_vs_track = _gain([s for s in steps if s.condition == name],
                                             track_steps, lambda s: s.sample_id,
                                             lambda s: s.correct)
        if entry.task is not None and track_tasks:
            entry.task.gain_vs_track = _gain([t for t in tasks if t.condition == name],
                                             track_tasks, lambda t: (t.example_id, t.trial),
                                             lambda t: t.success)
    return Summary(config=config.model_dump(mode="json"), conditions=conditions)

