"""Task success, the tau-bench way: run the query end to end, judge by the end state.

A task succeeds when the database ends in the gold end state (every write
happened, and no other; free-text columns matched like their arguments, see
:mod:`routine.eval.endstate`) and the answer states the required facts. Also
reported: tool-sequence F1 against the gold trajectory, and pass^k over k
repeated trials (:func:`routine.eval.summary.pass_hat_k`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..errors import ModelServerError, ModelUnavailable
from ..models.base import Model
from ..run.executor import Agent
from ..run.facts import unstated
from ..run.settings import RunSettings
from ..spec.format import Routine
from ..tools.core import ToolRegistry
from .conditions import Condition
from .dataset import Domain, GoldExample, run_with_snapshot
from .endstate import EndState, Snapshot
from .scoring import tool_f1

__all__ = ["TaskResult", "run_task", "facts_present", "missing_facts"]


class TaskResult(BaseModel):
    example_id: str
    condition: str
    trial: int
    scenario: str
    routine: str | None
    success: bool
    state_ok: bool
    facts_ok: bool
    missing_facts: list[str] | None = Field(None, description="Required facts the answer "
                                            "lacks (all of them when the run did not answer; "
                                            "None in records from before it was kept).")
    tool_f1: float
    outcome: str
    answer: str | None
    failure: str | None
    state_diff: str = Field("", description="Why the end state is not the gold one.")
    state_exact: bool | None = Field(
        None, description="Whether the end state matches the gold one byte for byte, free "
        "text included (the judgement before free text was matched by its mode).")
    tools: list[str]
    calls: list[tuple[str, dict[str, Any]]] = Field(
        default_factory=list, description="Every call the run made that ran: (tool, arguments).")
    gold_tools: list[str]
    seconds: float
    prompt_tokens: int
    completion_tokens: int


def missing_facts(answer: str | None, facts: list[str]) -> list[str]:
    """The facts the answer does not contain (case-insensitive; numbers compared as numbers,
    so "7" matches "7.0" and "1,500" matches "1500")."""
    return unstated(answer, facts)


def facts_present(answer: str | None, facts: list[str]) -> bool:
    """Every fact appears in the answer (see :func:`missing_facts`)."""
    return not missing_facts(answer, facts)


async def run_task(example: GoldExample, routines: dict[str, Routine],
                   registry: ToolRegistry, model: Model, condition: Condition, trial: int,
                   settings: RunSettings, domain: Domain, seed: Snapshot,
                   distractor_seed: int = 0) -> TaskResult:
    """Run one gold query with the agent under ``condition`` and judge it.

    An endpoint failure (HTTP 5xx or 429 through the retries, a reply that is not a chat
    completion, no connection) is not a verdict on the model: it raises
    :class:`ModelServerError`, and the task is not recorded (a resume retries it); a model
    that cannot be used at all (a refused key) raises :class:`ModelUnavailable`."""
    routine = routines.get(example.routine or "")
    if routine is None:  # a query no routine serves (refuse / ask): tools only
        agent = Agent(None, registry, model, condition.settings(settings), validate=False)
    else:
        agent = condition.agent(routine, routines, registry, model, settings, distractor_seed)
    trace, snapshot = await run_with_snapshot(agent, domain.deps_toolset, example.query)
    if trace.failure_kind in ("endpoint", "rate_limited"):
        raise ModelServerError(trace.failure or "the endpoint failed")
    if trace.failure_kind == "unavailable":
        raise ModelUnavailable(trace.failure or "the model is unavailable")
    reached = domain.end_state(snapshot, seed)
    gold_state = EndState(example.end_state, example.end_texts)
    state_ok, why = domain.same_end_state(reached, gold_state)
    missing = missing_facts(trace.answer, example.required_facts)
    facts_ok = trace.outcome == "answered" and not missing
    gold = [c.name for c in example.calls]
    return TaskResult(
        example_id=example.id, condition=condition.name, trial=trial,
        scenario=example.scenario, routine=example.routine,
        success=state_ok and facts_ok, state_ok=state_ok, facts_ok=facts_ok,
        missing_facts=missing if trace.outcome == "answered" else list(example.required_facts),
        tool_f1=tool_f1(trace.tool_sequence, gold), outcome=trace.outcome,
        answer=trace.answer, failure=trace.failure, state_diff=why,
        state_exact=reached == gold_state, tools=trace.tool_sequence,
        calls=[(c.name, c.arguments) for c in trace.tool_calls if c.ok], gold_tools=gold,
        seconds=trace.duration_s, prompt_tokens=trace.usage.prompt_tokens,
        completion_tokens=trace.usage.completion_tokens)
