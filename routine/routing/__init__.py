"""Procedure memory: a request finds its routine in a library, or none fits.

* :mod:`.library` — :class:`Library`: the routines (from folders or code), their cards and
  example requests;
* :mod:`.decision` — :class:`RouteDecision` (routine, none, or ambiguous) and the rule
  score-based routers share;
* :mod:`.router` — the :class:`Router` protocol and the score-based base;
* :mod:`.lexical`, :mod:`.embedding`, :mod:`.llm` — BM25, sentence embeddings, and the
  model choosing among the top k through a guided reply;
* :mod:`.build` — :func:`make_router` by name;
* :mod:`.reply` — what the agent says when no routine runs;
* :mod:`.agent` — :class:`RoutedAgent`: route, then run;
* :mod:`.measure` — top-1, none and false-none rates on a dataset; thresholds tuned on dev.
"""

from .agent import RoutedAgent, RoutedRun, unrouted_trace
from .build import DEFAULT_ROUTER, ROUTERS, RouterKind, make_router, retriever
from .decision import Candidate, RouteDecision, Thresholds, decide
from .embedding import EmbeddingRouter, have_embeddings
from .lexical import LexicalRouter
from .library import Entry, Example, Library, load_examples
from .llm import LLMRouter
from .reply import capabilities, clarifying_question
from .router import Router, ScoringRouter

__all__ = ["Library", "Entry", "Example", "load_examples", "Candidate", "RouteDecision",
           "Thresholds", "decide", "Router", "ScoringRouter", "LexicalRouter",
           "EmbeddingRouter", "have_embeddings", "LLMRouter", "make_router", "retriever",
           "ROUTERS", "DEFAULT_ROUTER", "RouterKind", "RoutedAgent", "RoutedRun",
           "unrouted_trace", "capabilities", "clarifying_question"]
