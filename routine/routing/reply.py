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
    """A description as the end of a sentence: its first letter lower-cased unless its first
    word is an acronym or a name spelled with capitals inside (``HR``, ``iPhone``)."""
    text = text.strip().rstrip(".")
    first = text.split(maxsplit=1)[0] if text else ""
    if any(c.isupper() for c in first[1:]):
        return text
    return text[:1].lower() + text[1:]


def _what(library: Library, name: str) -> str:
    """What a routine does, in words: its description, else its name."""
    return library[name].description.strip() or name.replace("_", " ")


def capabilities(library: Library) -> str:
    """``I can't help with that. I can help with: - ...`` (one line per routine; routines
    of one description once; one without a description by its name)."""
    lines = list(dict.fromkeys(f"- {_what(library, e.name)}" for e in library.entries))
    return "Sorry, I can't help with that request. Here is what I can help with:\n" + \
        "\n".join(lines)


def clarifying_question(library: Library, first: str, second: str) -> str:
    """Which of two routines the user means (by name when their descriptions read alike)."""
    one, two = _sentence(_what(library, first)), _sentence(_what(library, second))
    if one.casefold() == two.casefold():
        return (f"Which do you mean: {first.replace('_', ' ')} or "
                f"{second.replace('_', ' ')} (both: {one})?")
    return f"Do you want me to {one}, or to {two}?"


def complete(decision: RouteDecision, library: Library) -> RouteDecision:
    """The decision with the agent's reply filled in for ``none`` and ``ambiguous``."""
    if decision.kind == "none":
        return decision.model_copy(update={"reply": capabilities(library)})
    if decision.kind == "ambiguous":
        first, second = decision.options
        return decision.model_copy(update={"reply": clarifying_question(library, first,
                                                                        second)})
    return decision
