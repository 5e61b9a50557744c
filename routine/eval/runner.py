"""Run an evaluation: both protocols, several conditions, resumable, with a report.

The sample of steps and tasks is fixed by the seed and identical across
conditions. Jobs run grouped so consecutive prompts share their start
(:func:`routine.eval.jobs.prompt_order`); a partial run covers every condition
and both protocols on the same routines. Progress is reported to a callback as
:class:`~routine.eval.jobs.EvalProgress` records.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import DatasetError, EvalConfigError, EvalResultsError, ModelServerError
from ..models.base import Model
from ..run.settings import RunSettings
from ..run.trace import write_whole
from ..spec.loader import load_routine, routine_files
from ..tools.core import FINISH_TOOL
from .conditions import CONDITIONS
from .config import EvalConfig
from .conversations import run_conversation
from .dataset import duplicate_ids, load_dataset, load_domain, seed_snapshot
from .jobs import (
    EvalProgress,
    Job,
    append_record,
    drop_torn_tail,
    prompt_order,
    read_records,
    run_jobs,
)
from .routed import eval_router
from .steps import StepResult, run_step_sample, step_samples
from .summary import Summary, summarize
from .tasks import TaskResult, run_task

__all__ = ["run_evaluation", "EvalProgress"]

_log = logging.getLogger(__name__)
ProgressFn = Callable[[EvalProgress], None]


async def run_evaluation(config: EvalConfig, model: Model,
                         on_progress: Callable[[int, int], None] | None = None, *,
                         progress: ProgressFn | None = None) -> Summary:
    """Run every pending job, then write summary.json, report.md, charts and report.html.
    One evaluation at a time per results folder (a lock file in it).

    Args:
        config: what to evaluate and how.
        model: the model under test.
        on_progress: called with (jobs done, jobs in all) before the first job and after
            each (the older, count-only form of ``progress``).
        progress: called with an :class:`EvalProgress` before the first job (``done`` 0)
            and after each one: jobs done and in all, endpoint failures, the condition,
            protocol and id of the job just finished, seconds elapsed (``left_s``: an
            estimate of the rest; ``line()``: one plain line for a log). Nothing is
            reported when nothing runs (``report_only``).
    """
    if on_progress is not None:
        progress = _with_counts(on_progress, progress)
    for name in config.conditions:
        if name not in CONDITIONS:
            raise EvalConfigError(f"unknown condition {name!r}; choose from {', '.join(CONDITIONS)}")
    split = load_dataset(config.dataset, (config.split,))
    if twice := sorted(duplicate_ids(split)):  # (a resume would skip one)
        raise DatasetError(f"{Path(config.dataset) / f'{config.split}.jsonl'}: example id(s) "
                           f"used more than once: {', '.join(map(repr, twice[:10]))}; expected "
                           "each id once (`routine dataset check` lists every problem)")
    domain = load_domain(config.dataset)
    registry = domain.registry()
    if problems := domain.scoring_problems(registry):  # (scored another way, silently)
        raise DatasetError("\n".join(problems))
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    examples = [e for e in split if e.kind == "routine"]
    if others := collections.Counter(e.kind for e in split if e.kind != "routine"):
        _log.warning(f"the {config.split} split's {', '.join(f'{n} {k}' for k, n in others.items())} "
                     "example(s) are not run by routine eval (no routine serves them): "
                     "`routine route-eval` measures them")
    if not examples:
        raise EvalConfigError(f"the {config.split} split of {config.dataset} has no examples "
                              "of a routine to evaluate (`routine dataset build` writes them)")
    own = routines  # the domain's: what a routine missing from --routines-from would have run
    if config.routines_from is not None:  # the queries of routines it lacks: left out, said
        routines = _routines_in(config.routines_from)
    if examples and "conversation" not in config.protocols and \
            not [e for e in examples if e.user is None]:
        raise EvalConfigError("every example of this split is a conversation: add "
                              "--protocols conversation")
    if config.routines is not None:
        unknown = sorted(set(config.routines) - set(routines))
        if unknown:
            raise EvalConfigError(f"unknown routine(s) {', '.join(unknown)}; the domain has "
                                  f"{', '.join(sorted(routines))}")
    if config.routines_from is None:  # gold naming a routine the domain lacks: a typo
        unknown = sorted({e.routine for e in examples if e.routine not in routines})
        if unknown:
            raise DatasetError(f"{config.dataset} ({config.split}): examples name routines the "
                               f"domain does not have: {', '.join(map(repr, unknown))} (it has "
                               f"{', '.join(sorted(routines))})")
    if config.report_only and not _has_records(config.out):
        raise EvalConfigError(f"{config.out} holds no records of `routine eval` (steps.jsonl, "
                              "tasks.jsonl, conversations.jsonl): nothing to report")
    short = [n for n in config.conditions if CONDITIONS[n].distractors >= len(routines)]
    if short:  # (the default conditions, on a project of one routine)
        _log.warning(f"{', '.join(short)} left out: it shows another routine beside each, and "
                     f"the domain has {len(routines)}")
        config = config.model_copy(update={"conditions": [n for n in config.conditions
                                                          if n not in short]})
    config.out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(config.out / ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise EvalConfigError(f"{config.out}: another evaluation is writing there; wait for "
                              "it to finish (two would record every sample twice)") from None
    try:
        config = _same_run(config, examples)
        return await _evaluate(config, model, progress, domain, registry, routines, examples,
                               own)
    finally:
        lock.release()


RECORD_FILES = ("steps.jsonl", "tasks.jsonl", "conversations.jsonl")
MANIFEST = "run.json"  # what the records of a results folder were made with


def _has_records(out: Path) -> bool:
    return any((out / name).exists() for name in RECORD_FILES)

_MANIFEST_KEYS = ("model", "temperature", "max_tokens", "seed", "enforce_steps")


def _same_run(config: EvalConfig, examples: list[Any]) -> EvalConfig:
    """Records are resumed only by the run that made them: the same model, sampling and
    gold (a folder's ``run.json``; else its summary's config, for folders made before it).
    Another model's records would be reported under this model's name. A report keeps
    the recorded model's name when ``--model`` is not given."""
    gold = hashlib.sha256("\n".join(e.model_dump_json() for e in examples).encode()
                          ).hexdigest()[:16]
    now = {**{k: getattr(config, k) for k in _MANIFEST_KEYS}, "gold": gold}
    path, summary = config.out / MANIFEST, config.out / "summary.json"
    recorded: dict[str, Any] | None = None
    read = path if path.is_file() else summary
    try:
        if path.is_file():
            recorded = json.loads(path.read_text(encoding="utf-8"))
        elif summary.is_file():
            recorded = {k: v for k, v in json.loads(summary.read_text(encoding="utf-8")).get(
                "config", {}).items() if k in _MANIFEST_KEYS}
        if recorded is not None and not isinstance(recorded, dict):
            raise ValueError(f"a JSON {type(recorded).__name__}")
    except (ValueError, AttributeError) as exc:  # (a run killed while it wrote the file)
        if _has_records(config.out):
            raise EvalResultsError(
                f"{read}: not the JSON object `routine eval` writes ({exc}); it says what "
                "the folder's records were made with: restore it, or use another --out"
            ) from None
        recorded = None  # nothing it speaks for: written anew
    unnamed = config.report_only and config.model in ("", "none")  # report: recorded name
    if recorded and _has_records(config.out):
        changed = [f"{k}: {recorded[k]!r} there, {now[k]!r} now" for k in now
                   if k in recorded and recorded[k] != now[k] and not (unnamed and k == "model")]
        if changed:
            doing = "a report would show" if config.report_only else "resuming would report"
            raise EvalConfigError(
                f"{config.out} holds records made otherwise ({'; '.join(changed)}): {doing} "
                "them as this run's. Use another --out, or run as they were made"
                + (" (the gold changed: another dataset or split, or the dataset was rebuilt "
                   "or its split edited)" if any(c.startswith("gold") for c in changed)
                   else ""))
    if config.report_only:  # a report changes no records, nor what they were made with
        if recorded and unnamed and recorded.get("model"):
            return config.model_copy(update={"model": recorded["model"]})
        return config
    # whole or not at all: a run killed here must not leave a torn manifest
    write_whole(path, json.dumps({**(recorded or {}), **now}, indent=1) + "\n")
    return config


async def _evaluate(config: EvalConfig, model: Model, progress: ProgressFn | None, domain: Any,
                    registry: Any, routines: dict[str, Any], examples: list[Any],
                    own: dict[str, Any]) -> Summary:
    from .report import write_report

    steps_path, tasks_path = config.out / "steps.jsonl", config.out / "tasks.jsonl"
    talks_path = config.out / "conversations.jsonl"
    talks = [e for e in examples if e.user is not None]  # a simulated user answers these
    examples = [e for e in examples if e.user is None]
    for path in (steps_path, tasks_path, talks_path):
        if config.report_only:  # a report changes no records: a torn line is only left out
            continue
        if cut := drop_torn_tail(path):
            _log.warning(f"{path}: dropped a half-written last line ({cut} bytes); it will be rerun")
    read = functools.partial(read_records, torn_tail_ok=config.report_only)
    done_steps = {(s.condition, s.sample_id) for s in read(steps_path, StepResult)}
    done_tasks = {(t.condition, t.example_id, t.trial) for t in read(tasks_path, TaskResult)}
    done_talks = {(t.condition, t.example_id, t.trial) for t in read(talks_path, TaskResult)}
    schemas = {t.name: t.parameters for t in registry}
    schemas[FINISH_TOOL] = {"type": "object", "properties": {"answer": {"type": "string"}},
                            "required": ["answer"]}
    sampling = {"temperature": config.temperature, "max_tokens": config.max_tokens,
                "seed": config.seed}
    keyed: list[tuple[tuple[Any, ...], Job]] = []  # (run-order key, job)
    selected_steps: set[tuple[str, str]] = set()  # this config's samples: only they are reported
    selected_tasks: set[tuple[str, str]] = set()
    selected_talks: set[tuple[str, str]] = set()
    # --routines-from lacks these routines: their queries are left out, counted here
    missing = sorted({e.routine for e in [*examples, *talks]
                      if e.routine not in routines and _wanted(config, e.routine)})
    left_out: dict[str, int] = {}

    if "step" in config.protocols:
        for name in config.conditions:
            if CONDITIONS[name].routed:
                continue  # a step sample needs the routine its gold calls came from
            chosen = [e for e in examples if e.routine in routines
                      and (config.report_only or _wanted(config, e.routine))]
            if progress is not None:  # each chosen gold example is replayed first: said
                progress(EvalProgress(done=0, total=0, preparing=(
                    f"the step samples of {name} ({len(chosen)} gold examples)")))
            if missing and "step sample(s)" not in left_out:  # (the split's, before --steps)
                left_out["step sample(s)"] = len(await step_samples(
                    [e for e in examples if e.routine in missing], own, registry,
                    CONDITIONS[name], seed=config.seed, shuffle_tools=config.shuffle_tools))
            samples = await step_samples(chosen, routines, registry, CONDITIONS[name],
                                         seed=config.seed, shuffle_tools=config.shuffle_tools,
                                         strict=config.routines_from is None)
            if config.step_limit and len(samples) > config.step_limit:
                keep = set(random.Random(config.seed).sample(sorted(s.id for s in samples),
                                                             config.step_limit))
                samples = [s for s in samples if s.id in keep]
            samples = [s for s in samples if _wanted(config, s.routine)]
            selected_steps |= {(name, s.id) for s in samples}
            for position, sample in enumerate(samples):
                if (name, sample.id) in done_steps:
                    continue

                async def step_job(s: Any = sample, c: str = name) -> None:
                    append_record(steps_path, await run_step_sample(
                        s, c, model, schemas, domain.arg_modes, **sampling))

                keyed.append(((*prompt_order(CONDITIONS[name], sample.routine), 0, position),
                              Job(step_job, name, "step", sample.id)))
    async def whole_runs(protocol: str, pool: list[Any], path: Any, done: set[Any],
                         selected: set[tuple[str, str]], rank: int, max_steps: int,
                         run: Any) -> None:
        """Jobs that run examples end to end (the task and conversation protocols)."""
        # --routines: N of theirs (a report of records: the recorded draw, narrowed)
        chosen = [e for e in pool if config.report_only or _wanted(config, e.routine)]
        if config.task_limit and len(chosen) > config.task_limit:
            chosen = random.Random(config.seed).sample(chosen, config.task_limit)
        # (drawn from the same pool as with the domain's routines: the same tasks)
        chosen = [e for e in chosen if _wanted(config, e.routine)]
        if missing:
            left_out[f"{protocol}(s)"] = sum(e.routine in missing for e in chosen)
        chosen = [e for e in chosen if e.routine in routines]
        settings = RunSettings(temperature=config.temperature, max_tokens=config.max_tokens,
                               seed=config.seed, max_steps=max_steps,
                               enforce_steps=config.enforce_steps)
        seed = await seed_snapshot(domain, registry)
        for name in config.conditions:
            condition = CONDITIONS[name]
            if protocol == "conversation" and (condition.routine_format == "none"
                                               or condition.routed):
                continue  # a conversation follows a routine's questions and confirmations
            for example in chosen:
                selected.add((name, example.id))
                for trial in range(config.trials):
                    if (name, example.id, trial) in done:
                        continue

                    async def job(e: Any = example, c: Any = condition, t: int = trial) -> None:
                        append_record(path, await run(e, routines, registry, model, c, t,
                                                      settings, domain, seed,
                                                      distractor_seed=config.seed))

                    keyed.append(((*prompt_order(condition, example.routine), rank, example.id,
                                   trial), Job(job, name, protocol, example.id)))

    if "task" in config.protocols:
        router = None
        if any(CONDITIONS[n].routed for n in config.conditions) and not config.report_only:
            router = eval_router(config.dataset, domain, config.router, model)
        await whole_runs("task", examples, tasks_path, done_tasks, selected_tasks, 1, 12,
                         functools.partial(run_task, router=router, gold_routines=own))
    if "conversation" in config.protocols:
        if talks and (left := [n for n in config.conditions if CONDITIONS[n].routine_format
                               == "none" or CONDITIONS[n].routed]):
            _log.warning(f"conversations are not run under {', '.join(left)}: a conversation "
                         "follows a routine's questions and confirmations (given, not routed)")
        await whole_runs("conversation", talks, talks_path, done_talks, selected_talks, 2, 16,
                         run_conversation)
    jobs = [job for _, job in sorted(keyed, key=lambda kj: kj[0])]
    if not (selected_steps or selected_tasks or selected_talks) and config.routines:
        raise EvalConfigError(f"the {config.split} split has no sample of --routines "
                              f"{','.join(config.routines)} under these protocols and "
                              "conditions: nothing to run (nothing was written)")
    failed = 0
    if not config.report_only:
        failed = await run_jobs(jobs, config.concurrency, progress)
        if failed:
            _log.warning(f"{failed} sample(s) hit endpoint failures and were not recorded; "
                         "rerun the same command to retry them")
    steps = [s for s in read(steps_path, StepResult)
             if (s.condition, s.sample_id) in selected_steps]
    tasks = [t for t in read(tasks_path, TaskResult)
             if (t.condition, t.example_id) in selected_tasks and t.trial < config.trials]
    conversations = [t for t in read(talks_path, TaskResult)
                     if (t.condition, t.example_id) in selected_talks and t.trial < config.trials]
    if not config.report_only and failed and not (steps or tasks or conversations):
        raise ModelServerError(f"every one of the {failed} sample(s) hit endpoint failures: "
                               "nothing was recorded and no report written (check the "
                               "endpoint, then rerun the same command)")
    if config.report_only and not (steps or tasks or conversations):
        raise EvalConfigError(f"{config.out} holds no records of this split, these conditions, "
                              "protocols and routines: nothing to report (the report there "
                              "is left as it is)")
    summary = summarize(steps, tasks, config, conversations)
    note = ""
    if missing:
        counts = ", ".join(f"{n} {what}" for what, n in left_out.items())
        note = (f"{config.routines_from} has no routine {', '.join(missing)}: left out "
                f"{counts or 'nothing'} of the {config.split} split (not counted as wrong)")
        _log.warning(note)
        summary.config["left_out"] = {"routines": missing,
                                      **{k.replace("(s)", "s"): n for k, n in left_out.items()}}
    paths = write_report(summary, steps, tasks + conversations, config.out)
    if note:
        with paths["markdown"].open("a", encoding="utf-8") as report:
            report.write(f"\n**Left out**: {note}.\n")
    return summary


def _routines_in(folder: Path) -> dict[str, Any]:
    """The routines of ``folder`` by name (``--routines-from``); a file that does not load
    is an error: such a folder holds routines that validated."""
    if not folder.is_dir():
        raise EvalConfigError(f"{folder}: no such folder (--routines-from: a folder of "
                              "routine files, NAME.yaml)")
    found = {}
    for path in routine_files(folder):
        routine = load_routine(path).routine
        found[routine.name] = routine
    return found


def _with_counts(counts: Callable[[int, int], None], then: ProgressFn | None) -> ProgressFn:
    """A progress callback that also tells ``counts`` (done, total)."""
    def report(progress: EvalProgress) -> None:
        if progress.preparing is None:  # (counts are of jobs)
            counts(progress.done, progress.total)
        if then is not None:
            then(progress)

    return report


def _wanted(config: EvalConfig, routine: str | None) -> bool:
    """``--routines``: only these routines' examples (``--steps``/``--tasks N`` then draw N
    of theirs; with ``--report-only``, the draw of the whole split, narrowed: the records a
    full run made)."""
    return config.routines is None or routine in config.routines
