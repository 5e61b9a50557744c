"""Pick a router by name: ``lexical``, ``embedding`` or ``llm`` (the LLM choosing among the
embedding router's top k, or the lexical router's when embeddings are not installed)."""

from __future__ import annotations

from typing import Literal

from ..errors import RoutineError
from ..models.base import Model
from .decision import Thresholds
from .embedding import EmbeddingRouter, have_embeddings
from .lexical import LexicalRouter
from .library import Library
from .llm import LLMRouter
from .router import Router, ScoringRouter

__all__ = ["RouterKind", "ROUTERS", "DEFAULT_ROUTER", "make_router", "retriever"]

RouterKind = Literal["lexical", "embedding", "llm"]
ROUTERS: tuple[RouterKind, ...] = ("lexical", "embedding", "llm")
# the best top-1 and balanced accuracy on both domains' dev splits (README "Procedure
# memory"; it reads the cards and the library's example requests); the llm router is not
# measured in full yet, and it needs a model for every request
DEFAULT_ROUTER: RouterKind = "embedding"


def retriever(library: Library, kind: RouterKind | None = None,
              thresholds: Thresholds | None = None, examples: bool | None = None
              ) -> ScoringRouter:
    """A score-based router: ``kind``, or the best one installed (embedding, else lexical).
    ``examples``: whether it indexes the library's example requests (None: its measured
    default — the embedding router does, the lexical one does not)."""
    if kind is None:
        kind = "embedding" if have_embeddings() else "lexical"
    if kind == "embedding":
        return EmbeddingRouter(library, thresholds, examples)
    if kind == "lexical":
        return LexicalRouter(library, thresholds, examples)
    raise RoutineError(f"{kind!r} is not a retrieval router (lexical or embedding)")


def make_router(kind: RouterKind | None, library: Library, model: Model | None = None, *,
                k: int = 5, thresholds: Thresholds | None = None,
                examples: bool | None = None) -> Router:
    """The router ``kind`` over ``library`` (None: the default, or lexical when embeddings
    are not installed); the LLM router needs ``model``. ``examples=True`` makes a retrieval
    router read the library's example requests (a user who gives them wants them read)."""
    if kind is None:
        return retriever(library, None, thresholds, examples)
    if kind == "llm":
        if model is None:
            raise RoutineError("the llm router needs a model (an endpoint or the embedded one)")
        return LLMRouter(retriever(library, None, thresholds, examples), model, k=k)
    if kind not in ROUTERS:
        raise RoutineError(f"unknown router {kind!r}; choose from {', '.join(ROUTERS)}")
    return retriever(library, kind, thresholds, examples)
