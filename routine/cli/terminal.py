"""Text from a model, a tool or a file, made safe to print on a terminal."""

from __future__ import annotations

import re

__all__ = ["shown"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str | None) -> str:
    """``text`` with its control characters written out (``\\x1b``): an escape sequence in
    an answer or a tool result must not clear the screen or recolour what follows. Line
    breaks and tabs are kept."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode(), text or "")
