"""Run an evaluation: both protocols, several conditions, resumable, with a report.

Results are appended to ``<out>/steps.jsonl`` and ``<out>/tasks.jsonl`` as they
arrive, so a rerun with the same output folder skips what is done. The sample
of steps and tasks is fixed by the seed and identical across conditions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from .dataset import load_dataset, load_domain
from .errors import EvalConfigError, EvalResultsError
from .model import Model
from .settings import RunSettings
from .stepeval import (
    CONDITIONS,
    Condition,
    StepResult,
    build_step_samples,
    pick_distractors,
    run_step_sample,
)
from .taskeval import TaskResult, pass_hat_k, run_task
from .tools import FINISH_TOOL

__all__ = ["EvalConfig", "run_evaluation", "summarize", "wilson", "paired_gain"]

Protocol = Literal["step", "task"]
_log = logging.getLogger(__name__)


class EvalConfig(BaseModel):
    """What to evaluate and how."""

    dataset: Path = Field(description="eval/datasets/<domain>")
    out: Path = Field(description="Folder for results and the report.")
    split: str = "test"
    conditions: list[str] = Field(default_factory=lambda: list(CONDITIONS))
    protocols: list[Protocol] = Field(default_factory=lambda: ["step", "task"])
    step_limit: int | None = Field(300, description="Step samples per condition (None: all).")
    task_limit: int | None = Field(40, description="Tasks per condition (None: all).")
    trials: int = Field(1, ge=1, description="Trials per task (pass^k).")
    seed: int = 0
    shuffle_tools: bool = True
    concurrency: int = Field(1, ge=1)
    temperature: float = 0.0
    max_tokens: int = 256
    model: str = ""
    routines: list[str] | None = Field(None, description="Only these routines' queries.")
    report_only: bool = Field(False, description="Only rebuild the report from the results.")


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the interval always holds p; rounding can put p a hair outside (0/11, 6/6)
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def paired_gain(base: list[bool], other: list[bool], z: float = 1.96) -> dict[str, Any]:
    """How much ``other`` beats ``base`` on the same samples (paired, in points of rate).

    The 95% interval is the Wald interval of a paired difference of proportions; ``p`` is
    the exact two-sided McNemar test on the discordant pairs."""
    if len(base) != len(other):
        raise ValueError("paired_gain needs the same samples under both conditions")
    n = len(base)
    if n == 0:
        return {"n": 0, "gain": math.nan, "ci95": [math.nan, math.nan], "p": math.nan}
    won = sum(1 for a, b in zip(base, other, strict=True) if b and not a)
    lost = sum(1 for a, b in zip(base, other, strict=True) if a and not b)
    discordant = won + lost
    gain = (won - lost) / n
    half = z * math.sqrt(max(0.0, discordant - (won - lost) ** 2 / n)) / n
    tail = sum(math.comb(discordant, i) for i in range(min(won, lost) + 1)) / 2 ** discordant
    return {"n": n, "won": won, "lost": lost, "gain": gain,
            "ci95": [max(-1.0, gain - half), min(1.0, gain + half)],
            "p": min(1.0, 2 * tail) if discordant else 1.0}


def _gain(rows: list[Any], base: dict[Any, bool], key: Callable[[Any], Any],
          ok: Callable[[Any], bool]) -> dict[str, Any]:
    """:func:`paired_gain` of ``rows`` over the baseline verdicts ``base`` (by ``key``)."""
    shared = [r for r in rows if key(r) in base]
    return paired_gain([base[key(r)] for r in shared], [ok(r) for r in shared])


def _mean(values: list[float], z: float = 1.96) -> dict[str, Any]:
    """Mean of a per-sample score in [0, 1] with a normal-approximation 95% interval."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": math.nan, "ci95": [math.nan, math.nan]}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "ci95": [max(0.0, mean - half), min(1.0, mean + half)]}


def _rate(items: list[bool]) -> dict[str, Any]:
    k, n = sum(items), len(items)
    lo, hi = wilson(k, n)
    return {"n": n, "k": k, "rate": k / n if n else math.nan, "ci95": [lo, hi]}


def _read(path: Path, model: type[BaseModel]) -> list[Any]:
    """The records of a results file; a corrupt line is one clear error naming it."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise EvalResultsError(
                f"{path}:{number}: not a {model.__name__} record ({first['msg']}); expected one "
                "JSON object per line as `routine eval` writes it. Delete the line to rerun "
                "that sample.") from None
    return records


def _drop_torn_tail(path: Path) -> int:
    """Cut a last line that a killed run left half written; return the bytes cut.

    Appends are whole lines, so only the end of a file can be torn; without this a
    resumed run would append its next record onto the fragment.
    """
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(keep)
    return len(data) - keep


def summarize(steps: list[StepResult], tasks: list[TaskResult], config: EvalConfig,
              trials: int) -> dict[str, Any]:
    """Per-condition figures, each with its sample size and 95% interval."""
    out: dict[str, Any] = {"config": json.loads(config.model_dump_json()), "conditions": {}}
    base = "none" if "none" in config.conditions else None
    base_steps = {s.sample_id: s.correct for s in steps if s.condition == base}
    base_tasks = {(t.example_id, t.trial): t.success for t in tasks if t.condition == base}
    for name in config.conditions:
        entry: dict[str, Any] = {"description": CONDITIONS[name].description}
        chosen = [s for s in steps if s.condition == name]
        if chosen:
            by_scenario: dict[str, list[bool]] = defaultdict(list)
            for s in chosen:
                by_scenario[s.scenario].append(s.correct)
            entry["step"] = {
                "accuracy": _rate([s.correct for s in chosen]),
                "layers": {
                    "format": _rate([s.layer != "format" for s in chosen]),
                    "tool": _rate([s.layer not in ("format", "tool", "count") for s in chosen]),
                    "arguments": _rate([s.correct for s in chosen]),
                },
                "tool_steps": _rate([s.correct for s in chosen if s.expected_tool != FINISH_TOOL]),
                "tool_f1": _mean([s.tool_f1 for s in chosen]),
                "arg_match": _mean([s.arg_match for s in chosen]),
                "errors": dict(sorted(_count(s.layer or "correct" for s in chosen).items())),
                "by_scenario": {k: _rate(v) for k, v in sorted(by_scenario.items())},
                "seconds_per_sample": sum(s.seconds for s in chosen) / len(chosen),
            }
            if base and name != base:
                entry["step"]["gain_vs_none"] = _gain(
                    chosen, base_steps, lambda s: s.sample_id, lambda s: s.correct)
        runs = [t for t in tasks if t.condition == name]
        if runs:
            per_task: dict[str, list[bool]] = defaultdict(list)
            for t in runs:
                per_task[t.example_id].append(t.success)
            full = [sum(v) for v in per_task.values() if len(v) == trials]
            entry["task"] = {
                "success": _rate([t.success for t in runs]),
                "state_ok": _rate([t.state_ok for t in runs]),
                "facts_ok": _rate([t.facts_ok for t in runs]),
                "tool_f1": _mean([t.tool_f1 for t in runs]),
                "pass_k": {str(k): pass_hat_k(full, trials, k) for k in range(1, trials + 1)},
                "tasks": len(per_task),
                "seconds_per_task": sum(t.seconds for t in runs) / len(runs),
            }
            if base and name != base:
                entry["task"]["gain_vs_none"] = _gain(
                    runs, base_tasks, lambda t: (t.example_id, t.trial), lambda t: t.success)
        out["conditions"][name] = entry
    return out


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return dict(counts)


async def run_evaluation(config: EvalConfig, model: Model,
                         on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run every pending job, then write summary.json, report.md, charts and report.html."""
    from .report import write_report

    for name in config.conditions:
        if name not in CONDITIONS:
            raise EvalConfigError(f"unknown condition {name!r}; choose from {', '.join(CONDITIONS)}")
    domain = load_domain(config.dataset)
    registry = domain.registry()
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    examples = [e for e in load_dataset(config.dataset, (config.split,)) if e.kind == "routine"]
    if config.routines is not None:
        unknown = sorted(set(config.routines) - set(routines))
        if unknown:
            raise EvalConfigError(f"unknown routine(s) {', '.join(unknown)}; the domain has "
                             f"{', '.join(sorted(routines))}")
    rng = random.Random(config.seed)
    config.out.mkdir(parents=True, exist_ok=True)
    steps_path, tasks_path = config.out / "steps.jsonl", config.out / "tasks.jsonl"
    for path in (steps_path, tasks_path):
        if cut := _drop_torn_tail(path):
            _log.warning(f"{path}: dropped a half-written last line ({cut} bytes); it will be rerun")
    done_steps = {(s.condition, s.sample_id) for s in _read(steps_path, StepResult)}
    done_tasks = {(t.condition, t.example_id, t.trial) for t in _read(tasks_path, TaskResult)}
    schemas = {t.name: t.parameters for t in registry}
    schemas[FINISH_TOOL] = {"type": "object", "properties": {"answer": {"type": "string"}},
                            "required": ["answer"]}
    sampling = {"temperature": config.temperature, "max_tokens": config.max_tokens,
                "seed": config.seed}
    keyed_jobs: list[tuple[tuple[Any, ...], Callable[[], Any]]] = []  # (run-order key, job)
    selected_steps: set[tuple[str, str]] = set()  # this config's samples: only they are reported
    selected_tasks: set[tuple[str, str]] = set()

    if "step" in config.protocols:
        for name in config.conditions:
            samples = build_step_samples(examples, routines, registry, CONDITIONS[name],
                                         seed=config.seed, shuffle_tools=config.shuffle_tools)
            if config.step_limit is not None and len(samples) > config.step_limit:
                keep = set(random.Random(config.seed).sample(sorted(s.id for s in samples),
                                                             config.step_limit))
                samples = [s for s in samples if s.id in keep]
            samples = [s for s in samples if _wanted(config, s.routine)]
            selected_steps |= {(name, s.id) for s in samples}
            for position, sample in enumerate(samples):
                if (name, sample.id) not in done_steps:
                    keyed_jobs.append((
                        (_prompt_routine(CONDITIONS[name], sample.routine),
                         _prompt_group(CONDITIONS[name]), 0, position),
                        lambda s=sample, c=name: _step_job(
                            s, c, model, schemas, domain.arg_modes, sampling, steps_path)))
    if "task" in config.protocols:
        chosen = examples
        if config.task_limit is not None and len(examples) > config.task_limit:
            chosen = rng.sample(examples, config.task_limit)
        chosen = [e for e in chosen if _wanted(config, e.routine)]
        settings = RunSettings(temperature=config.temperature, max_tokens=config.max_tokens,
                               seed=config.seed, max_steps=12)
        for name in config.conditions:
            condition = CONDITIONS[name]
            for example in chosen:
                routine = routines[example.routine or ""]
                others = pick_distractors(routine, routines, condition.distractors, config.seed)
                selected_tasks.add((name, example.id))
                for trial in range(config.trials):
                    if (name, example.id, trial) not in done_tasks:
                        keyed_jobs.append((
                            (_prompt_routine(condition, routine.name), _prompt_group(condition),
                             1, example.id, trial),
                            lambda e=example, r=routine, o=others, c=condition, t=trial:
                            _task_job(e, r, o, registry, model, c, t, settings,
                                      domain.toolset_name(), tasks_path)))
    # Run order: the no-routine condition first (one system prompt for all), then grouped
    # by routine; within a routine by the system prompt the condition gives (nl and
    # nl+track share theirs); within that, step samples, then tasks (whose first prompt is
    # a step sample's). Consecutive prompts then share their start, so a server's prompt
    # cache holds: a cold 3,500-token prompt costs ~40 s on a CPU. A partial run covers
    # every condition and both protocols on the same routines.
    jobs = [job for _, job in sorted(keyed_jobs, key=lambda kj: kj[0])]
    if not config.report_only:
        await _run_jobs(jobs, config.concurrency, on_progress)
    steps = [s for s in _read(steps_path, StepResult) if (s.condition, s.sample_id)
             in selected_steps]
    tasks = [t for t in _read(tasks_path, TaskResult) if (t.condition, t.example_id)
             in selected_tasks and t.trial < config.trials]
    summary = summarize(steps, tasks, config, config.trials)
    write_report(summary, steps, config.out)
    return summary


def _wanted(config: EvalConfig, routine: str | None) -> bool:
    """``--routines`` narrows the fixed sample; it does not draw another one."""
    return config.routines is None or routine in config.routines


def _prompt_routine(condition: Condition, routine: str | None) -> str:
    """The routine a condition's prompt shows: none at all for the no-routine condition."""
    return "" if condition.routine_format == "none" else routine or ""


def _prompt_group(condition: Condition) -> tuple[str, int, bool]:
    """Conditions with equal keys up to the last share their system prompt."""
    return (condition.routine_format, condition.distractors, condition.step_tracking)


def _append(path: Path, record: BaseModel) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(record.model_dump_json() + "\n")


async def _step_job(sample: Any, condition: str, model: Model, schemas: dict[str, Any],
                    modes: dict[str, Any], sampling: dict[str, Any], path: Path) -> None:
    result = await run_step_sample(sample, condition, model, schemas, modes, **sampling)
    _append(path, result)


async def _task_job(example: Any, routine: Any, others: Any, registry: Any, model: Model,
                    condition: Any, trial: int, settings: RunSettings, toolset: str,
                    path: Path) -> None:
    result = await run_task(example, routine, others, registry, model, condition, trial,
                            settings, toolset)
    _append(path, result)


async def _run_jobs(jobs: list[Callable[[], Any]], concurrency: int,
                    on_progress: Callable[[int, int], None] | None) -> None:
    semaphore = asyncio.Semaphore(concurrency)
    finished = 0

    async def one(job: Callable[[], Any]) -> None:
        nonlocal finished
        async with semaphore:
            await job()
        finished += 1
        if on_progress is not None:
            on_progress(finished, len(jobs))

    if on_progress is not None:
        on_progress(0, len(jobs))
    await asyncio.gather(*(one(job) for job in jobs))
