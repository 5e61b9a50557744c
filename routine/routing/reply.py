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


# words that start what a verb acts on ("Files a claim", "Looks up", "Checks whether"): a
# plural noun at the start of a description ("Sales report", "News digest") is not followed
# by one of them, so it is left alone
_OBJECT_STARTS = frozenset(
    "a an the their his her its our your my this that these those each every all any some "
    "one two new up out down off in on over back whether if how what which who when where "
    "why for to with from by at".split())


def _imperative(text: str) -> str:
    """A description written in the third person ("Files a claim", "Applies a discount")
    as the imperative the question reads ("Do you want me to file a claim?"); one that is
    imperative already ("Process a refund", "Tell the user") as it is."""
    first, _, rest = text.partition(" ")
    word = first.lower()
    if not first.isalpha() or first[1:] != first[1:].lower() or len(word) < 4 \
            or rest.split(" ", 1)[0].lower() not in _OBJECT_STARTS:  # "Sales report": a noun
        return text
    if word.endswith("ies"):
        verb = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        verb = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        verb = word[:-1]
    else:
        return text
    verb = verb if first[0].islower() else verb[:1].upper() + verb[1:]
    return f"{verb} {rest}" if rest else verb


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
    one, two = (_sentence(_imperative(_what(library, n))) for n in (first, second))
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
