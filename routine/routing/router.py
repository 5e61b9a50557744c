"""What every router is, and the base of the score-based ones.

A router takes a request and returns a :class:`~routine.routing.decision.RouteDecision`
(:class:`Router`). :class:`ScoringRouter` is the base of the retrieval routers: it ranks the
library's routines for a request (:meth:`ScoringRouter.rank`, one score per routine: the
best of its passages, i.e. its card and each example request) and decides with its
:class:`~routine.routing.decision.Thresholds`.
"""

from __future__ import annotations

import abc
from typing import Protocol, runtime_checkable

from .decision import Candidate, RouteDecision, Thresholds, decide
from .library import Library
from .reply import complete

__all__ = ["Router", "ScoringRouter", "passages"]


@runtime_checkable
class Router(Protocol):
    """Request in, decision out."""

    name: str
    library: Library

    async def aroute(self, query: str) -> RouteDecision: ...


def passages(library: Library, examples: bool = True) -> tuple[list[str], list[int]]:
    """The texts retrieval indexes (each routine's card, then each example request unless
    ``examples`` is False) and, for each, the index of its routine in the library."""
    texts, owners = [], []
    for index, entry in enumerate(library.entries):
        for text in (entry.card, *(entry.examples if examples else ())):
            texts.append(text)
            owners.append(index)
    return texts, owners


class ScoringRouter(abc.ABC):
    """A router that scores every routine of the library for a request."""

    name = "scoring"
    thresholds: Thresholds

    #: whether example requests are indexed beside the cards: off by default, because on
    #: both domains' dev and test splits they lowered top-1 accuracy (routines with many
    #: examples win requests meant for routines with none; README "Routing")
    use_examples = False

    def __init__(self, library: Library, thresholds: Thresholds | None = None,
                 examples: bool | None = None):
        if not len(library):
            raise ValueError("a router needs a library with at least one routine")
        self.library = library
        if examples is not None:
            self.use_examples = examples
        self.thresholds = thresholds or self.default_thresholds()
        self._texts, self._owners = passages(library, self.use_examples)

    @abc.abstractmethod
    def default_thresholds(self) -> Thresholds:
        """The thresholds tuned on the dev splits (see the README's routing table)."""

    @abc.abstractmethod
    def passage_scores(self, query: str) -> list[float]:
        """A score for every passage (same order as :func:`passages`)."""

    def rank(self, query: str) -> list[Candidate]:
        """Every routine with its score (its best passage's), best first; ties by name."""
        best: dict[int, float] = {}
        for owner, score in zip(self._owners, self.passage_scores(query), strict=True):
            best[owner] = max(best.get(owner, float("-inf")), float(score))
        ranked = [Candidate(name=self.library.entries[i].name, score=round(s, 6))
                  for i, s in best.items()]
        return sorted(ranked, key=lambda c: (-c.score, c.name))

    def route(self, query: str) -> RouteDecision:
        """The decision for ``query`` (blocking; scoring needs no event loop)."""
        return complete(decide(self.rank(query), self.thresholds, self.name), self.library)

    async def aroute(self, query: str) -> RouteDecision:
        return self.route(query)
