"""What the agent says when no routine runs: what it can help with, or which one is meant.

A ``none`` decision is answered with the library's capabilities (each routine's
description) instead of a guess; an ``ambiguous`` one with a question naming the two
routines that fit.
"""

from __future__ import annotations

from .decision import RouteDecision
from .library import Library

__all__ = ["capabilities", "clarifying_question", "complete"]


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text else text


def capabilities(library: Library) -> str:
    """``I can't help with that. I can help with: - ...`` (one line per routine)."""
    lines = [f"- {e.description.strip()}" for e in library.entries if e.description.strip()]
    return "Sorry, I can't help with that request. Here is what I can help with:\n" + \
        "\n".join(lines)


def clarifying_question(library: Library, first: str, second: str) -> str:
    """Which of two routines the user means."""
    return (f"Do you want me to {_sentence(library[first].description)}, or to "
            f"{_sentence(library[second].description)}?")


def complete(decision: RouteDecision, library: Library) -> RouteDecision:
    """The decision with the agent's reply filled in for ``none`` and ``ambiguous``."""
    if decision.kind == "none":
        return decision.model_copy(update={"reply": capabilities(library)})
    if decision.kind == "ambiguous":
        first, second = decision.options
        return decision.model_copy(update={"reply": clarifying_question(library, first,
                                                                        second)})
    return decision
