"""Resumable evaluation jobs: the results files, their order, and running them.

Results are appended to JSONL files one whole line per record as they arrive,
so a rerun with the same output folder skips what is done. Only the end of a
file can be torn by a killed run; it is cut before appending. A corrupt line
elsewhere is one clear error naming the file and line.

Progress is reported as an :class:`EvalProgress` record after each job;
:class:`ProgressLines` turns it into plain lines for a log or a pipe (where a
terminal's progress bar shows nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from ..errors import EvalResultsError, ModelServerError, ModelUnreachable
from ..run.trace import append_line
from .conditions import Condition

__all__ = ["read_records", "append_record", "drop_torn_tail", "run_jobs", "prompt_order", "Job",
           "EvalProgress", "ProgressLines"]

_log = logging.getLogger(__name__)
RecordT = TypeVar("RecordT", bound=BaseModel)


def read_records(path: Path, model: type[RecordT], torn_tail_ok: bool = False
                 ) -> list[RecordT]:
    """The records of a results file; a corrupt line is one clear error naming it
    (``torn_tail_ok``: a half-written last line, which a rerun redoes, is left out)."""
    if not path.exists():
        return []
    records = []
    data = path.read_bytes()
    if torn_tail_ok and data and not data.endswith(b"\n"):  # (it may end inside a character)
        data = data[:data.rfind(b"\n") + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise EvalResultsError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); a results "
                               "file is JSON lines as `routine eval` writes them") from None
    # lines end at "\n" only: a U+2028 or NEL in a model's answer is text, not a line end
    for number, line in enumerate(text.split("\n"), 1):
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


def append_record(path: Path, record: BaseModel) -> None:
    append_line(path, record.model_dump_json().encode())


def drop_torn_tail(path: Path) -> int:
    """Cut a last line that a killed run left half written; return the bytes cut."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(keep)
    return len(data) - keep


def prompt_order(condition: Condition, routine: str | None) -> tuple[Any, ...]:
    """The run-order key of a condition's jobs for a routine.

    The no-routine condition first (one system prompt for all), then grouped by routine;
    within a routine by the system prompt the condition gives (nl and nl+track share
    theirs: their blocks are adjacent; the compact style's differs) and by how results are
    shown (memory off changes the history); then by decoding and inputs-first (the same
    prompts: their blocks are adjacent; the inputs turn changes the history).
    Consecutive prompts then share their start, so a server's prompt cache holds: a cold
    3,500-token prompt costs ~40 s on a CPU, and the compact style interleaved with the
    full one took a median 26 s a sample on the 0.5B against 2 s grouped."""
    shown = "" if condition.routine_format == "none" else routine or ""
    return (shown, (condition.routine_format, condition.distractors, condition.step_tracking,
                    condition.prompt_style, condition.memory, condition.decoding,
                    condition.inputs_first))


@dataclass(frozen=True)
class Job:
    """One sample to run and record, and what it is (for progress reports)."""

    run: Callable[[], Awaitable[None]]
    condition: str | None = None
    protocol: str | None = None
    sample: str | None = None


class EvalProgress(BaseModel):
    """Where an evaluation run stands, reported before its first job and after each one."""

    done: int = Field(description="Jobs finished in this run (recorded or left for a rerun).")
    total: int = Field(description="Jobs this run has to do (a resume: only those pending).")
    failed: int = Field(0, description="Jobs that hit endpoint failures (not recorded).")
    condition: str | None = Field(None, description="The condition of the last job finished.")
    protocol: str | None = Field(None, description="Its protocol: step or task.")
    sample: str | None = Field(None, description="Its step sample or task id.")
    elapsed_s: float = Field(0.0, description="Seconds since the first job started.")
    preparing: str | None = Field(None, description="Before the jobs: what is being made "
                                  "(the step samples of a condition: every gold example "
                                  "replayed, seconds for a large split).")

    @property
    def left_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first job finishes)."""
        if not self.done:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)

    def line(self) -> str:
        """One plain line: ``eval: 12/94 samples · nl+track step · 3 min elapsed, ~20 min
        left``."""
        if self.preparing:
            return f"eval: preparing {self.preparing}"
        if not self.total:
            return "eval: nothing to run (every sample is recorded)"
        parts = [f"eval: {self.done}/{self.total} samples"]
        if self.condition:
            parts.append(" ".join(filter(None, (self.condition, self.protocol))))
        left = self.left_s
        parts.append(f"{_duration(self.elapsed_s)} elapsed"
                     + (f", ~{_duration(left)} left" if left is not None and left > 0 else ""))
        if self.failed:
            parts.append(f"{self.failed} endpoint failures (left for a rerun)")
        return " · ".join(parts)


class ProgressLines:
    """A progress callback that writes :meth:`EvalProgress.line` to ``write``: the first
    and the last report, and in between at most one every ``every_s`` seconds."""

    def __init__(self, write: Callable[[str], None], every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.every_s, self.clock = write, every_s, clock
        self._last: float | None = None

    def __call__(self, progress: EvalProgress) -> None:
        now = self.clock()
        last = progress.done in (0, progress.total) or progress.preparing is not None
        if last or self._last is None or now - self._last >= self.every_s:
            self.write(progress.line())
            self._last = now


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"


async def run_jobs(jobs: list[Job] | list[Callable[[], Awaitable[None]]], concurrency: int,
                   progress: Callable[[EvalProgress], None] | None = None) -> int:
    """Run jobs ``concurrency`` at a time, reporting ``progress`` before the first and after
    each; return how many failed on the endpoint (those are not recorded: a rerun retries
    them)."""
    semaphore = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    finished = failed = 0

    def report(job: Job | None = None) -> None:
        if progress is None:
            return
        last = {} if job is None else {"condition": job.condition, "protocol": job.protocol,
                                       "sample": job.sample}
        progress(EvalProgress(done=finished, total=len(jobs), failed=failed,
                              elapsed_s=time.monotonic() - started, **last))

    async def one(job: Job) -> None:
        nonlocal finished, failed
        async with semaphore:
            try:
                await job.run()
            except (ModelServerError, ModelUnreachable) as exc:  # 5xx, 429, no connection
                failed += 1
                _log.warning("endpoint failure, sample left for a rerun: %s", exc)
        finished += 1
        report(job)

    report()
    await asyncio.gather(*(one(job if isinstance(job, Job) else Job(job)) for job in jobs))
    return failed
