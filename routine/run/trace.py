"""Typed records of a run, with ONE serialiser.

A run yields one :class:`RunTrace`: the routine, the inputs, the messages, each
turn with its tool calls (arguments, result, error, timing), token usage and
the outcome. Evaluation and fine-tuning read these records, never log text.
``dump_traces``/``load_traces`` are the only JSONL reader and writer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from ..errors import RoutineError, RunFailed
from ..models.messages import Message, SystemMessage, Usage
from .approval import Decision
from .signing import payload, sign_trace

_log = logging.getLogger(__name__)

__all__ = [
    "Usage",
    "Pending",
    "HandOff",
    "TurnKind",
    "FailureKind",
    "ToolCallRecord",
    "TurnRecord",
    "RunTrace",
    "ErrorKind",
    "dump_traces",
    "load_traces",
    "append_line",
    "write_whole",
    "now",
]

ErrorKind = Literal[
    "tool_error",  # the tool raised (e.g. unknown employee): shown to the model
    "tool_bug",  # the tool's own bug (a TypeError, a wrong SQL column, a result that is not
    #              data): not shown to the model nor failed over; the run ends
    "invalid_arguments",  # arguments do not fit the tool's schema
    "unknown_tool",  # no tool by that name
    "not_allowed",  # the tool exists but the routine does not name it
    "repeated",  # the same call again, in a loop
    "timeout",  # the tool took too long
    "over_budget",  # not run: the run's max_steps tool calls were spent
    "off_routine",  # not run: the step contract (another tool, a fixed argument changed)
    "denied",  # not run: the approver refused it (or there was none)
    "awaiting_confirmation",  # not run yet: the user must say yes first (a conversation)
]


TurnKind = Literal[
    "tool_calls",  # calls ran; the run goes on
    "answer",  # the model answered: the run ends
    "retry",  # a model mistake, fed back
    "failed",  # the run ends without an answer (limit, mistakes, endpoint failure)
    "inputs",  # input values read from the user's words (feedback: them)
    "ask",  # a question to the user: the run waits for the reply (model_text: the question)
    "confirm",  # a call waits for the user's yes (model_text: what was asked)
    "reply",  # the user's reply to a question or a confirmation, acted on
    "message",  # the finish step's exact message (model_text), no model asked
    "handoff",  # the conversation passes to another routine
]


FailureKind = Literal[
    "model_mistakes",  # max_retries mistakes in a row
    "max_steps",  # the tool-call budget ran out
    "request_refused",  # the endpoint refused a request (HTTP 4xx: e.g. over its context)
    "endpoint",  # the endpoint failed (HTTP 5xx, not a chat completion, unreachable)
    "rate_limited",  # HTTP 429 through every retry
    "unavailable",  # no usable model (the API key refused, the embedded model missing)
    "timeout",  # the run's wall-clock limit
    "routine_limit",  # the routine cannot go on: a visit limit, a computation that failed
    "user",  # the user did not give what a question asked for
    "toolset",  # a toolset's server stopped during the run (its tools cannot answer)
    "tool_bug",  # a tool has a bug (the call's error says which): fix the tool
]


def now() -> datetime:
    return datetime.now(UTC)


class ToolCallRecord(BaseModel):
    """One tool call the model made, and what came of it (complete when created)."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    name: str
    arguments: dict[str, Any] = Field(description="As the model sent them.")
    resolved_arguments: dict[str, Any] | None = Field(
        None, description="After variable-memory keys were replaced by their values.")
    step_id: str | None = Field(None, description="The routine step this call completed.")
    result: Any = None
    result_text: str | None = Field(None, description="What the model was shown.")
    memory_key: str | None = Field(None, description="Where a long result was stored.")
    error: str | None = None
    error_kind: ErrorKind | None = None
    approval: Decision | None = Field(None, description="The decision on a call that needed "
                                      "approval: approved or not, by whom, why, when.")
    started_at: datetime = Field(default_factory=now)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Pending(BaseModel):
    """What a waiting run waits for from the user."""

    kind: Literal["inputs", "confirmation"]
    step_id: str
    message: str = Field(description="What the user was asked.")
    fills: list[str] = Field(default_factory=list, description="Inputs a question asks for.")
    tool: str | None = Field(None, description="The call waiting for a yes.")
    arguments: dict[str, Any] = Field(default_factory=dict)
    asked: int = Field(1, description="How many times it was asked.")
    said_from: int = Field(0, description="The replies to it start at this index of "
                           "RunTrace.said.")


class HandOff(BaseModel):
    """The conversation passes to another routine."""

    routine: str
    inputs: dict[str, Any] = Field(default_factory=dict)


class TurnRecord(BaseModel):
    """One model request and what the executor did with the reply (complete when appended)."""

    model_config = ConfigDict(frozen=True)

    index: int
    kind: TurnKind
    current_step: str | None = None
    state_prompt: str | None = Field(None, description="The per-turn state message sent.")
    history_length: int = Field(0, description="How many of the trace's messages the request "
                                "carried (then the state prompt, if any): RunTrace.request(i) "
                                "rebuilds exactly what the model was sent.")
    model_text: str = ""
    calls: list[ToolCallRecord] = Field(default_factory=list)
    feedback: str | None = Field(None, description="Error message sent back to the model.")
    usage: Usage = Field(default_factory=Usage)
    decoding: str = Field("free", description="How the reply was constrained: free, or "
                          "json_schema / llama / tool_choice under guided decoding.")
    finish_reason: str | None = Field(None, description="Why the endpoint ended the reply: "
                                      "stop, tool_calls, length (cut off), content_filter.")
    reasoning: str = Field("", description="A reasoning model's thinking (kept out of "
                           "model_text and of the history).")
    note: str | None = Field(None, description="How the request was adapted to the endpoint "
                             "(a constraint or a parameter it refused).")
    duration_s: float = 0.0


class RunTrace(BaseModel):
    """Everything about one run."""

    run_id: str
    routine: str | None = None
    routine_version: str | None = None
    routine_digest: str | None = Field(None, description="A fingerprint of the routine the "
                                       "run followed: a waiting trace resumes only under the "
                                       "same routine.")
    model: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    query: str | None = None
    said: list[str] = Field(default_factory=list, description="What the user said: the "
                            "request, then each reply in a conversation.")
    said_yes_no: list[int] = Field(default_factory=list, description="Which replies of "
                                   "`said` answered a confirmation (a yes or no, not values "
                                   "for a later question).")
    inputs: dict[str, Any] = Field(default_factory=dict)
    tools_offered: list[str] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list, description="The conversation "
                                    "(system prompt, request, calls, results, feedback).")
    turns: list[TurnRecord] = Field(default_factory=list)
    steps_done: list[str] = Field(default_factory=list)
    branches: dict[str, int] = Field(default_factory=dict, description="Branch step -> option.")
    loop_outputs: dict[str, Any] = Field(
        default_factory=dict, description="for_each step -> its output (one mapping per item "
        "of the body steps' outputs, as `${steps.LOOP.output}` reads it).")
    branch_errors: dict[str, str] = Field(
        default_factory=dict, description="Branch steps whose `when` (for_each steps whose "
        "`until`) raised at run time (dividing by zero, comparing text with a number...): the "
        "expression and the error. The model chose the option there (the loop went on).")
    outcome: Literal["running", "answered", "failed", "waiting", "handed_off"] = "running"
    answer: str | None = Field(None, description="The final answer; while waiting, what the "
                               "user was asked.")
    waiting: Pending | None = Field(None, description="What a waiting run needs from the user "
                                    "(a conversation's next message answers it).")
    handoff: HandOff | None = None
    state: dict[str, Any] | None = Field(
        None, description="Where a waiting run stands (its tracker and variable memory), so a "
        "conversation can resume from the trace.")
    asked: list[str] = Field(default_factory=list, description="Required inputs the request "
                             "did not state: the answer asks the user for them.")
    early_answer: str | None = Field(
        None, description="The step the routine was at when the model answered before "
        "reaching a finish step (e.g. it gave up after a tool error); None when it answered "
        "at one, or ran without a routine.")
    answer_facts: str | None = Field(None, description="The finish step's answer template, "
                                     "rendered (added to the answer when it lacked it).")
    failure: str | None = None
    failure_kind: FailureKind | None = None
    usage: Usage = Field(default_factory=Usage)
    end_state: dict[str, str] = Field(
        default_factory=dict, description="Toolset -> digest of its state when the run ended "
        "(for toolsets whose deps have state_digest()).")
    started_at: datetime = Field(default_factory=now)
    duration_s: float = 0.0
    signature: str | None = Field(None, description="HMAC-SHA256 of the rest of the trace "
                                  "(routine.run.signing), when written with a key: a "
                                  "resumed conversation checks it.")
    #: the signed bytes of the line this trace was read from (routine.run.signing.payload)
    _read_payload: bytes | None = PrivateAttr(None)

    @property
    def read_payload(self) -> bytes | None:
        return self._read_payload

    def raise_for_outcome(self) -> RunTrace:
        """Return the trace if the run answered; raise :class:`RunFailed` (with it) if not."""
        if self.outcome != "answered":
            raise RunFailed(self.failure or f"the run ended as {self.outcome!r}", self)
        return self

    def request(self, turn: int) -> list[Message]:
        """The messages the model was sent at ``turn``, exactly (fine-tuning data reads them)."""
        record = self.turns[turn]
        sent: list[Message] = list(self.messages[:record.history_length])
        if record.state_prompt:
            sent.append(SystemMessage(content=record.state_prompt))
        return sent

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call, in order (the finish call excluded)."""
        return [c for t in self.turns for c in t.calls]

    @property
    def tool_sequence(self) -> list[str]:
        """Names of the tools that ran successfully, in order."""
        return [c.name for c in self.tool_calls if c.ok]


_ADAPTER = TypeAdapter(RunTrace)


def append_line(path: str | Path, data: bytes) -> None:
    """Append one line with a single write to a file opened for appending, then sync it:
    concurrent writers never interleave inside a line, and a line is either whole or (the
    process killed mid-write) a torn tail that readers skip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        line = data.rstrip(b"\n") + b"\n"
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a killed writer's torn line:
            line = b"\n" + line  # ended, so this one is not glued onto it
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_whole(path: str | Path, text: str) -> None:
    """Write ``text`` into ``path`` whole: written beside it first, then renamed over it, so
    a process killed meanwhile leaves the old file or the new one, never half of one (a
    manifest, a run's log)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def dump_traces(traces: Iterable[RunTrace], path: str | Path,
                key: str | bytes | None = None) -> None:
    """Append traces to a JSONL file (one trace per line, each written whole), each signed
    with ``key`` or ``ROUTINE_TRACE_KEY`` when there is one (:mod:`routine.run.signing`)."""
    for trace in traces:
        append_line(path, _ADAPTER.dump_json(sign_trace(trace, key)))


def _torn(raw: bytes) -> str | None:
    """Why a line is the torn start of one (None: it is whole): no line break at its end, or
    text that stops mid-character or mid-JSON (a line break came after it from the next
    writer)."""
    if not raw.endswith(b"\n"):
        return "no line break"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "cut inside a character" if exc.end >= len(raw.rstrip()) else None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return "cut mid-JSON" if exc.pos >= len(text.rstrip()) else None
    except RecursionError:  # nested past Python's limit: whole, but no trace (said later)
        return None
    return None


def load_traces(path: str | Path, skip_bad: bool = False) -> Iterator[RunTrace]:
    """Read the traces of a JSONL file (a torn last line, from a killed writer, is skipped).
    A line that is not a trace raises :class:`RoutineError` naming the file and line; with
    ``skip_bad`` (the trace viewer: one bad line must not hide every run) it is left out
    with a warning saying the same."""
    for item in _read_traces(path):
        if isinstance(item, RunTrace):
            yield item
        elif skip_bad:
            _log.warning(f"{item}: left out")
        else:
            raise RoutineError(item)


def _read_traces(path: str | Path) -> Iterator[RunTrace | str]:
    """Each trace of the file, or for a line that is not one, why (file:line: ...)."""
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            torn = _torn(raw)
            if torn is not None:  # a writer killed mid-line (then maybe others went on)
                _log.warning(f"{path}:{number}: a line that was never finished ({len(raw)} "
                             f"bytes, {torn}: a writer stopped) was left out")
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (f"{path}:{number}: not UTF-8 text ({exc.reason} at byte "
                       f"{exc.start}); expected the JSONL `routine run --trace-dir` writes")
                continue
            try:
                trace = _ADAPTER.validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"]))
                yield (f"{path}:{number}: not a run trace ({where + ': ' if where else ''}"
                       f"{first['msg']}); expected one RunTrace JSON object per line, as "
                       "`routine run --trace-dir` writes it")
                continue
            except (RecursionError, ValueError) as exc:  # JSON nested past any trace's depth
                yield (f"{path}:{number}: not a run trace ({type(exc).__name__}: "
                       f"{str(exc)[:100]}); expected one RunTrace JSON object per line")
                continue
            if trace.signature is not None:  # checked against what was written
                trace._read_payload = payload(json.loads(line))
            yield trace
