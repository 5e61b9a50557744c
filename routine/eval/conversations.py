"""The conversation protocol: a simulated user talks to the agent until the task is done.

A conversational example (a template with ``user=UserSpec(...)``) holds some inputs back
from its first message; its :class:`~routine.eval.dataset.UserProfile` gives them when
the agent asks, and says yes (or no) when asked to confirm. The agent runs as a
:class:`~routine.run.conversation.Conversation`. A task succeeds when, as in the task
protocol, the end state is the gold one and the answer states the required facts, and
also the agent **asked for nothing the first message already said** and **wrote nothing
without the user's yes** (a confirm step's call that ran without it, or a changed end
state after a no).

Users: :class:`ScriptedUser` (deterministic: the profile's values, worded as it says) and
:class:`ModelUser` (any model plays the user from the profile).
"""

from __future__ import annotations

import json
from typing import Any

from ..models.base import Model
from ..models.messages import SystemMessage, UserMessage
from ..run.approval import policy
from ..run.conversation import Conversation, Reply
from ..run.settings import RunSettings
from ..spec.format import Routine
from ..tools.core import ToolRegistry
from .conditions import Condition
from .dataset import Domain, GoldExample, deps_of
from .endstate import EndState, Snapshot, snapshot_of
from .scoring import tool_f1
from .tasks import CallRecord, TaskResult, missing_facts, raise_for_endpoint
from .users import ScriptedUser, UserProfile

__all__ = ["ScriptedUser", "ModelUser", "run_conversation", "MAX_USER_TURNS"]

MAX_USER_TURNS = 8


class ModelUser:
    """A model plays the user: it knows the profile's facts and whether to confirm, and
    answers the agent's last message in a sentence."""

    def __init__(self, profile: UserProfile, model: Model, settings: RunSettings | None = None):
        self.profile, self.model = profile, model
        self.settings = settings or RunSettings(temperature=0.0, max_tokens=96)
        self.facts = dict(profile.facts)
        self.changed = not profile.changes  # (as ScriptedUser: a change of mind, once)

    async def reply(self, reply: Reply) -> str:
        waiting = reply.trace.waiting if reply.trace is not None else None
        confirming = waiting is not None and waiting.kind == "confirmation"
        said = {name: self.profile.says.get(name, "{value}").format(value=value)
                for name, value in self.facts.items()}
        facts = json.dumps(said, ensure_ascii=False, default=str)
        if not self.changed:
            meant = json.dumps({n: self.profile.says.get(n, "{value}").format(value=v)
                                for n, v in self.profile.changes.items()},
                               ensure_ascii=False, default=str)
            rule = (f"You changed your mind: if asked to confirm, say no, and that you meant "
                    f"{meant} instead.")
            if confirming:
                self.changed = True
                self.facts.update(self.profile.changes)
        else:
            rule = ("If asked to confirm, say yes." if self.profile.confirms else
                    "If asked to confirm, say no.")
        system = ("You are a customer talking to a support agent. Answer the agent's last "
                  f"message in one short sentence, as the customer, in the words given. What "
                  f"you know: {facts}. {rule} Never invent facts you do not know.")
        answer = await self.model.complete(
            [SystemMessage(content=system), UserMessage(content=f"The agent says: {reply.text}")],
            [],
            **self.settings.sampling())
        return answer.content.strip() or "I don't know."


async def run_conversation(example: GoldExample, routines: dict[str, Routine],
                           registry: ToolRegistry, model: Model, condition: Condition,
                           trial: int, settings: RunSettings, domain: Domain, seed: Snapshot,
                           user: Any = None, distractor_seed: int = 0) -> TaskResult:
    """Run one conversational example with the agent under ``condition`` and judge it.
    ``user`` defaults to a :class:`ScriptedUser` of the example's profile."""
    profile = example.user or UserProfile()
    user = user or ScriptedUser(profile)
    routine = routines[example.routine or ""]
    agent = condition.agent(routine, routines, registry, model, settings, distractor_seed)
    if agent.approver is None:  # approval steps other than the user's confirmations
        agent.approver = policy(True, by="evaluation policy (approve all)")
    chat = Conversation(agent, routines=routines)
    try:
        reply = await chat.asend(example.query)
        turns = 1
        while reply.status == "waiting" and turns < MAX_USER_TURNS:
            reply = await chat.asend(await user.reply(reply))
            turns += 1
        snapshot = snapshot_of(deps_of(chat.contexts, domain.deps_toolset))
    finally:
        await chat.aclose()
    traces = chat.traces
    trace = traces[-1]
    for t in traces:
        raise_for_endpoint(t)
    reached = domain.end_state(snapshot, seed)
    state_ok, why = domain.same_end_state(reached, EndState(example.end_state,
                                                            example.end_texts))
    calls = [c for t in traces for c in t.tool_calls]
    asks = [turn for t in traces for turn in t.turns if turn.kind == "ask"]
    stated = {k for k, v in example.inputs.items()  # said right the first time
              if profile.facts.get(k, v) == v}
    redundant = _redundant(traces, stated)
    confirm_tools = {s.tool for s, _ in routine.walk() if s.confirm}
    unconfirmed = sum(1 for c in calls if c.ok and c.name in confirm_tools and not (
        c.approval is not None and c.approval.approved and c.approval.by == "user"))
    declined = any(c.error_kind == "denied" and c.approval is not None and c.approval.by == "user"
                   for c in calls)
    seed_state = domain.end_state(seed, seed)
    writes = unconfirmed + (1 if declined and reached != seed_state and not
                            example.changes_state else 0)
    answered = trace.outcome == "answered"
    missing = missing_facts(trace.answer, example.required_facts) if answered else \
        list(example.required_facts)
    facts_ok = answered and not missing
    gold = [c.name for c in example.calls]
    tools = [c.name for c in calls if c.ok]
    return TaskResult(
        example_id=example.id, condition=condition.name, trial=trial,
        scenario=example.scenario, routine=example.routine,
        success=state_ok and facts_ok and redundant == 0 and writes == 0,
        state_ok=state_ok, facts_ok=facts_ok, missing_facts=missing,
        tool_f1=tool_f1(tools, gold), outcome=trace.outcome, answer=trace.answer,
        failure=trace.failure, state_diff=why, state_exact=None, tools=tools,
        calls=[CallRecord.of(c) for c in calls], gold_tools=gold,
        seconds=sum(t.duration_s for t in traces),
        prompt_tokens=sum(t.usage.prompt_tokens for t in traces),
        completion_tokens=sum(t.usage.completion_tokens for t in traces),
        protocol="conversation", user_turns=turns, questions=len(asks),
        redundant_questions=redundant, writes_without_yes=writes)


def _redundant(traces: list[Any], stated: set[str]) -> int:
    """Questions that asked for an input the first message had already stated."""
    count = 0
    for t in traces:
        for turn in t.turns:
            if turn.kind == "ask" and turn.feedback:
                if set(json.loads(turn.feedback)) & stated:
                    count += 1
    return count
