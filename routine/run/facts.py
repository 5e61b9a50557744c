"""Whether an answer states given values: what answer templates and the task protocol check."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["unstated"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")


def _date_forms(iso: str) -> list[str]:
    """An ISO date as answers write it (lower case): 2026-04-02, 2 april 2026, april 2,
    2026, april 2 2026, 2nd april 2026, apr 2, 2026. Not 02/04/2026: which is the day and
    which the month depends on the reader."""
    year, month, day = (int(p) for p in iso.split("-"))
    if not 1 <= month <= 12:
        return [iso]
    name, short = _MONTHS[month - 1], _MONTHS[month - 1][:3]
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    forms = [iso]
    for m in (name, short):
        forms += [f"{day} {m} {year}", f"{day}{suffix} {m} {year}", f"{day}{suffix} of {m} {year}",
                  f"{m} {day}, {year}", f"{m} {day} {year}", f"{m} {day}{suffix}, {year}"]
    return forms


def unstated(answer: str | None, values: list[Any]) -> list[Any]:
    """The values the answer does not state: numbers (and numeric text such as "1,500") as
    numbers, so 7 matches "7.0"; an ISO date also as English writes it ("2 April 2026",
    "April 2, 2026"); other text case-insensitively; empty values are ignored."""
    text = (answer or "").lower()
    numbers = {float(n) for n in _NUMBER.findall(text.replace(",", ""))}
    missing = []
    for value in values:
        if isinstance(value, bool) or value is None or value == "":
            continue
        if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
            if not any(form in text for form in _date_forms(value.strip())):
                missing.append(value)
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
