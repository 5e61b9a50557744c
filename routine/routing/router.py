"""What every router is, and the base of the score-based ones.

A router takes a request and returns a :class:`~routine.routing.decision.RouteDecision`
(:class:`Router`). :class:`ScoringRouter` is the base of the retrieval routers: it ranks the
library's routines for a request (:meth:`ScoringRouter.rank`, one score per routine: the
best of its passages, i.e. its card and each example request, an example's score less the
router's ``example_offset``) and decides with its
:class:`~routine.routing.decision.Thresholds`. Requests and passages are compared without
their particulars (names, numbers, e-mail addresses: :func:`~.library.retrieval_text`).
"""

from __future__ import annotations

import abc
import re
from typing import Protocol, runtime_checkable

from .decision import Candidate, RouteDecision, Thresholds, decide
from .library import Library, capitalised_terms, retrieval_text
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

    #: whether the library's example requests are indexed beside the cards
    use_examples = False
    #: what an example request's score gives up against a card's: a request is more like
    #: another request than like a card, so without it the routines that have examples win
    #: the requests of those that have none (a card's scale and an example's differ)
    example_offset = 0.0

    def __init__(self, library: Library, thresholds: Thresholds | None = None,
                 examples: bool | None = None):
        if not len(library):
            raise ValueError("a router needs a library with at least one routine")
        self.library = library
        if examples is not None:
            self.use_examples = examples
        texts, self._owners = passages(library, self.use_examples)
        shown = [len(e.examples) if self.use_examples else 0 for e in library.entries]
        self._offsets = [x for n in shown for x in (0.0, *[self.example_offset] * n)]
        # words the library writes in lower case: in a title-cased request they are words,
        # not names ("Please Reroute My Parcel")
        self._vocabulary = frozenset(w for t in texts for w in re.findall(r"\b[a-z]+\b", t))
        # the words the cards write capitalised inside a sentence (German nouns): terms of
        # the library, not names; example requests are left out (they carry names)
        self._terms = frozenset().union(*(capitalised_terms(e.card)
                                          for e in library.entries))
        self._texts = [retrieval_text(t, terms=self._terms) for t in texts]
        self.thresholds = thresholds or self.default_thresholds()  # (may read the passages)

    @abc.abstractmethod
    def default_thresholds(self) -> Thresholds:
        """The thresholds tuned on the dev splits (see the README's routing table)."""

    @abc.abstractmethod
    def passage_scores(self, query: str) -> list[float]:
        """A score for every passage (same order as :func:`passages`), for a request as
        :func:`~.library.retrieval_text` gives it."""

    def rank(self, query: str) -> list[Candidate]:
        """Every routine with its score (its best passage's: the card's, or an example's
        less ``example_offset``), best first; ties by name."""
        best: dict[int, float] = {}
        scores = self.passage_scores(retrieval_text(query, self._vocabulary, self._terms))
        for owner, score, offset in zip(self._owners, scores, self._offsets, strict=True):
            best[owner] = max(best.get(owner, float("-inf")), float(score) - offset)
        ranked = [Candidate(name=self.library.entries[i].name, score=round(s, 6))
                  for i, s in best.items()]
        return sorted(ranked, key=lambda c: (-c.score, c.name))

    def route(self, query: str) -> RouteDecision:
        """The decision for ``query`` (blocking; scoring needs no event loop)."""
        return complete(decide(self.rank(query), self.thresholds, self.name), self.library)

    async def aroute(self, query: str) -> RouteDecision:
        return self.route(query)
