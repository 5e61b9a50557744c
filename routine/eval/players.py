"""Model doubles that drive the real run path for the evaluation.

* :class:`OracleModel` plays the routine's own references: at every turn it calls
  the one tool the :class:`~routine.models.base.TurnGuide` allows, with the values
  the routine fixes. It makes the gold trajectories.
* :class:`GoldPlayer` plays a gold trajectory back: the gold calls in order, then
  the gold answer. Its recorded requests ARE the step samples (what a live run
  sends at each step), and a run with it must pass the task protocol (the
  dataset's ceiling).

Both are plain :class:`~routine.models.base.Model` implementations: the executor
does not know it is talking to them.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import DatasetError
from ..models.base import ModelReply, TurnGuide
from ..models.messages import Message, SystemMessage, ToolMessage, UserMessage
from ..models.testing import ScriptedModel
from ..tools.core import FINISH_TOOL, to_jsonable

__all__ = ["OracleModel", "GoldPlayer", "ConversationOracle", "ORACLE_ANSWER"]

ORACLE_ANSWER = "(the oracle's run ends here; the template writes the answer)"
# errors the routine itself routes (fail-over to on_error, a declined confirmation)
_ROUTED = ("continues with its on_error steps", "The routine continues at step",
           "Nothing was changed.")


def _call(name: str, arguments: dict[str, Any]) -> ModelReply:
    """One structured call without an id (the run numbers it, as for text calls)."""
    return ModelReply(tool_calls=[{"id": "", "type": "function", "function": {
        "name": name, "arguments": json.dumps(to_jsonable(arguments))}}])


class OracleModel:
    """Calls what the routine says, with the values it fixes; raises DatasetError when the
    routine alone cannot decide (a branch without a true ``when``, an unknown value) or a
    call fails."""

    def __init__(self, routine: str = ""):
        self.name = "oracle"
        self.routine = routine

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        last = next((m for m in reversed(messages) if not isinstance(m, SystemMessage)), None)
        if isinstance(last, ToolMessage) and last.content.startswith("Error: ") \
                and not any(mark in last.content for mark in _ROUTED):
            raise DatasetError(f"{self.routine}: gold call {last.name} failed: {last.content[7:]}")
        if guide is None or not guide.tools:
            raise DatasetError(f"{self.routine}: the oracle needs a routine step to follow")
        if guide.branch_undecided:
            raise DatasetError(f"{self.routine}: branch {guide.step_id!r} cannot be decided from "
                               "its `when` expressions with these inputs")
        if guide.unknown:
            raise DatasetError(f"{self.routine}: step {guide.step_id!r} has no value for "
                               f"{list(guide.unknown)}")
        tool = guide.tools[0]
        if tool == FINISH_TOOL:
            return _call(FINISH_TOOL, {"answer": ORACLE_ANSWER})
        return _call(tool, guide.arguments.get(tool, {}))


class GoldPlayer(ScriptedModel):
    """Replies with the gold calls in order, then finishes with the gold answer; records
    every request (messages, tools, guide) it was sent, as a :class:`ScriptedModel` does.
    Asked for more, it raises DatasetError: the run refused a gold call. An inputs-first
    turn (a guide labelled ``inputs``) gets the gold ``inputs`` and is kept apart, in
    ``input_requests``: it is not a step."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]], answer: str, name: str = "gold",
                 inputs: dict[str, Any] | None = None):
        super().__init__([_call(n, a) for n, a in calls] + [_call(FINISH_TOOL, {"answer": answer})],
                         name)
        self.inputs = dict(inputs or {})
        self.input_requests: list[Any] = []

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        if guide is not None and guide.label == "inputs":
            self.input_requests.append((list(messages), guide))
            wanted = (guide.schema or {}).get("properties", {})
            return ModelReply(content=json.dumps({n: self.inputs.get(n) for n in wanted}))
        try:
            return await super().complete(messages, tools, guide=guide, **settings)
        except AssertionError:
            raise DatasetError(f"the gold trajectory has {len(self.replies) - 1} calls, but the "
                               f"run asked for a reply {len(self.requests)} times (a gold call "
                               "was refused?)") from None


class ConversationOracle(OracleModel):
    """The oracle in a conversation: it reads input values only from what the user said
    (a value counts as said when its text is in the user's words; an argument the routine
    leaves to the model comes from the input it names) and calls what the routine says.
    ``first`` holds values the user states before the right ones (a wrong email given
    first): of the values said, the last one counts. The conversation protocol's ceiling:
    with it every gold conversation succeeds, asking for nothing the user already said."""

    def __init__(self, inputs: dict[str, Any], routine: str = "",
                 first: dict[str, Any] | None = None, answer: str | None = None):
        super().__init__(routine)
        self.name = "conversation-oracle"
        self.inputs = dict(inputs)
        self.first = dict(first or {})
        self.answer = answer  # what it answers at the finish step (a gold answer)

    @classmethod
    def for_user(cls, stated: dict[str, Any], user: Any, routine: str = "",
                 answer: str | None = None) -> ConversationOracle:
        """The oracle for a conversation whose first message states ``stated`` and whose
        simulated user has ``user`` (a :class:`~routine.eval.users.UserProfile`): the values
        that count are the user's facts and what they change their mind to; a wrong value
        stated first, or the one a mind was changed from, comes ``first``."""
        first = {k: v for k, v in stated.items() if k in user.facts and user.facts[k] != v}
        first |= {k: user.facts.get(k, stated.get(k)) for k in user.changes
                  if k in user.facts or k in stated}  # held, or stated in the first message
        return cls({**stated, **user.facts, **user.changes}, routine, first=first,
                   answer=answer)

    def _said(self, name: str, text: str) -> Any:
        """The value of ``name`` the user's words state (None: not stated)."""
        found = None
        for value in ([self.first[name]] if name in self.first else []) + (
                [self.inputs[name]] if name in self.inputs else []):
            if str(value).lower() in text:
                found = (text.rfind(str(value).lower()), value) if found is None or \
                    text.rfind(str(value).lower()) >= found[0] else found
        return None if found is None else found[1]

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        said = " ".join(m.content for m in messages if isinstance(m, UserMessage)).lower()
        if guide is not None and guide.label == "inputs":
            wanted = (guide.schema or {}).get("properties", {})
            return ModelReply(content=json.dumps({n: self._said(n, said) for n in wanted},
                                                 default=str))
        if guide is not None and guide.tools == (FINISH_TOOL,) and self.answer is not None:
            return _call(FINISH_TOOL, {"answer": self.answer})
        if guide is not None and guide.unknown and len(guide.tools) == 1:
            # a value the model must take from what the user said: the input it comes from
            tool = guide.tools[0]
            filled = {a: v for a in guide.unknown
                      if (v := self._said(guide.sources.get(a, a), said)) is not None}
            if len(filled) == len(guide.unknown):
                return _call(tool, {**guide.arguments.get(tool, {}), **filled})
        return await super().complete(messages, tools, guide=guide, **settings)
