"""Learning-rate schedules compared at one step budget over seeds (``routine compare-schedules``).

    routine compare-schedules --recipe finetune/recipes/schedules-0.5b-cpu.yaml \\
        --data runs/sft-retail.jsonl --eval-data runs/sft-retail-dev.jsonl \\
        --out runs/schedules --schedules linear,cosine,rex,uba:0.5,refined --seeds 0,1,2

Every run is the same :class:`~routine.finetune.train.FinetuneConfig` (same data,
same ``max_steps``, same peak rate) but for its schedule and seed, in its own folder
``OUT/<schedule>-seed<N>``; a finished run (its ``log.json``) is not run again, so a
stopped comparison resumes. ``refined`` takes its shape from the ``linear`` run of
the same seed (run first, as its pilot). ``uba:φ`` sets UBA's φ.

The table ranks the schedules by held-out loss (mean and standard deviation over
seeds) and gives each one's gap to the best, paired by seed (same initialisation
and data order). A schedule *wins* only if it beats the runner-up in every seed
and by more than the spread of the gap: a difference smaller than the spread is
no difference.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from pydantic import BaseModel, Field

from ..errors import RoutineError
from .schedules import SCHEDULES
from .train import FinetuneConfig, _prior_run, finetune, resolve_reply_format

__all__ = ["ScheduleRun", "ScheduleRow", "Comparison", "compare_schedules", "parse_schedule",
           "summarise", "comparison_markdown", "load_comparison"]


class ScheduleRun(BaseModel):
    schedule: str
    seed: int
    folder: Path
    eval_loss: float
    final_train_loss: float = Field(description="Mean training loss over the last quarter "
                                    "of the steps.")
    steps: int
    seconds: float
    tokens_per_second: float


class ScheduleRow(BaseModel):
    schedule: str
    seeds: int
    eval_loss: float
    eval_loss_sd: float
    final_train_loss: float
    gap: float | None = Field(None, description="Mean held-out loss above the best, paired "
                              "by seed (None for the best).")
    gap_sd: float | None = None
    worse_in_every_seed: bool = False


class Comparison(BaseModel):
    base: str
    steps: int
    seeds: list[int]
    runs: list[ScheduleRun]
    table: list[ScheduleRow]
    winner: str | None = Field(description="The best schedule if it beats the runner-up in "
                               "every seed by more than the gap's spread; else None.")


def parse_schedule(spec: str) -> tuple[str, float | None]:
    """``uba:0.5`` -> (``uba``, 0.5); ``rex`` -> (``rex``, None)."""
    name, _, phi = spec.partition(":")
    if name not in SCHEDULES:
        raise RoutineError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)} "
                           f"(uba:<φ> sets UBA's φ)")
    if phi and name != "uba":
        raise RoutineError(f"{spec!r}: only uba takes a parameter (uba:<φ>)")
    try:
        value = float(phi) if phi else None
    except ValueError:
        value = math.nan
    if value is not None and not 0 <= value <= 2:  # (NaN too: it was a ValidationError)
        raise RoutineError(f"{spec!r}: φ must be a number in [0, 2]")
    return name, value


def _run(config: FinetuneConfig, spec: str, seed: int, out: Path) -> ScheduleRun:
    name, phi = parse_schedule(spec)
    folder = out / f"{spec.replace(':', '-')}-seed{seed}"
    update: dict[str, object] = {"schedule": name, "seed": seed, "out": folder}
    if phi is not None:
        update["uba_phi"] = phi
    if name == "refined":
        update["pilot"] = out / f"linear-seed{seed}"
    run = FinetuneConfig.model_validate(config.model_dump() | update)
    # a finished run is kept (not trained again) only if it is this one: another base,
    # data, budget or rate in the folder from an earlier comparison is refused or trained
    # on, never reported under this comparison's settings
    result = _prior_run(run, resolve_reply_format(run)) or finetune(run)
    if result.eval_loss is None:
        raise RoutineError(f"{folder}: the run has no held-out loss (it ran without eval_data)")
    tail = result.losses[-max(1, len(result.losses) // 4):]
    return ScheduleRun(schedule=spec, seed=seed, folder=folder, eval_loss=result.eval_loss,
                       final_train_loss=statistics.fmean(tail), steps=result.steps,
                       seconds=result.seconds, tokens_per_second=result.tokens_per_second)


def _sd(values: list[float]) -> float:
    if any(math.isnan(v) for v in values):  # a diverged run (statistics.stdev raises)
        return math.nan
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[ScheduleRun], schedules: list[str]) -> tuple[list[ScheduleRow], str | None]:
    """The table (best first) and the winner, if any."""
    by = {s: {r.seed: r for r in runs if r.schedule == s} for s in schedules}
    rows = []
    for spec, seeded in by.items():
        if not seeded:
            continue
        losses = [r.eval_loss for r in seeded.values()]
        rows.append(ScheduleRow(schedule=spec, seeds=len(seeded),
                                eval_loss=statistics.fmean(losses), eval_loss_sd=_sd(losses),
                                final_train_loss=statistics.fmean(
                                    r.final_train_loss for r in seeded.values())))
    # a run that diverged (a NaN loss) is last, never first: NaN sorted anywhere
    rows.sort(key=lambda r: (math.isnan(r.eval_loss), r.eval_loss))
    if not rows:
        return rows, None
    best = by[rows[0].schedule]
    for row in rows[1:]:
        gaps = [by[row.schedule][seed].eval_loss - best[seed].eval_loss
                for seed in sorted(set(best) & set(by[row.schedule]))]
        if gaps:
            row.gap, row.gap_sd = statistics.fmean(gaps), _sd(gaps)
            row.worse_in_every_seed = len(gaps) > 1 and all(g > 0 for g in gaps)
    winner = None
    if len(rows) > 1:
        second = rows[1]
        if second.worse_in_every_seed and second.gap is not None and \
                second.gap > (second.gap_sd or 0.0):
            winner = rows[0].schedule
    return rows, winner


def compare_schedules(config: FinetuneConfig, schedules: list[str], seeds: list[int],
                      out: Path) -> Comparison:
    """Run (or load) every schedule x seed at ``config.max_steps``; write
    ``OUT/comparison.json`` and ``OUT/comparison.md``."""
    if config.max_steps <= 0:
        raise RoutineError("a schedule comparison needs a fixed step budget: --max-steps N")
    if config.eval_data is None:
        raise RoutineError("a schedule comparison needs held-out data: --eval-data "
                           "(e.g. `routine distill DATASET --split dev`)")
    if len(seeds) < 1 or not schedules:
        raise RoutineError("give at least one schedule and one seed")
    for spec in schedules:
        parse_schedule(spec)
    order = list(dict.fromkeys(
        (["linear"] if any(s.startswith("refined") for s in schedules) else []) + schedules))
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in seeds:  # one seed at a time: a stopped comparison has whole seeds
        for spec in order:
            run = _run(config, spec, seed, out)
            if spec in schedules:
                runs.append(run)
    rows, winner = summarise(runs, schedules)
    comparison = Comparison(base=config.base, steps=config.max_steps, seeds=seeds, runs=runs,
                            table=rows, winner=winner)
    (out / "comparison.json").write_text(comparison.model_dump_json(indent=2), encoding="utf-8")
    (out / "comparison.md").write_text(comparison_markdown(comparison), encoding="utf-8")
    return comparison


def comparison_markdown(comparison: Comparison) -> str:
    lines = [f"Schedules on {comparison.base}, {comparison.steps} optimizer steps, seeds "
             f"{', '.join(map(str, comparison.seeds))} (held-out loss, mean ± sd):", "",
             "| schedule | held-out loss | gap to best (paired) | worse in every seed "
             "| final train loss |", "|---|---|---|---|---|"]
    for row in comparison.table:
        gap = "–" if row.gap is None else f"+{row.gap:.4f} ± {row.gap_sd or 0:.4f}"
        every = "–" if row.gap is None else ("yes" if row.worse_in_every_seed else "no")
        lines.append(f"| {row.schedule} | {row.eval_loss:.4f} ± {row.eval_loss_sd:.4f} "
                     f"(n={row.seeds}) | {gap} | {every} | {row.final_train_loss:.4f} |")
    lines += ["", f"Winner: {comparison.winner}" if comparison.winner else
              "Winner: none (the best does not beat the runner-up by more than the spread)"]
    return "\n".join(lines) + "\n"


def load_comparison(path: Path) -> Comparison:
    return Comparison.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
