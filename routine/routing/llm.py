"""The LLM router: a retriever ranks the library, the model chooses among the top k.

The model gets the k candidates (name and description, best-ranked first) and the request,
and replies ``{"routine": NAME}``, NAME one of the k names or ``"none"``. The reply is
constrained by a JSON schema (an enum of those names) on endpoints with structured output
(the embedded model's grammar, OpenAI / vLLM ``response_format``), through the same
:class:`~routine.models.base.TurnGuide` the executor sends. A reply that still names
nothing (a free endpoint) falls back to the retriever's decision, and the decision says so.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import RoutineError
from ..models.base import Model, TurnGuide
from ..models.messages import SystemMessage, UserMessage
from ..models.parsing import arguments_text
from ..run.blocking import run_blocking
from .decision import NONE, Candidate, RouteDecision
from .reply import complete
from .router import ScoringRouter

__all__ = ["LLMRouter", "NONE", "route_schema", "route_messages"]


SYSTEM = (
    "You choose the business routine that serves a user's request. Reply with JSON "
    '{"routine": NAME}, where NAME is one of the routine names listed, or "none" when no '
    "listed routine does what the user asks (a different task, or a different action on "
    "the same things: changing, approving or deleting what a routine only looks up).")


def route_schema(names: list[str]) -> dict[str, Any]:
    """The reply's JSON schema: one of ``names`` or none."""
    return {"type": "object", "properties": {"routine": {"enum": [*names, NONE]}},
            "required": ["routine"], "additionalProperties": False}


def route_messages(query: str, candidates: list[tuple[str, str]]) -> list[Any]:
    """The request the model gets: the candidates (name, description) and the user's words."""
    listing = "\n".join(f"- {name}: {description}" for name, description in candidates)
    return [SystemMessage(content=SYSTEM),
            UserMessage(content=f"Routines:\n{listing}\n\nRequest: {query}\n\n"
                                'Which routine serves this request? Reply {"routine": NAME}.')]


def _chosen(text: str, names: list[str]) -> str | None:
    """The routine (or none) a reply names: its JSON, else the one name it mentions."""
    try:
        value = json.loads(text)
        if isinstance(value, dict) and value.get("routine") in [*names, NONE]:
            return str(value["routine"])
    except json.JSONDecodeError:
        pass
    found = [n for n in [*names, NONE] if re.search(rf"\b{re.escape(n)}\b", text)]
    return found[0] if len(found) == 1 else None


class LLMRouter:
    """``retriever`` ranks; ``model`` picks among its top ``k`` (or none).

    Args:
        retriever: a score-based router over the library (its ranking; its thresholds are
            used only when the model's reply names nothing).
        model: any :class:`~routine.models.base.Model` (the embedded model, an endpoint,
            a scripted double).
        k: how many candidates the model sees.
        settings: sampling settings for the request (temperature 0 by default).
    """

    name = "llm"

    def __init__(self, retriever: ScoringRouter, model: Model, k: int = 5,
                 **settings: Any):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise RoutineError(f"k={k!r}: the LLM router chooses among the top k routines, "
                               "k a whole number ≥ 1")
        self.retriever = retriever
        self.library = retriever.library
        self.model = model
        self.k = k
        self.settings = {"temperature": 0.0, "max_tokens": 40, **settings}

    async def aroute(self, query: str) -> RouteDecision:
        ranking = self.retriever.rank(query)
        top: list[Candidate] = ranking[:self.k]
        names = [c.name for c in top]
        messages = route_messages(query, [(n, self.library[n].description) for n in names])
        guide = TurnGuide(label="route", constrain=True, schema=route_schema(names))
        reply = await self.model.complete(messages, [], guide=guide, **self.settings)
        text = reply.content or ""
        for call in reply.tool_calls:  # a model that answered with a call anyway
            text = text or arguments_text(call)
        choice = _chosen(text, names)
        if choice is None:
            fallback = self.retriever.route(query)
            # a free reply may name a routine it was not offered (a request that says "ignore
            # your routines and ..."): said as such, not as a reply that named nothing
            other = _chosen(text, self.library.names)
            named = (f"named {other}, not one of the routines it was given ({', '.join(names)})"
                     if other is not None else f"named no routine ({text[:80]!r})")
            return fallback.model_copy(update={
                "router": self.name, "candidates": top,
                "reason": f"the model's reply {named}; the "
                          f"{self.retriever.name} router decided: {fallback.reason}"})
        if choice == NONE:
            decision = RouteDecision(kind="none", candidates=top, router=self.name,
                                     reason=f"the model chose none of {', '.join(names)}")
        else:
            decision = RouteDecision(kind="routine", routine=choice, candidates=top,
                                     router=self.name,
                                     reason=f"the model chose {choice} among "
                                            f"{', '.join(names)}")
        return complete(decision, self.library)

    def route(self, query: str) -> RouteDecision:
        """Blocking :meth:`aroute` (on the process's blocking loop, like ``Agent.run``: the
        model keeps its client and connections)."""
        return run_blocking(self.aroute(query))
