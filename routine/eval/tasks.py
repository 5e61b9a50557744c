"""Task success, the tau-bench way: run the query end to end, judge by the end state.

A task succeeds when the database ends in the gold end state (every write
happened, and no other; free-text columns matched like their arguments, see
:mod:`routine.eval.endstate`) and the answer states the required facts. Also
reported: tool-sequence F1 against the gold trajectory, and pass^k over k
repeated trials (:func:`routine.eval.summary.pass_hat_k`).

A :class:`TaskResult` keeps what explains a failure: every call the run made with
its arguments and its result or error (:class:`CallRecord`, results cut to
:data:`RESULT_CHARS`), and for a wrong end state the rows that differ from the
gold one (:class:`~routine.eval.endstate.RowDiff`: the gold calls are replayed
on a fresh database to get the gold rows).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ..errors import DatasetError, ModelServerError, ModelUnavailable
from ..models.base import Model
from ..routing import Router, unrouted_trace
from ..run.executor import Agent
from ..run.facts import unstated
from ..run.settings import RunSettings
from ..run.trace import ToolCallRecord
from ..spec.format import Routine
from ..tools.core import ToolRegistry
from .conditions import Condition
from .dataset import ORACLE_SETTINGS, Domain, GoldExample, run_with_snapshot
from .endstate import EndState, RowDiff, Snapshot, describe_diffs, row_diffs
from .players import GoldPlayer
from .scoring import tool_f1

__all__ = ["TaskResult", "CallRecord", "RESULT_CHARS", "run_task", "raise_for_endpoint",
           "facts_present", "missing_facts"]

RESULT_CHARS = 500


class CallRecord(BaseModel):
    """One tool call of a task run: what the model sent, and what came back."""

    tool: str
    arguments: dict[str, Any] = Field(description="As the model sent them.")
    resolved: dict[str, Any] | None = Field(
        None, description="The arguments that ran, where variable-memory keys were replaced "
        "(None when the same as sent).")
    result: Any = Field(None, description="What the tool returned; a string of its first "
                        f"{RESULT_CHARS} JSON characters when longer (see cut). None when the "
                        "call failed, and in records from before results were kept.")
    error: str | None = Field(None, description="Why the call failed (None: it ran).")
    cut: int = Field(0, description="Characters cut from the end of the result's JSON or "
                     "of the error to keep the record small (0: whole).")

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        """Old records hold (tool, arguments) pairs of the calls that ran."""
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"tool": data[0], "arguments": data[1]}
        return data

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """resolved, error and cut are written only when they say something, the result
        only when the call ran."""
        data: dict[str, Any] = handler(self)
        for name, empty in (("resolved", None), ("error", None), ("cut", 0)):
            if data.get(name) == empty:
                data.pop(name, None)
        if self.error is not None:
            data.pop("result", None)
        return data

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, call: ToolCallRecord) -> CallRecord:
        resolved = call.resolved_arguments
        if call.error is not None:
            error, cut = _clip(call.error)
            return cls(tool=call.name, arguments=call.arguments,
                       resolved=None if resolved == call.arguments else resolved,
                       error=error, cut=cut)
        text = json.dumps(call.result, ensure_ascii=False, default=str)
        result, cut = (json.loads(text), 0) if len(text) <= RESULT_CHARS else _clip(text)
        return cls(tool=call.name, arguments=call.arguments,
                   resolved=None if resolved == call.arguments else resolved,
                   result=result, cut=cut)


def _clip(text: str) -> tuple[str, int]:
    """``text`` cut to :data:`RESULT_CHARS` characters, and how many were cut."""
    if len(text) <= RESULT_CHARS:
        return text, 0
    return text[:RESULT_CHARS] + "…", len(text) - RESULT_CHARS


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
    state_diff: str = Field("", description="Why the end state is not the gold one (from "
                            "state_rows when there are any).")
    state_rows: list[RowDiff] = Field(
        default_factory=list, description="The rows that differ from the gold end state: "
        "per table and row id, the column, the value got and expected and how they were "
        "compared, or a row missing or extra. Empty when the end state is right (and in "
        "records from before it was kept).")
    state_exact: bool | None = Field(
        None, description="Whether the end state matches the gold one byte for byte, free "
        "text included (the judgement before free text was matched by its mode).")
    tools: list[str]
    calls: list[CallRecord] = Field(
        default_factory=list, description="Every call the run made, in order, with its "
        "arguments and its result or error (records from before results were kept hold only "
        "the calls that ran, without results).")
    gold_tools: list[str]
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    protocol: str = Field("task", description="task, or conversation (a simulated user "
                          "answers questions and confirmations).")
    user_turns: int | None = Field(None, description="Messages the user sent (conversation).")
    questions: int | None = Field(None, description="Questions the agent asked (conversation).")
    redundant_questions: int | None = Field(
        None, description="Questions for inputs the first message already stated.")
    writes_without_yes: int | None = Field(
        None, description="Calls of confirm steps that ran without the user's yes, plus a "
        "changed end state after the user declined (must be 0).")
    routed_to: str | None = Field(None, description="Routed conditions: the router's "
                                  "decision (a routine's name, none or ambiguous).")


def raise_for_endpoint(trace: Any) -> None:
    """An endpoint failure is no verdict on the model: raise it (the sample is not recorded,
    a resume retries it) instead of scoring the run."""
    if trace.failure_kind in ("endpoint", "rate_limited"):
        raise ModelServerError(trace.failure or "the endpoint failed")
    if trace.failure_kind == "unavailable":
        raise ModelUnavailable(trace.failure or "the model is unavailable")


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
                   distractor_seed: int = 0, router: Router | None = None,
                   gold_routines: dict[str, Routine] | None = None) -> TaskResult:
    """Run one gold query with the agent under ``condition`` and judge it.

    An endpoint failure (HTTP 5xx or 429 through the retries, a reply that is not a chat
    completion, no connection) is not a verdict on the model: it raises
    :class:`ModelServerError`, and the task is not recorded (a resume retries it); a model
    that cannot be used at all (a refused key) raises :class:`ModelUnavailable`.

    Under a routed condition ``router`` picks the routine (:mod:`routine.eval.routed`).
    ``gold_routines``: the routines the gold calls were recorded under (default
    ``routines``; other routines — drafted ones, ``--routines-from`` — may not allow them),
    under which they are replayed to explain an end state that differs."""
    routine = routines.get(example.routine or "")
    decision = None
    if condition.routed:
        if router is None:
            raise DatasetError(f"{condition.name}: a routed condition needs the router")
        decision = await router.aroute(example.query or "")
        routine = routines.get(decision.routine or "")
    if decision is not None and routine is None:  # turned away: nothing runs, nothing changes
        trace, snapshot = unrouted_trace(decision, example.query or "", model.name), seed
    else:
        if routine is None:  # a query no routine serves (refuse / ask): tools only
            agent = Agent(None, registry, model, condition.settings(settings), validate=False)
        else:
            agent = condition.agent(routine, routines, registry, model, settings,
                                    distractor_seed)
        trace, snapshot = await run_with_snapshot(agent, domain.deps_toolset, example.query)
    raise_for_endpoint(trace)
    reached = domain.end_state(snapshot, seed)
    gold_state = EndState(example.end_state, example.end_texts)
    state_ok, why = domain.same_end_state(reached, gold_state)
    rows: list[RowDiff] = []
    if not state_ok:
        rows, why = await _explain_state(example, gold_routines or routines, registry,
                                         domain, seed, snapshot, gold_state, why)
    missing = missing_facts(trace.answer, example.required_facts)
    facts_ok = trace.outcome == "answered" and not missing
    gold = [c.name for c in example.calls]
    return TaskResult(
        example_id=example.id, condition=condition.name, trial=trial,
        scenario=example.scenario, routine=example.routine,
        success=state_ok and facts_ok, state_ok=state_ok, facts_ok=facts_ok,
        missing_facts=missing if trace.outcome == "answered" else list(example.required_facts),
        tool_f1=tool_f1(trace.tool_sequence, gold), outcome=trace.outcome,
        answer=trace.answer, failure=trace.failure, state_diff=why, state_rows=rows,
        state_exact=reached == gold_state, tools=trace.tool_sequence,
        calls=[CallRecord.of(c) for c in trace.tool_calls], gold_tools=gold,
        seconds=trace.duration_s, prompt_tokens=trace.usage.prompt_tokens,
        completion_tokens=trace.usage.completion_tokens,
        routed_to=None if decision is None else decision.routine or decision.kind)


async def _explain_state(example: GoldExample, routines: dict[str, Routine],
                         registry: ToolRegistry, domain: Domain, seed: Snapshot,
                         reached: Snapshot, gold_state: EndState, why: str
                         ) -> tuple[list[RowDiff], str]:
    """(the rows that differ from the gold end state, the reason in one line). The gold
    calls are replayed on a fresh database for the gold rows (the dataset keeps a digest)."""
    player = GoldPlayer([(c.name, c.arguments) for c in example.calls], example.answer,
                        inputs=example.inputs)
    agent = Agent(routines.get(example.routine or ""), registry, player, ORACLE_SETTINGS,
                  validate=False)
    try:
        _, gold = await run_with_snapshot(agent, domain.deps_toolset, example.query)
    except DatasetError as exc:
        return [], f"{why} (the gold calls could not be replayed to list the rows: {exc})"
    if domain.end_state(gold, seed) != gold_state:  # no run could match it: not a score
        raise DatasetError(f"example {example.id}: its gold calls, replayed, do not reach its "
                           "recorded end state, so no run can be scored against it; rebuild "
                           "the dataset (`routine dataset build`)")
    rows = row_diffs(reached, gold, seed, domain.free_text, domain.arg_modes)
    return rows, describe_diffs(rows) or why
