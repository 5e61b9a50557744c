"""The paper's retrieval condition: the routine is chosen by a router, not given.

Under a routed condition (``nl+track+routed``) each task's request goes through the
domain's router first (:func:`eval_router`: the domain's routines, example requests from
the train split only). The chosen routine then runs exactly as under the condition's
given-routine twin; a wrong routine runs wrongly and fails on its own, and a request the
router turns away (none, or a question back) calls no tool: the database stays as it was
and the answer is the router's reply, so it fails every routine task (and passes a refusal
only if the reply states its facts). The step protocol and conversations keep the given
routine (a step sample needs the gold history under the routine that made it).
"""

from __future__ import annotations

from pathlib import Path

from ..models.base import Model
from ..routing import Library, RouteDecision, Router, load_examples, make_router
from ..routing.measure import INDEX_SPLIT
from .dataset import Domain

__all__ = ["eval_router", "route_example"]


def eval_router(dataset: str | Path, domain: Domain, kind: str, model: Model | None) -> Router:
    """The router of a domain: its routines, with the train split's requests as examples
    (never a dev or test request)."""
    library = Library.of(domain.routines().values())
    train = Path(dataset) / f"{INDEX_SPLIT}.jsonl"
    if train.exists():
        library = library.with_examples(
            [e for e in load_examples(train) if e.routine in library.names])
    return make_router(kind, library, model)  # type: ignore[arg-type]


async def route_example(router: Router, query: str | None) -> RouteDecision:
    """The router's decision for a task's request."""
    return await router.aroute(query or "")
