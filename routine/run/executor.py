"""The executor: run a routine with a model and tools, one turn at a time.

>>> agent = Agent(load_routine("routines/hr/leave_balance.yaml"), tools, model)  # doctest: +SKIP
>>> trace = agent.run("How many annual leave days does Alice Andersen have left?")  # doctest: +SKIP
>>> trace.answer, trace.tool_sequence  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, RoutineError, RoutineWarning, SpecError
from ..models.base import Model
from ..models.messages import SystemMessage, UserMessage
from ..spec.format import Routine
from ..spec.loader import LoadedRoutine, SourceMap, load_routine
from ..spec.validate import check_routine
from ..tools.core import RunContext, Tool, ToolRegistry, Toolset
from . import telemetry
from .approval import Approver
from .blocking import run_blocking
from .conversation import Conversation
from .facts import unstated
from .inputs import coerce_inputs, extract_inputs, missing_question
from .interaction import before_turn
from .memory import VariableMemory
from .printable import utf8_text
from .prompts import Planner
from .settings import RunSettings
from .signing import trace_key
from .trace import FailureKind, RunTrace, TurnRecord, dump_traces
from .tracking import StepTracker, params_refusing_null
from .turn import (
    Failed,
    FinalAnswer,
    HandedOff,
    NextTurn,
    RunState,
    TurnResult,
    Waiting,
    notify,
    take_turn,
)

__all__ = ["Agent", "coerce_inputs"]


class Agent:
    """Runs one routine (or none) with a model and a tool registry.

    Args:
        routine: a Routine, a loaded routine, a path to a YAML file, or None (tools only).
        tools: a ToolRegistry, or tools/toolsets to put in one.
        model: any :class:`routine.models.base.Model` (OpenAIModel, the test doubles...).
        settings: a RunSettings; keyword overrides are applied on top.
        validate: check the routine against the tools first (raise SpecError on problems).
        others: further routines shown in the prompt beside this one (the paper's distractor
            experiment); calls stay limited to this routine's tools.
        position: where this routine is listed among ``others`` in the prompt (0: first).
        approver: decides on calls that need approval (``approval: required`` steps,
            ``@tool(approval=True)``); see :mod:`routine.run.approval`. None refuses them.
    """

    def __init__(self, routine: Routine | LoadedRoutine | str | Path | None,
                 tools: ToolRegistry | Iterable[Tool | Toolset], model: Model,
                 settings: RunSettings | None = None, *, validate: bool = True,
                 others: list[Routine] | None = None, position: int = 0,
                 approver: Approver | None = None, **overrides: Any):
        if isinstance(routine, (str, Path)):
            routine = load_routine(routine)
        if isinstance(routine, Routine):
            routine = LoadedRoutine(routine, SourceMap(f"<routine {routine.name}>"))
        self.routine = routine.routine if routine is not None else None
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(*tools)
        # (read once: the tools' parameters a null from an earlier step may not reach)
        self._null_refused = params_refusing_null(self.routine, self.tools) \
            if self.routine is not None else {}
        #: ``routine validate``'s warnings on this routine (each also a RoutineWarning)
        self.warnings: list[Problem] = []
        if routine is not None and validate:
            problems = check_routine(routine, self.tools, warnings=self.warnings)
            if problems:
                raise SpecError(problems)
            for problem in self.warnings:
                warnings.warn(str(problem), RoutineWarning, stacklevel=2)
        self.model = model
        self.settings = _settings(settings, overrides)
        self.others = list(others or [])
        self.position = position
        self.approver = approver
        self.planner = Planner(self.settings.routine_format, self.settings.step_tracking,
                               self.settings.prompt_style,
                               finish_tool=self.settings.decoding == "guided")

    def start(self, query: str | None, inputs: dict[str, Any], *, asks: bool = False
              ) -> RunState:
        """A run's state before its first turn (a conversation keeps it between messages;
        ``asks``: the run may ask the user, so required inputs need not be known yet)."""
        return self._start(query, coerce_inputs(self.routine, inputs), asks=asks)

    def _start(self, query: str | None, inputs: dict[str, Any], *, asks: bool = False
               ) -> RunState:
        routine, settings = self.routine, self.settings
        if query is not None:  # (a lone surrogate: no request, no trace could take it)
            query = utf8_text(query)
        if routine is not None:
            missing = [n for n, s in routine.inputs.items()
                       if s.required and s.default is None and n not in inputs]
            if missing and not query and not asks:
                raise RoutineError(f"no query and no value for required inputs: {missing}")
            allowed = {n: t for n in routine.tool_names() if (t := self.tools.get(n))}
        else:
            allowed = {t.name: t for t in self.tools}
        offered = list(self.tools) if settings.offer_tools == "all" else list(allowed.values())
        trace = RunTrace(run_id=uuid.uuid4().hex, routine=routine.name if routine else None,
                         routine_version=routine.version if routine else None,
                         routine_digest=routine.digest() if routine else None,
                         model=self.model.name, settings=settings.model_dump(), query=query,
                         said=[query] if query else [], inputs=inputs,
                         tools_offered=[t.name for t in offered])
        user = query or f"Please run the {routine.name if routine else ''} task with the " \
                        "values given."
        shown = None if routine is None else list(self.others)
        if shown is not None and routine is not None:
            shown.insert(min(self.position, len(shown)), routine)
        trace.messages += [
            SystemMessage(content=self.planner.system_prompt(shown, inputs)),
            UserMessage(content=user),
        ]
        tracker = None
        if routine is not None:
            tracker = StepTracker(routine, inputs, use_defaults=query is None,
                                  null_refused=self._null_refused)
        return RunState(
            trace=trace, routine=routine, tracker=tracker,
            registry=self.tools, allowed=allowed, tool_specs=self.planner.tool_specs(offered),
            planner=self.planner, settings=settings, approver=self.approver,
            memory=VariableMemory(threshold=settings.memory_threshold))

    async def arun(self, query: str | None = None, inputs: dict[str, Any] | None = None, *,
                   on_turn: Callable[[TurnRecord], Any] | None = None,
                   on_end: Callable[[dict[str, RunContext[Any]]], Any] | None = None
                   ) -> RunTrace:
        """Run to an answer or a failure; always return the trace (``trace.outcome``).

        ``on_turn`` sees each turn's record as it is appended; ``on_end`` sees the run's
        tool contexts (toolset name -> :class:`RunContext`) before they close, e.g. to
        read the state a run left behind (either may be a coroutine function: awaited)."""
        state = self._start(query, coerce_inputs(self.routine, inputs or {}))
        started = time.perf_counter()
        async with telemetry.run_span(state, self.model), \
                self.tools.session(state.trace.run_id, state.trace.inputs,
                                   self.settings.timeout_s) as contexts:
            state.contexts = contexts
            left = self.settings.timeout_s - (time.perf_counter() - started)  # after setup
            try:
                await asyncio.wait_for(self._inputs_then_loop(state, on_turn), max(left, 0.0))
            except TimeoutError:
                self.timed_out(state)
            for name, context in contexts.items():
                digest = getattr(context.deps, "state_digest", None)
                if callable(digest):
                    state.trace.end_state[name] = str(digest())
            if on_end is not None and inspect.isawaitable(ended := on_end(contexts)):
                await ended
        state.trace.duration_s = time.perf_counter() - started
        return state.trace

    async def _inputs_then_loop(self, state: RunState,
                                on_turn: Callable[[TurnRecord], None] | None) -> None:
        if self.settings.inputs_first and state.routine is not None and state.trace.query:
            with telemetry.turn_span(state):
                missing = await extract_inputs(state, self.model)
            if state.trace.turns:
                await notify(on_turn, state.trace.turns[-1])
            if state.fatal is not None:  # the endpoint failed: not a question
                return self.stop(state, state.fatal)
            if missing:  # ask back instead of guessing
                state.trace.asked = missing
                return self._end(state, missing_question(state, missing), None)
        await self._loop(state, on_turn)

    async def _loop(self, state: RunState,
                    on_turn: Callable[[TurnRecord], None] | None) -> None:
        while True:
            turns = len(state.trace.turns)
            with telemetry.turn_span(state):
                result = await before_turn(state, self.model)
                if result is None and state.fatal is None:
                    result = await take_turn(state, self.model)
                if state.fatal is not None:  # the endpoint (reading inputs), a toolset's server
                    result = state.fatal
            for turn in state.trace.turns[turns:]:
                await notify(on_turn, turn)
            if isinstance(result, NextTurn):
                continue
            return self.stop(state, result)

    def stop(self, state: RunState, result: TurnResult) -> None:
        """End the run (or pause it: waiting for the user, handed off) as ``result`` says."""
        trace = state.trace
        if isinstance(result, FinalAnswer):
            return self._end(state, result.answer, None)
        if isinstance(result, Failed):
            return self._end(state, None, result.reason, result.kind)
        if isinstance(result, Waiting):
            trace.outcome, trace.answer, trace.waiting = "waiting", result.message, state.pending
            if state.pending is not None and state.pending.kind == "inputs":
                trace.asked = list(state.pending.fills)
        elif isinstance(result, HandedOff):
            trace.outcome, trace.handoff = "handed_off", result.handoff
        _keep_progress(state)
        return None

    def timed_out(self, state: RunState) -> None:
        """End a run its time limit cut short; a call that was running then is kept in the
        trace (its arguments, its approval: whether it did its work is unknown)."""
        if state.in_flight:
            state.trace.turns.append(TurnRecord(
                index=len(state.trace.turns), kind="failed", calls=list(state.in_flight),
                feedback="the run's time limit ended it while these calls ran"))
            state.in_flight.clear()
        self._end(state, None, f"timed out after {self.settings.timeout_s:g} s", "timeout")

    def _end(self, state: RunState, answer: str | None, failure: str | None,
             kind: FailureKind | None = None) -> None:
        trace = state.trace
        if answer is not None:
            tracker = state.tracker
            step = tracker.finish_step() if tracker is not None else None
            if tracker is not None and step is None and not tracker.finished:
                trace.early_answer = tracker.current  # the routine's steps were not done
            if step is not None and step.message and not trace.asked:
                # the model answered where the routine's answer is an exact message (an
                # option it chose at a branch by answering): the routine's words, not its
                # own, which could claim what never ran
                try:
                    answer = tracker.render(step.message)  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - a value it needs is missing: the model's
                    pass
            if step is not None and step.answer and not trace.asked \
                    and state.settings.answer_facts:
                rendered = tracker.answer_facts(step)  # type: ignore[union-attr]
                if rendered is not None:
                    facts, values = rendered
                    trace.answer_facts = facts
                    stated = not unstated(answer, values) if values else \
                        " ".join(facts.lower().split()) in " ".join(answer.lower().split())
                    if not stated:  # (a template of plain text: the text itself)
                        answer = f"{answer.rstrip()}\n\n{facts}"
            trace.outcome, trace.answer = "answered", answer
            if tracker is not None:
                tracker.finish()
        else:  # (no answer: a question asked before, while waiting, is not one)
            trace.outcome, trace.failure, trace.failure_kind = "failed", failure, kind
            trace.answer, trace.waiting = None, None
        _keep_progress(state)

    def conversation(self, **options: Any) -> Conversation:
        """A multi-turn conversation with this agent: questions and confirmations go to the
        user (``routines=``, ``inputs=``, ``trace=`` to resume, ``on_turn=``; see
        :mod:`routine.run.conversation`)."""
        return Conversation(self, **options)

    def run(self, query: str | None = None, inputs: dict[str, Any] | None = None, *,
            on_turn: Callable[[TurnRecord], None] | None = None,
            trace_dir: str | Path | None = None) -> RunTrace:
        """Blocking :meth:`arun`; with ``trace_dir`` the trace is appended to
        ``<trace_dir>/traces.jsonl``. Runs on the process's one blocking event loop
        (:mod:`routine.run.blocking`), so the model keeps its client and connections
        from run to run; ``on_turn`` and the approver are called on that loop's thread."""
        if trace_dir is not None:
            trace_key()  # a bad signing key is said before the tools act, not after
        trace = run_blocking(self.arun(query, inputs, on_turn=on_turn))
        if trace_dir is not None:
            dump_traces([trace], Path(trace_dir) / "traces.jsonl")
        return trace


def _settings(settings: RunSettings | None, overrides: dict[str, Any]) -> RunSettings:
    """``settings`` with ``overrides`` (keyword arguments of Agent), checked as RunSettings
    checks its own fields: a misspelt or invalid setting is one error, not ignored."""
    base = settings or RunSettings()
    if not overrides:
        return base
    unknown = sorted(set(overrides) - set(RunSettings.model_fields))
    if unknown:
        hints = [f"{name!r}" + (f" (did you mean {close[0]!r}?)" if (
            close := difflib.get_close_matches(name, RunSettings.model_fields, 1)) else "")
                 for name in unknown]
        raise RoutineError(f"unknown run setting {', '.join(hints)}; the settings are "
                           f"RunSettings' fields")
    try:
        return RunSettings.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise RoutineError(f"invalid run setting: {problems}") from None


def _keep_progress(state: RunState) -> None:
    """What the tracker knows of the run's way through the routine, into the trace."""
    tracker, trace = state.tracker, state.trace
    if tracker is not None:
        trace.steps_done = list(tracker.done)
        trace.branches = dict(tracker.branches)
        trace.branch_errors = dict(tracker.branch_errors)
        trace.loop_outputs = tracker.loop_outputs()
