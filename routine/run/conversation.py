"""Conversations: a routine run over several messages from the user.

    with agent.conversation() as chat:
        reply = chat.send("I want to cancel an order")       # -> Reply(text, status, ...)
        while reply.status == "waiting":
            reply = chat.send(input(reply.text + "\n> "))

A run pauses when its routine asks the user something (an ``ask`` step, a ``confirm``
before a write) and the next :meth:`Conversation.send` answers it; the tools' session
(a database connection, say) stays open across messages. A ``handoff`` step passes the
conversation to another routine of ``routines``, carrying the inputs it names. A new
message after a run has ended starts the routine again in the same session.

Each run's trace holds where a waiting run stands (``trace.state``: the tracker, the
variable memory, what it waits for), so ``Conversation(agent, trace=trace)`` resumes a
conversation from its last trace — in another process too, for tools whose state
lives outside the process (a real database).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import RoutineError
from ..spec.format import Routine
from ..spec.loader import LoadedRoutine
from . import telemetry
from .blocking import run_blocking
from .inputs import extract_inputs
from .interaction import answer_pending, what_ran
from .memory import MemoryEntry
from .printable import utf8_text
from .signing import trace_key as signing_key
from .signing import verify_trace
from .trace import RunTrace, ToolCallRecord, TurnRecord
from .tracking import LoopFrame
from .turn import Failed, NextTurn, RunState, notify

__all__ = ["Conversation", "Reply", "MAX_HANDOFFS"]

MAX_HANDOFFS = 5  # hand-offs in a row without the user's word: past it, a circle


class Reply(BaseModel):
    """What the agent says back to one message, and where the conversation stands."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str = Field(description="The agent's message to the user.")
    status: Literal["waiting", "answered", "failed", "handed_off"]
    waiting_for: Literal["inputs", "confirmation"] | None = Field(
        None, description="While waiting: a question's values, or a yes/no.")
    routine: str | None = None
    trace: RunTrace = Field(repr=False)


class Conversation:
    """A multi-turn conversation with one agent (see the module's docstring).

    Args:
        agent: the Agent (routine, tools, model, settings, approver).
        routines: routines a ``handoff`` may pass to, by name.
        inputs: input values known before the first message.
        trace: a waiting run's trace to resume from.
        trace_key: the key its signature is checked with (default: ``ROUTINE_TRACE_KEY``;
            :mod:`routine.run.signing`).
        on_turn: called with each turn's record as it completes.
    """

    def __init__(self, agent: Any, *, routines: Mapping[str, Routine | LoadedRoutine] | None
                 = None, inputs: dict[str, Any] | None = None, trace: RunTrace | None = None,
                 on_turn: Callable[[TurnRecord], None] | None = None,
                 trace_key: str | bytes | None = None):
        self.trace_key = trace_key
        signing_key(trace_key)  # a bad key is said now, not after the tools have acted
        self.agent = agent
        self.routines = {name: r.routine if isinstance(r, LoadedRoutine) else r
                         for name, r in (routines or {}).items()}
        if agent.routine is not None:  # a hand-off back to where the conversation began
            self.routines.setdefault(agent.routine.name, agent.routine)
            if missing := unreachable_handoffs(agent.routine, self.routines):
                raise RoutineError(  # before anything runs (a write, then a dead end)
                    f"routine {agent.routine.name!r} can hand off to "
                    f"{', '.join(map(repr, missing))}, which this conversation does not have: "
                    "pass them in routines={name: routine} (routines: "
                    f"{', '.join(self.routines) or 'none'})")
        self.inputs = dict(inputs or {})
        self.on_turn = on_turn
        self.traces: list[RunTrace] = []
        self._state: RunState | None = None
        self._resume = trace
        self._release: asyncio.Event | None = None  # set: the session's holder closes it
        self._holder: asyncio.Task[None] | None = None  # the task that holds the session
        self._contexts: dict[str, Any] | None = None
        self._blocking = False  # send() was used: close() closes the session on that loop
        self._busy = False  # a message is being answered
        self._closed = False
        self._closing: asyncio.Task[None] | None = None  # close() called on the loop
        self._waited: RunTrace | None = None  # our own copy of the trace as it waited

    # ------------------------------------------------------------ the conversation
    @property
    def trace(self) -> RunTrace | None:
        """The current (last) run's trace."""
        return self.traces[-1] if self.traces else None

    @property
    def contexts(self) -> dict[str, Any]:
        """The tools' contexts (toolset name -> RunContext), e.g. to read a database."""
        if self._contexts is None:
            raise RoutineError("the conversation has not started")
        return self._contexts

    async def asend(self, message: str) -> Reply:
        """The user's next message; returns the agent's reply. One message at a time: a
        second sent before the first is answered (a double submit) is a RoutineError."""
        if not isinstance(message, str):  # before anything is kept as what the user said
            raise TypeError(f"the user's message must be text (str), got "
                            f"{type(message).__name__}: decode bytes first")
        message = utf8_text(message)  # a lone surrogate: no request, no trace could take it
        if self._closed:  # its tools' session (a database, a connection) is gone
            raise RoutineError("the conversation is closed: start a new one to go on")
        if self._busy:
            raise RoutineError("the conversation is still answering the previous message: "
                               "send one message at a time")
        self._busy = True
        try:
            return await self._answer(message)
        finally:
            self._busy = False

    async def _answer(self, message: str) -> Reply:
        if self._contexts is None:
            self._contexts = await self._open_session()
        state = self._state
        if state is None and self._resume is not None:
            routine = self.routines.get(self._resume.routine or "")
            if self.agent.routine is not None and routine is not None and \
                    routine.name != self.agent.routine.name:  # saved after a hand-off
                self.agent = self._agent_for(routine)
            state = self._state = restore(self.agent, self._resume, self.trace_key,
                                          verify=self._resume is not self._waited)
            state.contexts = self._bound(state)
            self._resume = None
            self.traces.append(state.trace)
        fresh = state is None or state.trace.outcome not in ("waiting", "running")
        if fresh:
            state = self._state = self._begin(self.agent, message, self.inputs)
        assert state is not None
        # the trace as it waited: a message interrupted before any call ran goes back to it
        waited = None if fresh else state.trace.model_copy(deep=True)
        ran = len(state.trace.tool_calls)
        try:
            return await self._message(state, message, fresh)
        except asyncio.CancelledError:
            now = self._state or state
            if now.trace.outcome in ("running", "waiting"):  # (waiting: its reply was read)
                made = [c for c in now.trace.tool_calls[ran:]
                        if c.ok or c.error_kind in ("tool_error", "timeout", "tool_bug")]
                if waited is not None and not made and not now.in_flight and now is state:
                    self._back_to(state, waited)
                else:
                    self._cut_short(now)
            raise

    async def _message(self, state: RunState, message: str, fresh: bool) -> Reply:
        with telemetry.run_span(state, self.agent.model):  # one span per message
            if not fresh:
                turns = len(state.trace.turns)
                with telemetry.turn_span(state):  # (cancelled: see _answer)
                    try:  # the confirmed call (its approver, its tool) in the time limit too
                        result = await asyncio.wait_for(answer_pending(
                            state, self.agent.model, message), self.agent.settings.timeout_s)
                    except TimeoutError:
                        self.agent.timed_out(state)
                        result = None
                for turn in state.trace.turns[turns:]:  # the confirmed (or declined) call's
                    await notify(self.on_turn, turn)
                if result is None:
                    return self._reply(state)
                if not isinstance(result, NextTurn):
                    self.agent.stop(state, result)
                    return self._reply(state)
            await self._run(self.agent, state)
        hops = [state.trace.routine]
        while state.trace.outcome == "handed_off" and state.trace.handoff is not None:
            hops.append(state.trace.handoff.routine)
            if len(hops) > MAX_HANDOFFS + 1:  # routines handing the message round in a circle
                self.agent.stop(state, Failed(
                    f"{MAX_HANDOFFS} hand-offs without waiting for the user: "
                    f"{' → '.join(str(h) for h in hops)}", "routine_limit"))
                break
            state = self._state = self._hand_off(state)
            if state.trace.outcome == "failed":
                break
            with telemetry.run_span(state, self.agent.model):
                await self._run(self.agent, state)
        return self._reply(state)

    def send(self, message: str) -> Reply:
        """Blocking :meth:`asend` (on the process's blocking loop, as ``Agent.run``)."""
        self._blocking = True
        return run_blocking(self.asend(message))

    async def aclose(self) -> None:
        """Close the tools' session (the model stays open: the caller's event loop owns
        its connections). A closed conversation takes no more messages."""
        self._closed = True
        if self._holder is not None and self._release is not None:
            self._release.set()
            holder, self._holder = self._holder, None
            await holder  # (the session's own errors on closing surface here)

    async def _open_session(self) -> dict[str, Any]:
        """Open the tools' session in a task of its own that also closes it: an MCP
        client's cancel scopes must be left by the task that entered them, and a
        conversation's messages (and its close) each run in a task of their own."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[dict[str, Any]] = loop.create_future()
        release = self._release = asyncio.Event()

        async def hold() -> None:
            try:
                async with self.agent.tools.session("", self.inputs,
                                                    self.agent.settings.timeout_s) as contexts:
                    opened.set_result(contexts)
                    await release.wait()
            except BaseException as exc:
                if opened.done():
                    raise
                if isinstance(exc, asyncio.CancelledError):
                    opened.cancel()
                    raise
                opened.set_exception(exc)

        self._holder = loop.create_task(hold())
        try:
            return await opened
        except BaseException:
            self._holder = None
            raise

    def close(self) -> None:
        """Close the tools' session (the model keeps its connections for the next run).

        A session opened by :meth:`asend` belongs to the caller's event loop: called from a
        coroutine on it, the session is closed by a task on that loop; called after that
        loop has ended, a RoutineError says to use ``await aclose()`` (nothing else can
        close it)."""
        if self._closed:
            return
        self._closed = True
        if self._blocking:
            self._blocking = False
            run_blocking(self.aclose())
        elif self._contexts is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RoutineError("this conversation's tools session was opened by asend(): "
                                   "close it with `await conversation.aclose()` (or `async "
                                   "with`) on the event loop that opened it") from None
            self._closing = loop.create_task(self.aclose())

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Conversation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ runs
    def _begin(self, agent: Any, message: str | None, inputs: dict[str, Any]) -> RunState:
        state = agent.start(message, inputs, asks=True)
        state.interactive = True
        state.contexts = self._bound(state)
        self.traces.append(state.trace)
        return state

    def _bound(self, state: RunState) -> dict[str, Any]:
        """The session's contexts as this run's: its run id, and the inputs as the run knows
        them (a question's answers included, as they come)."""
        inputs = state.tracker.inputs if state.tracker is not None else state.trace.inputs
        return {name: dataclasses.replace(context, run_id=state.trace.run_id, inputs=inputs)
                for name, context in self.contexts.items()}

    async def _run(self, agent: Any, state: RunState) -> None:
        trace = state.trace
        trace.outcome, trace.waiting = "running", None
        trace.asked = []  # (what the last answer asked for: the user has replied since)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._inputs_then_loop(agent, state),
                                   agent.settings.timeout_s)
        except TimeoutError:
            agent.timed_out(state)
        trace.duration_s += time.perf_counter() - started
        trace.state = snapshot(state) if trace.outcome == "waiting" else None
        for name, context in self.contexts.items():
            digest = getattr(context.deps, "state_digest", None)
            if callable(digest):
                trace.end_state[name] = str(digest())

    async def _inputs_then_loop(self, agent: Any, state: RunState) -> None:
        """With ``inputs_first``, a new run first reads the routine's inputs from the
        message (as ``Agent.run`` does); an input it does not state is asked for by the
        routine's ask steps, as the conversation goes on, rather than ending the run."""
        if agent.settings.inputs_first and state.routine is not None and state.trace.query \
                and not state.trace.turns:
            with telemetry.turn_span(state):
                await extract_inputs(state, agent.model)
            if state.trace.turns:
                await notify(self.on_turn, state.trace.turns[-1])
        await agent._loop(state, self.on_turn)

    def _hand_off(self, state: RunState) -> RunState:
        handoff = state.trace.handoff
        assert handoff is not None
        routine = self.routines.get(handoff.routine)
        if routine is None:
            raise RoutineError(f"the routine hands off to {handoff.routine!r}, which this "
                               f"conversation does not have (routines: "
                               f"{', '.join(self.routines) or 'none'})")
        carried = {k: v for k, v in handoff.inputs.items() if k in routine.inputs}
        said = state.trace.said
        try:  # a target these tools cannot run, or inputs it refuses: the hand-off failed
            agent = self._agent_for(routine)
            new = self._begin(agent, said[0] if said else None, carried)
        except RoutineError as exc:
            self.agent.stop(state, Failed(f"the hand-off to {handoff.routine!r} failed: "
                                          f"{exc}", "routine_limit"))
            return state
        self.agent = agent
        new.trace.said = list(said)
        new.trace.said_yes_no = list(state.trace.said_yes_no)  # a yes answered one question
        new.before = [*state.before, *(c for c in state.trace.tool_calls if c.ok)]
        return new

    def _back_to(self, state: RunState, waited: RunTrace) -> None:
        """The message was interrupted (Ctrl-C, a client gone) before any call ran: the
        conversation waits again as it did before it, so a saved copy resumes there and
        the message can be sent again."""
        index = next(i for i, t in enumerate(self.traces) if t is state.trace)
        self.traces[index] = waited
        # (a copy this conversation made, never saved: not one a key signed, nor to check)
        self._state, self._resume = None, waited
        self._waited = waited

    def _cut_short(self, state: RunState) -> None:
        """The message was cancelled after a call ran, or while one ran (the call it
        confirmed, a lookup): the trace says so (the calls, their arguments and the user's
        yes; whether a running one went through is unknown) and no longer waits, so a saved
        copy cannot be resumed into sending it again."""
        running = [c.model_copy(update={"error": f"{c.name} was running when the message "
                                        "was cancelled: whether it did its work is unknown"})
                   for c in state.in_flight]
        if running:
            state.trace.turns.append(TurnRecord(
                index=len(state.trace.turns), kind="failed", calls=running,
                feedback="cancelled while these calls ran"))
            state.in_flight.clear()
        if any(c.approval is not None and c.approval.by == "user" for c in running):
            why = ("cancelled while answering the user's reply: whether the confirmed call "
                   "went through is unknown")
        elif running:
            why = (f"cancelled while {', '.join(c.name for c in running)} ran: whether it "
                   "went through is unknown")
        else:  # (a fresh message, or one that went on past its reply's call)
            why = "cancelled before the message was answered"
        self.agent.stop(state, Failed(why, "timeout"))

    def _agent_for(self, routine: Routine) -> Any:
        """The agent that runs ``routine`` with this conversation's tools, model, settings."""
        return type(self.agent)(routine, self.agent.tools, self.agent.model,
                                self.agent.settings, approver=self.agent.approver)

    def _reply(self, state: RunState) -> Reply:
        trace = state.trace
        status = trace.outcome if trace.outcome != "running" else "failed"
        text = trace.answer if trace.answer is not None else (
            f"Sorry, I could not finish this: {trace.failure}" if trace.failure else "")
        if trace.answer is None and (made := what_ran(state)):  # the user must know
            text += ("" if text.endswith(".") else ".") + f" What was done before that: {made}."
        return Reply(text=text, status=status,  # type: ignore[arg-type]
                     waiting_for=trace.waiting.kind if trace.waiting else None,
                     routine=trace.routine, trace=trace)


# ---------------------------------------------------------------- resuming from a trace
def snapshot(state: RunState) -> dict[str, Any]:
    """Where a waiting run stands, as data (``trace.state``)."""
    tracker, memory = state.tracker, state.memory
    return {
        "tracker": None if tracker is None else {
            "current": tracker.current, "done": tracker.done, "branches": tracker.branches,
            "outputs": tracker.outputs, "vars": tracker.vars, "visits": tracker.visits,
            "failed": tracker.failed, "inputs": tracker.inputs,
            "use_defaults": tracker.use_defaults, "frames": [asdict(f) for f in tracker.frames],
            "answered_at": tracker.answered_at, "failed_into": tracker.failed_into,
            "read_for": tracker.read_for, "fresh": sorted(tracker.fresh)},
        "memory": {"counter": memory._counter,
                   "entries": [asdict(e) for e in memory.entries.values()]},
        "run": {"mistakes": state.mistakes, "calls_made": state.calls_made,
                "call_ids": state.call_ids, "seen_calls": dict(state.seen_calls),
                "pending": state.pending.model_dump() if state.pending else None,
                # what ran in the routines that handed off to this one (said at a decline)
                "before": [c.model_dump(mode="json") for c in state.before]},
    }


def unreachable_handoffs(routine: Routine, routines: Mapping[str, Routine]) -> list[str]:
    """The routines ``routine`` hands off to, directly or through the routines it reaches,
    that ``routines`` does not hold."""
    missing: list[str] = []
    seen, todo = {routine.name}, [routine]
    while todo:
        for step, _ in todo.pop().walk():
            target = step.handoff
            if target is None or target in seen:
                continue
            seen.add(target)
            if target in routines:
                todo.append(routines[target])
            else:
                missing.append(target)
    return missing


def restore(agent: Any, trace: RunTrace, key: str | bytes | None = None, *,
            verify: bool = True) -> RunState:
    """A waiting run's state rebuilt from its trace (with a key — ``key``, else
    ``ROUTINE_TRACE_KEY`` — only a trace signed with it: :mod:`routine.run.signing`;
    ``verify=False``: a trace that never left the process, not checked)."""
    if verify:
        verify_trace(trace, key)
    if trace.outcome != "waiting" or trace.state is None:
        raise RoutineError(f"only a waiting run resumes (this one is {trace.outcome!r})")
    if agent.routine is not None and trace.routine != agent.routine.name:
        raise RoutineError(f"the trace is of routine {trace.routine!r}, the agent runs "
                           f"{agent.routine.name!r}")
    if agent.routine is not None and trace.routine_digest is not None and \
            trace.routine_digest != agent.routine.digest():
        raise RoutineError(f"routine {trace.routine!r} has changed since this trace was saved "
                           "(its steps may not be where the trace stood): finish the "
                           "conversation with the routine it began with, or start it again")
    state = agent.start(trace.query, dict(trace.inputs))
    trace = state.trace = trace.model_copy(deep=True)  # the caller's loaded trace stays as read
    state.interactive = True
    saved = trace.state
    tracker = state.tracker
    if tracker is not None and saved.get("tracker"):
        t = saved["tracker"]
        tracker.current, tracker.done, tracker.branches = t["current"], t["done"], t["branches"]
        tracker.outputs, tracker.vars, tracker.visits = t["outputs"], t["vars"], t["visits"]
        tracker.failed, tracker.inputs = t["failed"], t["inputs"]
        tracker.use_defaults = t["use_defaults"]
        tracker.frames = [LoopFrame(**f) for f in t["frames"]]
        tracker.answered_at = dict(t.get("answered_at", {}))
        tracker.failed_into = dict(t.get("failed_into", {}))
        tracker.read_for = dict(t.get("read_for", {}))
        tracker.fresh = set(t.get("fresh", []))
    memory = saved["memory"]
    state.memory._counter = memory["counter"]
    state.memory.entries = {e["key"]: MemoryEntry(**e) for e in memory["entries"]}
    run = saved["run"]
    state.mistakes, state.calls_made, state.call_ids = (run["mistakes"], run["calls_made"],
                                                        run["call_ids"])
    state.seen_calls = Counter(run["seen_calls"])
    state.before = [ToolCallRecord.model_validate(c) for c in run.get("before", [])]
    state.pending = trace.waiting
    return state
