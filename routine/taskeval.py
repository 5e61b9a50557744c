"""Task success, the tau-bench way: run the query end to end, judge by the end state.

A task succeeds when the database ends in exactly the gold end state (so every
write happened, and no other) and the answer states the required facts. Also
reported: tool-sequence F1 against the gold trajectory, and pass^k over k
repeated trials (tau-bench's estimator: mean over tasks of C(c, k) / C(n, k)).
"""

from __future__ import annotations

import re
from math import comb

from pydantic import BaseModel

from .dataset import GoldExample
from .executor import Agent
from .model import Model
from .scoring import tool_f1
from .settings import RunSettings
from .spec import Routine
from .stepeval import Condition
from .tools import ToolRegistry

__all__ = ["TaskResult", "run_task", "facts_present", "pass_hat_k"]


class TaskResult(BaseModel):
    example_id: str
    condition: str
    trial: int
    scenario: str
    routine: str | None
    success: bool
    state_ok: bool
    facts_ok: bool
    tool_f1: float
    outcome: str
    answer: str | None
    failure: str | None
    tools: list[str]
    gold_tools: list[str]
    seconds: float
    prompt_tokens: int
    completion_tokens: int


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def facts_present(answer: str | None, facts: list[str]) -> bool:
    """Every fact appears in the answer (case-insensitive; numbers compared as numbers,
    so "7" matches "7.0" and "1,500" matches "1500")."""
    text = (answer or "").lower()
    numbers = {float(n) for n in _NUMBER.findall(text.replace(",", ""))}
    for fact in facts:
        try:
            if float(fact.replace(",", "")) in numbers:  # a number: as a number, not a substring
                continue
            return False
        except ValueError:
            if fact.lower() not in text:
                return False
    return True


def pass_hat_k(successes: list[int], trials: int, k: int) -> float:
    """tau-bench's pass^k: the chance that k trials of a task all succeed, averaged."""
    if not successes or k > trials:
        return float("nan")
    return sum(comb(c, k) / comb(trials, k) for c in successes) / len(successes)


async def run_task(example: GoldExample, routine: Routine | None, others: list[Routine],
                   registry: ToolRegistry, model: Model, condition: Condition, trial: int,
                   settings: RunSettings, toolset: str) -> TaskResult:
    """Run one gold query with the agent under ``condition`` and judge it."""
    agent = Agent(routine if condition.routine_format != "none" else None, registry, model,
                  settings.model_copy(update={"routine_format": condition.routine_format,
                                              "step_tracking": condition.step_tracking,
                                              "offer_tools": "all"}),
                  validate=False, others=others)
    trace = await agent.arun(example.query)
    state_ok = trace.end_state.get(toolset) == example.end_state
    facts_ok = trace.outcome == "answered" and facts_present(trace.answer, example.required_facts)
    gold = [c.name for c in example.calls]
    return TaskResult(
        example_id=example.id, condition=condition.name, trial=trial,
        scenario=example.scenario, routine=example.routine,
        success=state_ok and facts_ok, state_ok=state_ok, facts_ok=facts_ok,
        tool_f1=tool_f1(trace.tool_sequence, gold), outcome=trace.outcome,
        answer=trace.answer, failure=trace.failure, tools=trace.tool_sequence, gold_tools=gold,
        seconds=trace.duration_s, prompt_tokens=trace.usage.prompt_tokens,
        completion_tokens=trace.usage.completion_tokens)

