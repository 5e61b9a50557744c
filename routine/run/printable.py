"""Text from a model, a tool or a file, made safe to print on a terminal."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

from ..models.messages import utf8_text

__all__ = ["shown", "visible", "utf8_text"]

# C0 and C1 controls, and the bidirectional overrides and isolates that make a terminal
# show text in another order than it is (an IBAN or an amount reversed on screen)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                      r"\u2066-\u2069]")


def shown(text: str | None) -> str:
    """``text`` with its control characters written out (``\\x1b``, ``\\u202e``): an
    escape sequence in an answer or a tool result must not clear the screen or recolour
    what follows, nor a bidirectional override reverse it. Line breaks and tabs are kept."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode(), text or "")


def visible(value: Any) -> Any:
    """A page's ``finalize``: text with its control characters and bidirectional overrides
    written out as :func:`shown` does (a browser would show an IBAN from a tool reversed);
    markup the template made itself, and what is not text, as it is. Escaped for HTML after
    this (the pages' environments autoescape)."""
    return shown(value) if isinstance(value, str) and not isinstance(value, Markup) else value
