"""Resumable evaluation jobs: the results files, their order, and running them.

Results are appended to JSONL files one whole line per record as they arrive,
so a rerun with the same output folder skips what is done. Only the end of a
file can be torn by a killed run; it is cut before appending. A corrupt line
elsewhere is one clear error naming the file and line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import EvalResultsError, ModelServerError, ModelUnreachable
from ..run.trace import append_line
from .conditions import Condition

__all__ = ["read_records", "append_record", "drop_torn_tail", "run_jobs", "prompt_order"]

_log = logging.getLogger(__name__)
RecordT = TypeVar("RecordT", bound=BaseModel)


def read_records(path: Path, model: type[RecordT]) -> list[RecordT]:
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
    theirs). Consecutive prompts then share their start, so a server's prompt cache
    holds: a cold 3,500-token prompt costs ~40 s on a CPU."""
    shown = "" if condition.routine_format == "none" else routine or ""
    return (shown, (condition.routine_format, condition.distractors, condition.step_tracking))


async def run_jobs(jobs: list[Callable[[], Awaitable[None]]], concurrency: int,
                   on_progress: Callable[[int, int], None] | None) -> int:
    """Run jobs ``concurrency`` at a time; return how many failed on the endpoint (those
    are not recorded: a rerun retries them)."""
    semaphore = asyncio.Semaphore(concurrency)
    finished = failed = 0

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        nonlocal finished, failed
        async with semaphore:
            try:
                await job()
            except (ModelServerError, ModelUnreachable) as exc:  # 5xx, 429, no connection
                failed += 1
                _log.warning("endpoint failure, sample left for a rerun: %s", exc)
        finished += 1
        if on_progress is not None:
            on_progress(finished, len(jobs))

    if on_progress is not None:
        on_progress(0, len(jobs))
    await asyncio.gather(*(one(job) for job in jobs))
    return failed
