"""What a router decides about a request: a typed record.

A :class:`RouteDecision` is one of three kinds:

* ``routine`` — the request goes to ``routine``;
* ``none`` — no routine does what is asked: the agent says what it can help with
  (``reply``) instead of guessing;
* ``ambiguous`` — two routines fit about equally: the agent asks which one (``reply``).

``candidates`` keeps the router's ranking (best first, with scores), so a wrong decision
can be explained, and :func:`decide` is the rule score-based routers share: the best
candidate below ``threshold`` → none; the best two within ``margin`` → ambiguous.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator

__all__ = ["NONE", "Candidate", "RouteDecision", "Thresholds", "decide"]

NONE = "none"  # the decision (and the LLM router's answer) when no routine fits: no routine's name


class Candidate(BaseModel):
    """One routine a router ranked, and its score (higher is better; the scale is the
    router's own)."""

    name: str
    score: float


class Thresholds(BaseModel):
    """When a score-based router says none, or asks.

    Tuned on the dev split (:func:`routine.routing.measure.tune`); the defaults of each
    router come from that tuning."""

    none_below: float = Field(description="The best score under this: no routine fits.")
    margin: float = Field(0.0, ge=0, description="The best two scores closer than this: ask "
                          "which one (0: never ask).")

    @field_validator("none_below", "margin")
    @classmethod
    def _a_number(cls, value: float) -> float:
        # NaN compares false with every score: a router that never says none, silently
        if math.isnan(value):
            raise ValueError("a number (not NaN)")
        return value


class RouteDecision(BaseModel):
    """A router's decision about one request."""

    kind: Literal["routine", "none", "ambiguous"]
    routine: str | None = Field(None, description="The routine chosen (kind 'routine').")
    candidates: list[Candidate] = Field(default_factory=list, description="The ranking, best "
                                        "first (the top k for the LLM router).")
    router: str = Field("", description="Which router decided (lexical, embedding, llm).")
    reason: str = Field("", description="Why, in a few words.")
    reply: str | None = Field(None, description="What the agent says instead of running a "
                              "routine: the question (ambiguous) or what it can help with "
                              "(none).")

    @property
    def best(self) -> str | None:
        """The routine decided for, else the best-ranked one (top-1 counts it)."""
        if self.kind == "routine" and self.routine is not None:
            return self.routine
        return self.candidates[0].name if self.candidates else None

    @property
    def options(self) -> list[str]:
        """The routines an ambiguous decision asks between."""
        return [c.name for c in self.candidates[:2]] if self.kind == "ambiguous" else []


def decide(candidates: list[Candidate], thresholds: Thresholds, router: str = ""
           ) -> RouteDecision:
    """The decision for a ranking (best first): none below the threshold, ambiguous within
    the margin, else the best routine."""
    if not candidates or candidates[0].score < thresholds.none_below:
        if not candidates:
            best = "no routines"
        elif len(candidates) > 1 and candidates[0].score == candidates[-1].score:
            best = f"every routine scores {candidates[0].score:.3f}"  # (not one at random)
        else:
            best = f"{candidates[0].name} scores {candidates[0].score:.3f}"
        return RouteDecision(kind="none", candidates=candidates, router=router,
                             reason=f"{best}, under the threshold {thresholds.none_below:.3f}")
    first = candidates[0]
    gap = first.score - candidates[1].score if len(candidates) > 1 else None
    # an exact tie is never decided by the order the routines were listed in: it is asked
    if gap is not None and (gap < thresholds.margin or gap <= 1e-9):
        second = candidates[1]
        within = "are tied" if gap <= 1e-9 else f"are within {thresholds.margin:.3f}"
        return RouteDecision(kind="ambiguous", candidates=candidates, router=router,
                             reason=f"{first.name} ({first.score:.3f}) and {second.name} "
                             f"({second.score:.3f}) {within}")
    return RouteDecision(kind="routine", routine=first.name, candidates=candidates,
                         router=router, reason=f"best score {first.score:.3f}")
