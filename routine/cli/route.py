"""What ``routine route``, ``routine route-eval`` and ``routine run --library`` share: the
library from folders and example files, the router by name, a decision in words.

The commands themselves are in :mod:`routine.cli.commands` (they start models); this
module starts none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.text import Text

from ..routing import (
    DEFAULT_ROUTER,
    ROUTERS,
    Entry,
    Library,
    RouteDecision,
    Router,
    Thresholds,
    have_embeddings,
    load_examples,
    make_router,
)
from ..spec.toolsets import registry_for
from ..tools.core import ToolRegistry
from .terminal import shown

__all__ = ["LibraryOption", "RouterOption", "ExamplesOption", "ThresholdOption",
           "library_from", "router_kind", "build_router", "decision_text", "tools_for",
           "request_text"]

LibraryOption = Annotated[list[Path] | None, typer.Option(
    "--library", help="A folder of routines (repeatable): a router picks the routine for the "
    "request (leave ROUTINE out).")]
RouterOption = Annotated[str | None, typer.Option(
    "--router", help=f"How the routine is picked: {', '.join(ROUTERS)} (default "
    f"{DEFAULT_ROUTER} when installed, else lexical).")]
ExamplesOption = Annotated[list[Path] | None, typer.Option(
    "--examples", help="A JSONL file of example requests ({query, routine} per line) the "
    "router also reads (repeatable).")]
ThresholdOption = Annotated[float | None, typer.Option(
    "--none-below", help="A lexical or embedding router says 'none' when the best score is "
    "under this (default: tuned on the dev splits).")]


def library_from(folders: list[Path], examples: list[Path] | None = None) -> Library:
    """The library of these folders, with the example requests of these files."""
    library = Library.from_folders(*folders)
    for path in examples or []:
        library = library.with_examples(load_examples(path))
    return library


def request_text(query: str | None) -> str:
    """The request to route: an empty or blank one is a usage error (``routine route`` and
    ``routine run --library`` alike), not a request that no routine serves."""
    if query is None or not query.strip():
        raise click.BadParameter("the request is empty: give the user's request (e.g. "
                                 "\"How many vacation days do I have left?\")",
                                 param_hint="QUERY")
    return query


def router_kind(kind: str | None) -> str:
    """The router to use: ``kind``, or the default when its dependencies are installed."""
    if kind is None:
        return DEFAULT_ROUTER if DEFAULT_ROUTER != "embedding" or have_embeddings() \
            else "lexical"
    if kind not in ROUTERS:
        import click

        raise click.BadParameter(f"unknown router {kind!r} (expected one of "
                                 f"{', '.join(ROUTERS)})", param_hint="--router")
    return kind


def build_router(kind: str, library: Library, model: Any = None,
                 none_below: float | None = None, examples: bool | None = None) -> Router:
    """The router; a ``--none-below`` overrides the tuned threshold (margin kept);
    ``examples``: the user gave ``--examples``, so a lexical router reads them too."""
    if none_below is not None and math.isnan(none_below):  # (before a model starts)
        raise click.BadParameter("a number, not NaN (NaN is under no score: never 'none')",
                                 param_hint="--none-below")
    router = make_router(kind, library, model, examples=examples)  # type: ignore[arg-type]
    scorer = getattr(router, "retriever", router)  # the llm router's ranking falls back on it
    if none_below is not None and hasattr(scorer, "thresholds"):
        scorer.thresholds = Thresholds(none_below=none_below,
                                       margin=scorer.thresholds.margin)
    return router


def tools_for(extra: list[str] | None) -> Any:
    """The registry of a library entry, from its routine's toolsets (problems raise)."""
    def registry(entry: Entry) -> ToolRegistry:
        from ..errors import SpecError

        if entry.source is None:
            raise SpecError([])
        tools, problems = registry_for(entry.source, extra)
        if problems:
            raise SpecError(problems)
        return tools

    return registry


def decision_text(decision: RouteDecision) -> Text:
    """``→ leave_balance (embedding: best score 0.61)`` and the ranking, or the reply."""
    style = {"routine": "green", "none": "yellow", "ambiguous": "yellow"}[decision.kind]
    head = decision.routine if decision.kind == "routine" else decision.kind
    ranking = ", ".join(f"{c.name} {c.score:.3f}" for c in decision.candidates[:5])
    text = Text.assemble(("route → ", "bold"), (shown(head), f"bold {style}"),
                         shown(f" ({decision.router}: {decision.reason})\n  ranking: {ranking}"))
    if decision.reply:
        text.append(f"\n{shown(decision.reply)}")
    return text
