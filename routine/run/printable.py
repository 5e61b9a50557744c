"""Text from a model, a tool or a file, made safe to print on a terminal."""

from __future__ import annotations

import re

__all__ = ["shown", "utf8_text"]

# C0 and C1 controls, and the bidirectional overrides and isolates that make a terminal
# show text in another order than it is (an IBAN or an amount reversed on screen)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                      r"\u2066-\u2069]")


def shown(text: str | None) -> str:
    """``text`` with its control characters written out (``\\x1b``, ``\\u202e``): an
    escape sequence in an answer or a tool result must not clear the screen or recolour
    what follows, nor a bidirectional override reverse it. Line breaks and tabs are kept."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode(), text or "")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def utf8_text(text: str) -> str:
    """``text`` as text every UTF-8 writer takes: a surrogate pair (from JSON's
    ``\\ud83d\\ude00``) is joined into its character, and a lone surrogate — a byte that is
    not UTF-8, read with ``surrogateescape`` (a Latin-1 "é" on the command line), or half a
    pair cut off — is U+FFFD, as a bad byte read with ``errors="replace"`` is."""
    if not _SURROGATE.search(text):
        return text
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    return _SURROGATE.sub("\ufffd", joined)
