"""Route, then run: a request finds its routine in a library and an :class:`Agent` runs it.

    routed = RoutedAgent(router, model, tools_for)      # tools_for(entry) -> ToolRegistry
    result = routed.run("How many leave days does Arjun Garcia have left?")
    result.decision.routine, result.trace.answer

When the router decides **none**, no routine runs: the trace answers with what the agent
can help with (each routine's description) and calls no tool. When it is **ambiguous**,
the trace ends ``waiting`` with the question naming the two routines that fit. Either way
the trace is a normal :class:`~routine.run.trace.RunTrace` (``routine`` None), so traces,
evaluation and the CLI read it as they read any run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..models.base import Model
from ..models.messages import AssistantMessage, UserMessage
from ..run.approval import Approver
from ..run.blocking import run_blocking
from ..run.executor import Agent
from ..run.settings import RunSettings
from ..run.trace import RunTrace, TurnRecord
from ..tools.core import ToolRegistry
from .decision import RouteDecision
from .library import Entry
from .router import Router

__all__ = ["RoutedAgent", "RoutedRun", "unrouted_trace"]


@dataclass(frozen=True)
class RoutedRun:
    """A routed request: the router's decision and the run's trace."""

    decision: RouteDecision
    trace: RunTrace


def unrouted_trace(decision: RouteDecision, query: str, model: str = "") -> RunTrace:
    """The trace of a request no routine ran for: answered with what the agent can help
    with (none), or waiting with the question (ambiguous)."""
    reply = decision.reply or ""
    trace = RunTrace(run_id=uuid.uuid4().hex, model=model, query=query, said=[query],
                     messages=[UserMessage(content=query), AssistantMessage(content=reply)],
                     answer=reply, outcome="waiting" if decision.kind == "ambiguous"
                     else "answered")
    return trace


class RoutedAgent:
    """Runs each request with the routine its router chooses.

    Args:
        router: any :class:`~routine.routing.router.Router` (lexical, embedding, LLM).
        model: the model that runs the routine (the LLM router may use another).
        tools: a ToolRegistry with every routine's tools, or a function giving the registry
            of a library entry (the CLI builds it from the routine's toolsets).
        settings: run settings for the :class:`Agent`; ``agent_options`` go to it too
            (``approver=...``).
    """

    def __init__(self, router: Router, model: Model,
                 tools: ToolRegistry | Callable[[Entry], ToolRegistry],
                 settings: RunSettings | None = None, *, approver: Approver | None = None,
                 **agent_options: Any):
        self.router = router
        self.model = model
        self.tools = tools
        self.settings = settings
        self.approver = approver
        self.agent_options = agent_options

    def agent(self, decision: RouteDecision) -> Agent | None:
        """The agent that runs the decided routine (None: no routine was decided)."""
        if decision.kind != "routine" or decision.routine is None:
            return None
        entry = self.router.library[decision.routine]
        source = entry.source or entry.routine
        registry = self.tools if isinstance(self.tools, ToolRegistry) else self.tools(entry)
        return Agent(source, registry, self.model, self.settings, approver=self.approver,
                     **self.agent_options)

    async def arun(self, query: str, inputs: dict[str, Any] | None = None, *,
                   on_turn: Callable[[TurnRecord], None] | None = None) -> RoutedRun:
        started = time.perf_counter()
        decision = await self.router.aroute(query)
        agent = self.agent(decision)
        if agent is None:
            trace = unrouted_trace(decision, query, self.model.name)
            trace.duration_s = time.perf_counter() - started
            return RoutedRun(decision, trace)
        return RoutedRun(decision, await agent.arun(query, inputs, on_turn=on_turn))

    def run(self, query: str, inputs: dict[str, Any] | None = None, *,
            on_turn: Callable[[TurnRecord], None] | None = None) -> RoutedRun:
        """Blocking :meth:`arun` (on the process's blocking loop, like ``Agent.run``)."""
        return run_blocking(self.arun(query, inputs, on_turn=on_turn))
