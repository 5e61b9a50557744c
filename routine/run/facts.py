"""Whether an answer states given values: what answer templates and the task protocol check."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["unstated"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def unstated(answer: str | None, values: list[Any]) -> list[Any]:
    """The values the answer does not state: numbers (and numeric text such as "1,500") as
    numbers, so 7 matches "7.0"; other text case-insensitively; empty values are ignored."""
    text = (answer or "").lower()
    numbers = {float(n) for n in _NUMBER.findall(text.replace(",", ""))}
    missing = []
    for value in values:
        if isinstance(value, bool) or value is None or value == "":
            continue
        try:
            number = float(value.replace(",", "")) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            if str(value).lower() not in text:
                missing.append(value)
            continue
        if number not in numbers:
            missing.append(value)
    return missing
