"""One turn of a run: ask the model, read its reply, run the calls it makes.

Kept apart from the run loop (``executor.py``) so the loop stays short. A turn
returns a tagged result: :class:`NextTurn`, :class:`FinalAnswer` or
:class:`Failed`. The model's mistakes (unreadable call, unknown or forbidden
tool, invalid arguments, the same call in a loop) become messages back to the
model and count toward ``max_retries``; a tool's own error is data shown to
the model.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .memory import VariableMemory
from .model import Model
from .parsing import CallParseError, ParsedCall, parse_reply
from .planner import Planner
from .settings import RunSettings
from .spec import Routine
from .tools import FINISH_TOOL, RunContext, Tool, ToolArgumentsError, ToolRegistry, result_text
from .tools import to_jsonable as jsonable
from .trace import ErrorKind, RunTrace, ToolCallRecord, TurnRecord, now
from .tracking import StepTracker

__all__ = ["RunState", "NextTurn", "FinalAnswer", "Failed", "TurnResult", "take_turn"]

MODEL_MISTAKES: set[ErrorKind] = {"invalid_arguments", "unknown_tool", "not_allowed", "repeated"}


@dataclass
class NextTurn:
    """The run goes on."""


@dataclass
class FinalAnswer:
    answer: str


@dataclass
class Failed:
    reason: str


TurnResult = NextTurn | FinalAnswer | Failed


@dataclass
class RunState:
    """Everything a run carries from turn to turn."""

    trace: RunTrace
    routine: Routine | None
    tracker: StepTracker | None
    registry: ToolRegistry
    allowed: dict[str, Tool]
    tool_specs: list[dict[str, Any]]
    planner: Planner
    settings: RunSettings
    memory: VariableMemory
    contexts: dict[str, RunContext[Any]] = field(default_factory=dict)
    mistakes: int = 0
    calls_made: int = 0
    seen_calls: Counter[str] = field(default_factory=Counter)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.trace.messages

    def current_hint(self) -> str:
        """A short pointer to the current step, for error feedback."""
        if self.tracker is None or self.tracker.finished or self.tracker.step is None:
            return ""
        tools = " or ".join(self.tracker.expected_tools())
        step = self.tracker.step
        return f" You are at step {self.tracker.label(step.id)} ({step.name}): call {tools}."


async def take_turn(state: RunState, model: Model) -> TurnResult:
    """Ask the model once and act on its reply."""
    started = time.perf_counter()
    tracker = state.tracker
    state_prompt = state.planner.state_prompt(tracker, state.memory)
    messages = list(state.history)
    if state_prompt:
        messages.append({"role": "system", "content": state_prompt})
    reply = await model.complete(messages, state.tool_specs, **state.settings.sampling())
    turn = TurnRecord(index=len(state.trace.turns), kind="tool_calls",
                      current_step=tracker.current if tracker and not tracker.finished else None,
                      state_prompt=state_prompt, model_text=reply.content, usage=reply.usage)
    state.trace.turns.append(turn)
    state.trace.usage = state.trace.usage + reply.usage
    try:
        result = await _act(state, turn, reply.content, reply.tool_calls)
    finally:
        turn.duration_s = time.perf_counter() - started
    return result


async def _act(state: RunState, turn: TurnRecord, content: str,
               tool_calls: list[dict[str, Any]]) -> TurnResult:
    try:
        parsed = parse_reply(content, tool_calls)
    except CallParseError as exc:
        state.history.append({"role": "assistant", "content": content})
        return _mistake(state, turn, f"Your tool call could not be read: {exc}.")
    if not parsed.calls:
        tracker = state.tracker
        at_end = tracker is None or tracker.finished or (tracker.step is not None
                                                         and tracker.step.finish)
        if parsed.text and at_end:
            turn.kind = "answer"
            return FinalAnswer(parsed.text)
        state.history.append({"role": "assistant", "content": content})
        return _mistake(state, turn, "Your reply did not call a tool. Reply with one tool "
                        "call; to answer the user, call the finish tool." + state.current_hint())
    calls = [c if c.call_id else ParsedCall(c.name, c.arguments, f"call_{uuid.uuid4().hex[:12]}")
             for c in parsed.calls]
    state.history.append({
        "role": "assistant", "content": "" if parsed.from_text else parsed.text,
        "tool_calls": [{"id": c.call_id, "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                       for c in calls]})
    mistakes = []
    for parsed_call in calls:
        if parsed_call.name == FINISH_TOOL:
            answer = parsed_call.arguments.get("answer")
            if isinstance(answer, str) and answer.strip():
                turn.kind = "answer"
                return FinalAnswer(answer.strip())
            record = ToolCallRecord(call_id=parsed_call.call_id, name=FINISH_TOOL,
                                    arguments=parsed_call.arguments,
                                    error="finish needs a non-empty string argument 'answer'",
                                    error_kind="invalid_arguments")
        else:
            record = await _execute(state, parsed_call)
        turn.calls.append(record)
        shown = record.result_text if record.ok else f"Error: {record.error}"
        state.history.append({"role": "tool", "tool_call_id": record.call_id,
                              "name": record.name, "content": shown})
        if record.error_kind in MODEL_MISTAKES:
            mistakes.append(record.error or "")
    if mistakes:
        return _mistake(state, turn, None)
    state.mistakes = 0
    if state.calls_made >= state.settings.max_steps:
        return _fail(turn, f"reached max_steps={state.settings.max_steps} tool calls "
                     "without an answer")
    return NextTurn()


def _mistake(state: RunState, turn: TurnRecord, feedback: str | None) -> TurnResult:
    """Count a model mistake; feed it back (tool errors are already in the history)."""
    state.mistakes += 1
    turn.kind = "retry"
    if feedback:
        turn.feedback = feedback
        state.history.append({"role": "user", "content": feedback})
    if state.mistakes > state.settings.max_retries:
        last = feedback or "; ".join(c.error or "" for c in turn.calls if not c.ok)
        return _fail(turn, f"the model made {state.mistakes} mistakes in a row "
                     f"(max_retries={state.settings.max_retries}); last: {last}")
    return NextTurn()


def _fail(turn: TurnRecord, reason: str) -> Failed:
    turn.kind = "failed"
    return Failed(reason)


def _signature(call: ParsedCall) -> str:
    return call.name + json.dumps(call.arguments, sort_keys=True, default=str)


async def _execute(state: RunState, call: ParsedCall) -> ToolCallRecord:
    """Run one call and record it; every way it can go wrong ends up in the record."""
    record = ToolCallRecord(call_id=call.call_id, name=call.name, arguments=call.arguments,
                            started_at=now())
    started = time.perf_counter()
    tool = state.registry.get(call.name)
    offered = ", ".join(sorted(state.allowed)) + ", finish"
    if tool is None:
        record.error, record.error_kind = (
            f"unknown tool {call.name!r}. Available tools: {offered}.", "unknown_tool")
        return record
    if call.name not in state.allowed:
        record.error, record.error_kind = (
            f"tool {call.name!r} is not part of this routine. Use one of: {offered}.",
            "not_allowed")
        return record
    signature = _signature(call)
    if state.seen_calls[signature] >= state.settings.max_repeats:
        record.error, record.error_kind = (
            f"you already called {call.name} with exactly these arguments "
            f"{state.seen_calls[signature]} times; its result is above. Do not repeat it; "
            "go on with the next step." + state.current_hint(), "repeated")
        return record
    arguments = state.memory.substitute(call.arguments)
    record.resolved_arguments = arguments
    state.calls_made += 1
    context = state.contexts.get(tool.toolset) or state.contexts.get("")
    try:
        value = await asyncio.wait_for(tool.invoke(arguments, context),
                                       state.settings.tool_timeout_s)
    except ToolArgumentsError as exc:
        record.error, record.error_kind = f"invalid arguments for {call.name}: {exc}", \
            "invalid_arguments"
    except asyncio.TimeoutError:
        record.error, record.error_kind = (
            f"{call.name} did not finish within {state.settings.tool_timeout_s:g} s", "timeout")
    except Exception as exc:  # the tool's own error: data for the model
        record.error, record.error_kind = f"{type(exc).__name__}: {exc}", "tool_error"
    else:
        _store_result(state, record, value)
    state.seen_calls[signature] += 1  # failed or not: the same call again is a loop
    record.duration_s = time.perf_counter() - started
    return record


def _store_result(state: RunState, record: ToolCallRecord, value: Any) -> None:
    data = jsonable(value)
    text = result_text(value)
    record.result = data
    shown = text
    if state.memory.is_long(text):
        entry = state.memory.store(data, text, record.name)
        record.memory_key = entry.key
        shown = state.memory.shown(entry)
    record.result_text = shown
    if state.tracker is not None:
        record.step_id = state.tracker.record(record.name, data)
        step = state.tracker.flow.steps.get(record.step_id or "")
        if step is not None and step.output:
            state.memory.store(data, text, record.name, step.id, name=step.output)
