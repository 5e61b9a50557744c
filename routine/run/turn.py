"""One turn of a run: ask the model, read its reply, run the calls it makes.

Kept apart from the run loop (``executor.py``) so the loop stays short. A turn
returns a tagged result: :class:`NextTurn`, :class:`FinalAnswer` or
:class:`Failed`, and appends ONE complete :class:`TurnRecord` to the trace. The
model's mistakes (unreadable call, unknown or forbidden tool, invalid arguments,
the same call in a loop) become messages back to the model and count toward
``max_retries``; a tool's own error is data shown to the model; an endpoint that
fails or refuses the request ends the run with the reason.

Everything that shows a model a prompt goes through :func:`take_turn`: a live
run, the evaluation's step samples (a model double that plays the gold calls)
and the oracle that makes the gold data (a model double that plays the routine's
own references). What one sees, the others see.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import re
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    ModelRateLimited,
    ModelRequestError,
    ModelRequestsForbidden,
    ModelServerError,
    ModelUnavailable,
    ModelUnreachable,
    ToolsetStopped,
)
from ..models.base import Model, ModelReply, TurnGuide
from ..models.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
    inert_markup,
    utf8_data,
    utf8_text,
)
from ..models.parsing import CallParseError, ParsedCall, parse_reply
from ..spec.format import Routine
from ..spec.references import parse_references
from ..tools.core import FINISH_TOOL, RunContext, Tool, ToolArgumentsError, ToolRegistry, result_text
from ..tools.core import to_jsonable as jsonable
from . import telemetry
from .approval import ApprovalRequest, Approver, Decision, decide
from .memory import VariableMemory
from .prompts import Planner
from .settings import RunSettings
from .trace import (
    ErrorKind,
    FailureKind,
    HandOff,
    Pending,
    RunTrace,
    ToolCallRecord,
    TurnKind,
    TurnRecord,
    now,
)
from .tracking import StepTracker

__all__ = ["RunState", "NextTurn", "FinalAnswer", "Failed", "Waiting", "HandedOff",
           "TurnResult", "take_turn", "request_messages", "turn_guide", "run_call",
           "signature_of"]

MODEL_MISTAKES: set[ErrorKind] = {"invalid_arguments", "unknown_tool", "not_allowed", "repeated",
                                  "off_routine"}


@dataclass
class NextTurn:
    """The run goes on."""


@dataclass
class FinalAnswer:
    answer: str


@dataclass
class Failed:
    reason: str
    kind: FailureKind = "model_mistakes"


@dataclass
class Waiting:
    """The run waits for the user (``state.pending`` says for what)."""

    message: str


@dataclass
class HandedOff:
    handoff: HandOff


TurnResult = NextTurn | FinalAnswer | Failed | Waiting | HandedOff


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
    call_ids: int = 0  # calls numbered so far (ids for calls the model sent without one)
    seen_calls: Counter[str] = field(default_factory=Counter)
    approver: Approver | None = None
    interactive: bool = False  # a conversation: questions and confirmations go to the user
    pending: Pending | None = None
    confirmed: tuple[str, str] | None = None  # (call signature, the user's words) said yes to
    #: what ends the run outside the model's doing: the endpoint failed a request outside
    #: the turn loop (reading inputs), or a toolset's server stopped
    fatal: Failed | None = None
    #: calls that were running when the run was cancelled (its time limit): kept in the trace
    in_flight: list[ToolCallRecord] = field(default_factory=list)
    #: calls that ran in the conversation's earlier routines (before a hand-off to this one)
    before: list[ToolCallRecord] = field(default_factory=list)

    @property
    def history(self) -> list[Message]:
        return self.trace.messages

    def offers_finish(self) -> bool:
        """Whether the requests offer the ``finish`` tool (the full prompt style, guided
        decoding); under the compact style the model answers in plain text."""
        return any(t["function"]["name"] == FINISH_TOOL for t in self.tool_specs)

    def current_hint(self) -> str:
        """A short pointer to the current step, for error feedback."""
        if self.tracker is None or self.tracker.finished or self.tracker.step is None:
            return ""
        answer = "call finish" if self.offers_finish() else "answer the user in plain text"
        tools = " or ".join(dict.fromkeys(answer if t == FINISH_TOOL else f"call {t}"
                                          for t in self.tracker.expected_tools()))
        step = self.tracker.step
        return f" You are at step {self.tracker.label(step.id)} ({step.name}): {tools}."


_TELL_USER = "Do not retry it; tell the user it was not approved."
_FAILED_OVER = "the routine continues with its on_error steps"
_UNKNOWN_OUTCOME = "Do not repeat it; tell the user it is unknown whether it went through."
_MISTYPED: set[str] = set()  # tools whose mistyped result was warned about (once each)
_log = logging.getLogger(__name__)


@dataclass
class _Outcome:
    """What acting on a reply came to; becomes the turn's record."""

    result: TurnResult
    kind: TurnKind
    calls: list[ToolCallRecord] = field(default_factory=list)
    feedback: str | None = None


async def notify(on_turn: Callable[[TurnRecord], Any] | None, turn: TurnRecord) -> None:
    """Call a run's ``on_turn`` with a turn it completed (a coroutine function's call is
    awaited). The callback watches the run (a progress bar, a metrics backend): one that
    raises is logged and the run goes on — its writes are made, and its trace must not be
    lost to a watcher's failure."""
    if on_turn is None:
        return
    try:
        watched = on_turn(turn)
        if inspect.isawaitable(watched):  # an async watcher (a websocket, a queue)
            await watched
    except Exception as exc:  # noqa: BLE001 - the watcher's failure, not the run's
        _log.warning(f"on_turn raised {type(exc).__name__}: {exc} (turn {turn.index}); the "
                     "run goes on")


def request_messages(state: RunState) -> tuple[list[Message], str | None]:
    """The messages of the next request: the history, then the state prompt (if any)."""
    state_prompt = state.planner.state_prompt(state.tracker, state.memory)
    messages = list(state.history)
    if state_prompt:
        messages.append(SystemMessage(content=state_prompt))
    return messages, state_prompt


def turn_guide(state: RunState) -> TurnGuide | None:
    """What the routine allows at this turn (None without a routine or once it is done)."""
    tracker = state.tracker
    if tracker is None or tracker.finished or tracker.step is None:
        return None
    step = tracker.step
    flow = tracker.flow
    constrain = state.settings.decoding == "guided"
    if step.finish:
        return TurnGuide(step.id, flow.labels[step.id], (FINISH_TOOL,), constrain=constrain)
    allowed = {tool: flow.steps[node] for tool, node in tracker.allowed_here().items()}
    calls = state.trace.tool_calls
    may_end = FINISH_TOOL in tracker.expected_tools() or bool(calls) and _gave_way(calls[-1])
    tools = tuple(allowed) + ((FINISH_TOOL,) if may_end else ())
    key_of = state.memory.key_of  # a long result is passed by its memory key
    known = {tool: {a.name: key_of(a.value) or a.value
                    for a in tracker.arguments(target) if a.known}
             for tool, target in allowed.items()}
    per_option = {tool: [{a.name: key_of(a.value) or a.value
                          for a in tracker.fixed_arguments(flow.steps[node])}
                         for node in tracker.options_for(tool)] for tool in allowed}
    fixed = {tool: _common(values) for tool, values in per_option.items()}
    named = {tool: tuple(tuple(sorted(flow.steps[node].args))
                         for node in tracker.options_for(tool)) for tool in allowed}
    if step.branch:  # options that start with one tool: what they share, and each one's
        variants = {tool: tuple(values) for tool, values in per_option.items()
                    if len(values) > 1}
        return TurnGuide(step.id, flow.labels[step.id], tools, known, (),
                         branch_undecided=True, fixed=fixed, constrain=constrain,
                         variants=variants, named=named)
    unknown = tuple(a.name for a in tracker.arguments() if not a.known)
    sources = {}
    for name in unknown:
        refs = parse_references(step.args.get(name))
        if len(refs) == 1 and refs[0].whole and refs[0].kind == "inputs" and not refs[0].path:
            sources[name] = refs[0].name
    return TurnGuide(step.id, flow.labels[step.id], tools, known, unknown, fixed=fixed,
                     constrain=constrain, sources=sources, named=named)


def _gave_way(call: ToolCallRecord) -> bool:
    """The call failed in a way the model may answer to, not retry: the tool raised or
    timed out (and the routine has no on_error for it), it was refused approval, or it
    repeats a call that timed out. The
    guided reply schema then lets ``finish`` through too: else it holds the model to the
    same call, which fails again."""
    error = call.error or ""
    return (call.error_kind in ("tool_error", "timeout") and _FAILED_OVER not in error) or (
        call.error_kind == "denied" and _TELL_USER in error) or (
        call.error_kind == "repeated" and _UNKNOWN_OUTCOME in error)


def _common(fixed: list[dict[str, Any]]) -> dict[str, Any]:
    """The values every one of several options fixes alike."""
    if not fixed:
        return {}
    return {k: v for k, v in fixed[0].items() if all(k in f and f[k] == v for f in fixed[1:])}


MODEL_FAILURES = (ModelRequestError, ModelServerError, ModelUnavailable)


def request_failure(exc: Exception) -> Failed:
    """How a model request that failed (one of MODEL_FAILURES, after the client's retries)
    ends the run."""
    if isinstance(exc, ModelRateLimited):
        return Failed(f"model request failed: {exc}", "rate_limited")
    if isinstance(exc, (ModelServerError, ModelUnreachable)):
        return Failed(f"model request failed: {exc}", "endpoint")
    if isinstance(exc, ModelRequestError):
        return Failed(f"model request failed: {exc}", "request_refused")
    return Failed(f"model unavailable: {exc}", "unavailable")  # the key refused, no model


async def take_turn(state: RunState, model: Model) -> TurnResult:
    """Ask the model once, act on its reply, and record the turn."""
    started = time.perf_counter()
    tracker = state.tracker
    current = tracker.current if tracker is not None and not tracker.finished else None
    messages, state_prompt = request_messages(state)
    history_length = len(state.history)
    reply = ModelReply()
    try:
        with telemetry.model_span(state, model, messages, current) as span:
            reply = span.reply(await model.complete(
                messages, state.tool_specs, guide=turn_guide(state), **state.settings.sampling()))
    except ModelRequestsForbidden:
        raise  # a unit test reached for a real model: the test's bug
    except MODEL_FAILURES as exc:
        outcome = _Outcome(request_failure(exc), "failed")
    else:
        outcome = await _act(state, reply.content, reply.tool_calls, reply.finish_reason)
    state.trace.turns.append(TurnRecord(
        index=len(state.trace.turns), kind=outcome.kind, current_step=current,
        state_prompt=state_prompt, history_length=history_length,
        model_text=reply.content, calls=outcome.calls,
        feedback=outcome.feedback, usage=reply.usage, decoding=reply.decoding,
        finish_reason=reply.finish_reason, reasoning=reply.reasoning, note=reply.note or None,
        duration_s=time.perf_counter() - started))
    state.trace.usage = state.trace.usage + reply.usage
    return outcome.result


def _release_inputs(state: RunState, tool: str, arguments: dict[str, Any],
                    faulty: tuple[str, ...]) -> str:
    """An argument the routine sets to exactly ``${inputs.NAME}`` that the tool refuses
    ("20/02/2026" for a date): the user's words, not the model's mistake. The input is
    released, so the model may write it as the tool expects (and that becomes the input's
    value, as when the model fills one); returns what the model is told."""
    tracker = state.tracker
    step = tracker.step_for(tool) if tracker is not None else None
    released = []
    for name in faulty:
        refs = parse_references(step.args.get(name)) if step is not None else []
        if len(refs) == 1 and refs[0].whole and refs[0].kind == "inputs" and not refs[0].path \
                and refs[0].name in tracker.inputs \
                and _same_value(tracker.inputs[refs[0].name], arguments.get(name)):
            released.append(f"{refs[0].name} = {arguments.get(name)!r}")
            tracker.inputs.pop(refs[0].name)
            state.trace.inputs.pop(refs[0].name, None)
    if not released:
        return ""
    return (f" ({', '.join(released)} is what the user said: write it the way the tool "
            "takes it)")


def _same_value(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b) or str(a) == str(b)


def _may_answer(state: RunState) -> bool:
    """Whether an answer ends the run now: at the routine's end (or with no routine), or,
    where ``finish`` is not offered, the compact style's way of finishing after a failure
    (told once to call a tool, the model answers again right after a tool error; told to
    tell the user after a refusal, a timeout or a refused repeat of a call that timed out,
    at once: it may not send the call again, so telling it to was a contradiction)."""
    tracker = state.tracker
    if tracker is None or tracker.finished or FINISH_TOOL in tracker.expected_tools():
        return True
    calls, turns = state.trace.tool_calls, state.trace.turns
    told_once = bool(turns) and turns[-1].kind == "retry" and not turns[-1].calls
    return bool(calls) and not state.offers_finish() and _gave_way(calls[-1]) and (
        calls[-1].error_kind in ("denied", "repeated", "timeout") or told_once)


def _cut_off(state: RunState, finish_reason: str | None) -> str:
    """What the model is told of a reply the endpoint ended before the model did ("" for
    one that ended normally)."""
    if finish_reason == "length":
        return (f"Your reply was cut off at the token limit (max_tokens="
                f"{state.settings.max_tokens}) before it ended: reply again, shorter "
                "(think less).")
    if finish_reason == "content_filter":
        return "Your reply was stopped by the endpoint's content filter: reply again without it."
    return ""


async def _act(state: RunState, content: str, tool_calls: list[dict[str, Any]],
               finish_reason: str | None = None) -> _Outcome:
    cut = _cut_off(state, finish_reason)
    try:
        parsed = parse_reply(content, tool_calls, state.tool_specs)
    except CallParseError as exc:
        state.history.append(AssistantMessage(content=content))
        return _mistake(state, [], f"Your tool call could not be read: {exc}."
                        + (f" {cut}" if cut else ""))
    if not parsed.calls:
        may_answer = _may_answer(state)
        if parsed.text and may_answer and not cut:
            return _Outcome(FinalAnswer(parsed.text), "answer")
        state.history.append(AssistantMessage(content=content))
        if cut:  # a cut-off answer is not the answer
            return _mistake(state, [], cut + state.current_hint())
        if may_answer:
            how = "call the finish tool" if state.offers_finish() else "answer the user"
            return _mistake(state, [], f"Your reply was empty: {how}.")
        how = ("to answer the user, call the finish tool" if state.offers_finish() else
               "the answer comes at the routine's finish step, after its tool steps")
        return _mistake(state, [], f"Your reply did not call a tool. Reply with one tool "
                        f"call; {how}." + state.current_hint())
    calls: list[ParsedCall] = []
    used = {c.call_id for c in state.trace.tool_calls}
    for parsed_call in parsed.calls:  # ids the model did not give, or gave twice: numbered
        if not parsed_call.call_id or parsed_call.call_id in used:  # (so reruns match)
            while f"call_{state.call_ids}" in used:  # (an id the server gave earlier)
                state.call_ids += 1
            parsed_call = ParsedCall(parsed_call.name, parsed_call.arguments,
                                     f"call_{state.call_ids}")
        used.add(parsed_call.call_id)
        calls.append(parsed_call)
        state.call_ids += 1
    state.history.append(AssistantMessage(
        content="" if parsed.from_text else parsed.text,
        tool_calls=[ToolCall.of(c.call_id, c.name, c.arguments) for c in calls]))
    records: list[ToolCallRecord] = []
    mistakes = []
    for parsed_call in calls:
        last = state.trace.tool_calls[-1:]
        if parsed_call.name == FINISH_TOOL and not state.offers_finish() and not (
                _may_answer(state) or last and _gave_way(last[0])):  # (as the schema allows)
            record = ToolCallRecord(call_id=parsed_call.call_id, name=FINISH_TOOL,
                                    arguments=parsed_call.arguments, error_kind="not_allowed",
                                    error="finish is not allowed yet: the routine's steps "
                                    "come first." + state.current_hint())
        elif parsed_call.name == FINISH_TOOL:
            answer = parsed_call.arguments.get("answer")
            if isinstance(answer, str) and answer.strip():
                return _Outcome(FinalAnswer(answer.strip()), "answer", records)
            record = ToolCallRecord(call_id=parsed_call.call_id, name=FINISH_TOOL,
                                    arguments=parsed_call.arguments,
                                    error="finish needs a non-empty string argument 'answer'",
                                    error_kind="invalid_arguments")
        elif state.pending is not None:  # an earlier call of this reply waits for a yes
            record = ToolCallRecord(call_id=parsed_call.call_id, name=parsed_call.name,
                                    arguments=parsed_call.arguments,
                                    error_kind="awaiting_confirmation",
                                    error="not run: an earlier call waits for the user's "
                                    "confirmation (one at a time); send it again after")
        elif state.calls_made >= state.settings.max_steps:  # a flood of calls in one reply
            record = ToolCallRecord(call_id=parsed_call.call_id, name=parsed_call.name,
                                    arguments=parsed_call.arguments, error_kind="over_budget",
                                    error=f"not run: the run's {state.settings.max_steps} tool "
                                    "calls (max_steps) are spent")
        else:
            record = await _execute(state, parsed_call)
        records.append(record)
        shown = record.result_text if record.ok else f"Error: {record.error}"
        state.history.append(ToolMessage(tool_call_id=record.call_id, name=record.name,
                                         content=shown or ""))
        if record.error_kind in MODEL_MISTAKES:
            mistakes.append(record.error or "")
    if state.pending is not None:  # a call waits for the user's yes: ask, and wait
        # (the executor's words, built from tool results: no chat-template marker in them
        # may open a turn of its own, as none may in a tool's message)
        state.history.append(AssistantMessage(content=inert_markup(state.pending.message)))
        return _Outcome(Waiting(state.pending.message), "confirm", records)
    if mistakes:
        return _mistake(state, records, None)
    state.mistakes = 0
    if state.calls_made >= state.settings.max_steps:
        return _Outcome(Failed(f"reached max_steps={state.settings.max_steps} tool calls "
                               f"without an answer{_progress(state, records)}", "max_steps"),
                        "failed", records)
    return _Outcome(NextTurn(), "tool_calls", records)


def _progress(state: RunState, records: list[ToolCallRecord]) -> str:
    """What a run that stopped part-way had done: the calls that ran (before this turn's
    ``records``, and those), by tool, and where the routine stood (a loop's item), so nobody
    has to guess which writes happened."""
    ran = Counter(c.name for c in [*state.trace.tool_calls, *records] if c.ok)
    done = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in ran.items())
    where = ""
    tracker = state.tracker
    if tracker is not None and not tracker.finished and tracker.step is not None:
        where = f"; it stood at step {tracker.label(tracker.step.id)} ({tracker.step.name})"
        for frame in tracker.frames:
            where += f", item {frame.index + 1} of {len(frame.items)}"
        if tracker.frames:
            where += " (a loop's calls count for every item: raise max_steps)"
    return f" (calls that ran: {done or 'none'}{where})"


def _mistake(state: RunState, records: list[ToolCallRecord], feedback: str | None) -> _Outcome:
    """Count a model mistake; feed it back (tool errors are already in the history)."""
    state.mistakes += 1
    if feedback:
        state.history.append(UserMessage(content=feedback))
    if state.mistakes > state.settings.max_retries:
        last = feedback or "; ".join(c.error or "" for c in records if not c.ok)
        return _Outcome(Failed(f"the model made {state.mistakes} mistakes in a row "
                               f"(max_retries={state.settings.max_retries}); last: {last}"),
                        "failed", records, feedback)
    return _Outcome(NextTurn(), "retry", records, feedback)


def _position(state: RunState, tool: str) -> str:
    """Where in the routine a call of ``tool`` would be now: the step it completes, that
    step's visit and every loop's item. The same call at a new visit or for the next item
    (a fee charged for each card) is not a repeat; the same call at one place is."""
    tracker = state.tracker
    if tracker is None or tracker.finished:
        return ""
    node = tracker.allowed_here().get(tool)
    visit = tracker.visits.get(node, 0) if node else 0
    return "".join(f"/{f.loop}:{f.index}" for f in tracker.frames) + (
        f"@{node}#{visit}" if visit > 1 else "")  # (a first visit: as a call past its step)


def _signature(call: ParsedCall) -> str:
    return signature_of(call.name, call.arguments)


def signature_of(name: str, arguments: dict[str, Any]) -> str:
    """A call as one string: the same call twice is the same string (loops, confirmations)."""
    return name + json.dumps(arguments, sort_keys=True, default=str)


async def _execute(state: RunState, call: ParsedCall) -> ToolCallRecord:
    """Run one call and record it (in a span when telemetry is on)."""
    with telemetry.tool_span(state, call.name, call.call_id, call.arguments) as span:
        return span.record(await _execute_call(state, call))


async def _execute_call(state: RunState, call: ParsedCall) -> ToolCallRecord:
    """Run one call and record it; every way it can go wrong ends up in the record."""
    base = {"call_id": call.call_id, "name": call.name, "arguments": call.arguments,
            "started_at": now()}
    started = time.perf_counter()
    tool = state.registry.get(call.name)
    offered = ", ".join(sorted(state.allowed)) + (", finish" if state.offers_finish() else "")
    if tool is None:
        return ToolCallRecord(**base, error=f"unknown tool {call.name!r}. Available tools: "
                              f"{offered}.", error_kind="unknown_tool")
    if call.name not in state.allowed:
        return ToolCallRecord(**base, error=f"tool {call.name!r} is not part of this routine. "
                              f"Use one of: {offered}.", error_kind="not_allowed")
    signature = _signature(call)
    seen = signature + _position(state, call.name)
    if any(c.error_kind == "timeout" and signature_of(c.name, c.arguments) == signature
           for c in state.trace.tool_calls):  # it may have done its work after all
        return ToolCallRecord(**base, error=(
            f"not run: the same {call.name} call timed out before and may still have done "
            f"its work (a write may have been made): it is not sent twice. {_UNKNOWN_OUTCOME}"
            ), error_kind="repeated")
    if state.seen_calls[seen] >= state.settings.max_repeats:
        ran = any(c.ok and signature_of(c.name, c.arguments) == signature
                  for t in state.trace.turns for c in t.calls)
        said = ("its result is above. Do not repeat it; go on with the next step." if ran else
                "it was refused each time, for the reason above: change what it says.")
        return ToolCallRecord(**base, error=(
            f"you already sent {call.name} with exactly these arguments "
            f"{state.seen_calls[seen]} times; {said}" + state.current_hint()),
            error_kind="repeated")
    arguments = state.memory.substitute(call.arguments)
    tracker = state.tracker
    if tracker is not None and not tracker.finished and (step_now := tracker.step_for(call.name)):
        for fixed in tracker.fixed_arguments(step_now):  # a value the routine sets is a value,
            if call.arguments.get(fixed.name) == fixed.value:  # even if it reads "memory_1"
                arguments[fixed.name] = fixed.value
    if state.settings.enforce_steps and tracker is not None and not tracker.finished:
        try:  # arguments that do not fit the tool: that message first
            tool.validate_arguments(arguments)
        except ToolArgumentsError as exc:
            state.seen_calls[seen] += 1
            said = _release_inputs(state, call.name, arguments, exc.arguments)
            return ToolCallRecord(**base, resolved_arguments=arguments,
                                  error=f"invalid arguments for {call.name}: {exc}{said}",
                                  error_kind="invalid_arguments")
        broken = tracker.contract(call.name, arguments)
        if broken:  # the step contract: the call does not run; the model is told why
            state.seen_calls[seen] += 1
            return ToolCallRecord(**base, resolved_arguments=arguments, error_kind="off_routine",
                                  error=f"not run: {broken}." + state.current_hint())
    decision = None
    step = tracker.step_for(call.name, arguments) if tracker is not None else None
    if (step is None or not step.confirm) and state.routine is not None:
        # a call out of order (the contract off) must not slip past a confirmation
        step = next((s for s, _ in state.routine.walk() if s.tool == call.name and s.confirm),
                    step)
    if step is not None and step.confirm and tracker is not None and \
            not state.settings.enforce_steps and (
                broken := tracker.unlike(step, arguments) or tracker.unsourced(step)):
        state.seen_calls[seen] += 1  # the user would confirm what the routine says, not this
        return ToolCallRecord(**base, resolved_arguments=arguments, error_kind="off_routine",
                              error=f"not run: {broken}: step {step.id} asks the user to "
                              "confirm the routine's values." + state.current_hint())
    if step is not None and step.confirm and state.interactive:
        if state.confirmed is None or state.confirmed[0] != signature:
            message = confirm_message(tracker, step, call.name, arguments)
            failed = next((c for c in reversed(state.trace.tool_calls)  # after the user's yes
                           if c.error_kind == "tool_error" and c.approval is not None
                           and c.approval.by == "user"
                           and signature_of(c.name, c.arguments) == signature), None)
            if failed is not None:  # the same question again must not read as the first one
                message = (f"That did not go through: {failed.error} (it may have made "
                           f"changes). {message}")
            state.pending = Pending(kind="confirmation", step_id=step.id, tool=call.name,
                                    arguments=arguments, message=message)
            return ToolCallRecord(**base, resolved_arguments=arguments,
                                  error_kind="awaiting_confirmation",
                                  error="not run yet: waiting for the user to confirm it")
        decision = Decision(approved=True, by="user", reason=state.confirmed[1], at=now())
        state.confirmed = None
    # the user's yes answers the confirmation; an approval the routine or the tool requires
    # (a supervisor, a policy) is still asked for after it
    reason, step_id = _approval_reason(state, call.name, tool, arguments,
                                       confirmed=decision is not None)
    if reason:
        confirmed = decision
        decision = await decide(state.approver, ApprovalRequest(
            run_id=state.trace.run_id, routine=state.trace.routine, tool=call.name,
            step_id=step_id,
            arguments=arguments, reason=reason))
        if decision.approved and confirmed is not None:  # both: the user's yes, and this
            decision = confirmed.model_copy(update={"reason": (
                f"{confirmed.reason}; approved by {decision.by} ({decision.reason})")})
        if not decision.approved:
            state.seen_calls[seen] += 1
            then = _TELL_USER
            if step is not None and tracker is not None and step.id in tracker.flow.steps:
                # as when the user says no: the routine's on_decline, else the run ends and
                # the executor (not the model, which could claim it ran) says what was done
                target = tracker.decline(step.id)
                then = (f"The routine continues at step {tracker.label(target)}." if target in
                        tracker.flow.steps else "Nothing was changed.")
            return ToolCallRecord(**base, resolved_arguments=arguments, approval=decision,
                                  error_kind="denied", error=f"not run: not approved by "
                                  f"{decision.by} ({decision.reason}). {then}")
    state.calls_made += 1
    context = state.contexts.get(tool.toolset) or state.contexts.get("")
    outcome: dict[str, Any]
    try:
        # (a copy: a tool that changes what it is given must not change an earlier step's
        # output, which later steps read, nor the call's record)
        value = await asyncio.wait_for(tool.invoke(copy.deepcopy(arguments), context),
                                       state.settings.tool_timeout_s)
        took = time.perf_counter() - started
        if took > state.settings.tool_timeout_s:  # only an async tool that blocks gets here
            _log.warning(f"tool {call.name} held the event loop for {took:.1f} s, past "
                         f"tool_timeout_s={state.settings.tool_timeout_s:g}: an async tool "
                         "that calls blocking code (time.sleep, a sync client) cannot be "
                         "stopped and stalls every run; make it a plain def (it then runs "
                         "in a thread) or await non-blocking calls")
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and not task.cancelling():  # nobody cancelled the run: the tool
            outcome = {"error": error_text(exc), "error_kind": "tool_error"}  # raised it
        else:  # the run's time limit (or its caller) ended it mid-call
            state.in_flight.append(ToolCallRecord(
                **base, resolved_arguments=arguments, approval=decision, error_kind="timeout",
                error=f"{call.name} was running when the run ended (its time limit): whether "
                "it did its work is unknown", duration_s=time.perf_counter() - started))
            raise
    except ToolArgumentsError as exc:
        outcome = {"error": f"invalid arguments for {call.name}: {exc}",
                   "error_kind": "invalid_arguments"}
    except TimeoutError:
        outcome = {"error": f"{call.name} did not finish within "
                   f"{state.settings.tool_timeout_s:g} s (it may still finish: whether it did "
                   f"its work is unknown). {_UNKNOWN_OUTCOME}", "error_kind": "timeout"}
    except ToolsetStopped as exc:  # every later call would fail too: the run ends
        outcome = {"error": str(exc), "error_kind": "tool_error"}
        state.fatal = Failed(str(exc), "toolset")
    except BaseException as exc:  # the tool's own error: data for the model (a SystemExit,
        # a GeneratorExit or a BaseException of its own from an async tool too: none may end
        # the run and lose its trace)
        if is_tool_bug(exc):  # ... unless it is a bug: the run ends, naming it
            outcome = {"error": f"{error_text(exc)} — a bug in the tool, not sent to the "
                       f"model: {_where(exc)}", "error_kind": "tool_bug"}
            state.fatal = Failed(f"tool {call.name} has a bug: {outcome['error']}", "tool_bug")
        else:
            outcome = {"error": error_text(exc), "error_kind": "tool_error"}
    else:
        try:
            outcome = _store_result(state, call.name, value, arguments)
        except Exception as exc:  # a result that is not data (an open file, a row object...)
            outcome = {"error": f"{call.name} ran (what it did is done), but returned a value "
                       f"that cannot be kept as data: {type(exc).__name__}: {exc} — return "
                       "a dict, a list, a model or a dataclass", "error_kind": "tool_bug"}
            state.fatal = Failed(f"tool {call.name} has a bug: {outcome['error']}", "tool_bug")
    state.seen_calls[seen] += 1  # failed or not: the same call again is a loop
    # (a timeout is no failure to recover from: whether the call did its work is unknown)
    if outcome.get("error_kind") == "tool_error" and tracker is not None:
        failed_over = tracker.record_error(call.name)
        if failed_over is not None:  # the routine says what to do instead (on_error)
            outcome["error"] += f" (step {tracker.label(failed_over)} failed: {_FAILED_OVER})"
    return ToolCallRecord(**base, resolved_arguments=arguments, **outcome, approval=decision,
                          duration_s=time.perf_counter() - started)


MAX_ERROR_CHARS = 2000  # a tool's error text is cut here: it is sent with every request
# what a tool raises only when its code is wrong (the arguments are checked before it runs,
# so no user's words make them): never the model's to fix, nor a path for on_error
_BUGS = (TypeError, AttributeError, NameError, ImportError, AssertionError,
         NotImplementedError, RecursionError, SyntaxError, sqlite3.ProgrammingError)
_SQL_BUG = re.compile(r"no such (column|table|function)|syntax error|has no column named|"
                      r"incorrect number of bindings", re.I)
_ROW_KEY_MISS = "No item with that key"  # what a sqlite3.Row says of a column it lacks


def is_tool_bug(exc: BaseException) -> bool:
    """Whether a tool's exception is a bug in its code (a TypeError, a misspelt SQL column)
    rather than an answer about the request (LookupError, ValueError, a service's error)."""
    if isinstance(exc, BaseExceptionGroup):  # an async tool's TaskGroup: a bug in any task
        return any(is_tool_bug(e) for e in exc.exceptions)
    if isinstance(exc, sqlite3.OperationalError):
        return bool(_SQL_BUG.search(str(exc)))
    if type(exc) is IndexError and str(exc) == _ROW_KEY_MISS:  # row["misspelt column"]
        return True
    return isinstance(exc, _BUGS)


def _where(exc: BaseException) -> str:
    """The innermost frame of ``exc``'s traceback: file:line in function (a group's: that
    of the bug inside it)."""
    if isinstance(exc, BaseExceptionGroup):
        return _where(next((e for e in exc.exceptions if is_tool_bug(e)), exc.exceptions[0]))
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "(no traceback)"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


def error_text(exc: BaseException) -> str:
    """A tool's exception as one line for the model: its type and text, cut at
    MAX_ERROR_CHARS; an exception whose text itself fails is named by its type."""
    try:
        text = str(exc)
    except Exception as failed:  # noqa: BLE001 - the exception's own __str__ raised
        text = f"(its message could not be read: {type(failed).__name__})"
    if isinstance(exc, BaseExceptionGroup):  # what each task raised, not "1 sub-exception"
        text = f"{exc.message}: " + "; ".join(error_text(e) for e in exc.exceptions)
    text = utf8_text(text)  # (an OSError naming a file that is not UTF-8)
    if len(text) > MAX_ERROR_CHARS:
        text = f"{text[:MAX_ERROR_CHARS]}… [{len(text) - MAX_ERROR_CHARS} more characters]"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _approval_reason(state: RunState, name: str, tool: Tool, arguments: dict[str, Any],
                     confirmed: bool = False) -> tuple[str, str | None]:
    """Why this call needs a decision before it runs ("" if it does not), and the step it
    completes here: that step, or any step of the routine that calls this tool, requires
    approval (a call out of order, with the contract off, must not slip past it), or the
    tool does. At an undecided branch the step is the option the call's values keep to (a
    bonus, not the correction that starts with the same tool); of two it may be, one that
    requires approval."""
    steps = state.tracker.steps_for(name, arguments) if state.tracker is not None else []
    step = next((s for s in steps if s.approval == "required"), steps[0] if steps else None)
    here = step.id if step is not None else None
    if step is None and state.routine is not None:
        step = next((s for s, _ in state.routine.walk()
                     if s.tool == name and s.approval == "required"), None)
    if step is not None and step.approval == "required":
        return f"step {step.id} ({step.name}) requires approval", here
    if step is not None and step.confirm and not confirmed:
        return f"step {step.id} ({step.name}) asks the user to confirm", here
    if tool.approval:
        return f"the tool {name} requires approval", here
    return "", here


def _store_result(state: RunState, tool: str, value: Any, arguments: dict[str, Any]
                  ) -> dict[str, Any]:
    """Keep a result (variable memory, the tracker); return its part of the call record."""
    data = jsonable(value)
    declared = state.registry.get(tool)
    if declared is not None and tool not in _MISTYPED and (why := declared.result_problem(data)):
        _MISTYPED.add(tool)  # the tool's own bug: said once, the run goes on with the value
        _log.warning(f"tool {tool} returned a value its return type does not describe ({why}); "
                     "references into its output were validated against that type")
    text = result_text(value, data)
    if (clean := utf8_text(text)) is not text:  # a lone surrogate (a file name that is not
        text, data = clean, utf8_data(data)  # UTF-8): no request nor trace could take it
    shown, memory_key = text, None
    if state.memory.is_long(text):
        entry = state.memory.store(data, text, tool)
        memory_key = entry.key
        shown = state.memory.shown(entry)
    step_id = None
    if state.tracker is not None:
        step_id = state.tracker.record(tool, data, arguments)
        step = state.tracker.flow.steps.get(step_id or "")
        if step is not None and step.output:
            state.memory.store(data, text, tool, step.id, name=step.output)
    return {"result": data, "result_text": shown, "memory_key": memory_key, "step_id": step_id}


def confirm_message(tracker: StepTracker, step: Any, tool: str, arguments: dict[str, Any]) -> str:
    """What the user is asked before a confirmed call runs: the step's own text, or the
    step and every argument value. The step's own text is followed by every value of the
    call it does not show that the routine does not fix (an optional argument the model
    added): the user's yes covers only what they were shown. Whether the text shows a
    value is read from the template (the inputs it names), never from the rendered words:
    a fee of 10 is not shown by "Send 100 EUR", nor a memo "A" by "Ana"."""
    if isinstance(step.confirm, str):
        try:
            text = tracker.render(step.confirm, tracker.inputs_in_call(step, arguments))
        except Exception:  # noqa: BLE001 - a value the text needs is missing: say it plainly
            pass
        else:
            fixed = {a.name for a in tracker.fixed_arguments(step)  # (a value it keeps)
                     if arguments.get(a.name) == a.value}
            fixed |= tracker.arguments_shown(step, step.confirm)
            unseen = {k: v for k, v in arguments.items() if k not in fixed and v is not None}
            if not unseen:
                return text
            return f"{text}\nAlso in this {tool} call: {_values(unseen)}."
    return f"Before I go on: {step.name.lower()} ({tool}: {_values(arguments)}). " \
        "Shall I go ahead? (yes/no)"


def _values(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False, default=str)}"
                     for k, v in arguments.items())


async def run_call(state: RunState, name: str, arguments: dict[str, Any]) -> ToolCallRecord:
    """Run one call the routine (not the model) makes — a confirmed call after the user's
    yes — as if the model had sent it: the call and its result enter the history."""
    call = ParsedCall(name, arguments, f"call_{state.call_ids}")
    state.call_ids += 1
    state.history.append(AssistantMessage(content="", tool_calls=[
        ToolCall.of(call.call_id, name, arguments)]))
    record = await _execute(state, call)
    shown = record.result_text if record.ok else f"Error: {record.error}"
    state.history.append(ToolMessage(tool_call_id=record.call_id, name=name, content=shown or ""))
    return record
