"""Input values of a routine's declared types: text from the CLI (``-i months=18``), a
Decimal from Python code, or an argument the model filled in its call ("18" for an integer
input) become the value the run reads, or one clear error. Below the run loop: the tracker
and the executor both use it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..errors import RoutineError
from ..spec.format import Routine, a_type

__all__ = ["coerce_inputs"]


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "y", "on"):
        return True
    if word in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(text)


def _json(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = json.loads(text)
        if not isinstance(value, kind):
            raise ValueError(text)
        return value
    return parse


_FROM_TEXT: dict[str, Callable[[str], Any]] = {  # a value given as text (the CLI's -i)
    "integer": int, "number": float, "boolean": _boolean, "array": _json(list),
    "object": _json(dict),
}


def _from_decimal(value: Decimal) -> int | float:
    """A Decimal input (money from Python code) as the JSON number it equals; one a float
    cannot hold exactly is refused (a ValueError) rather than rounded."""
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:
        raise ValueError(f"{value} has more digits than a number input keeps exactly "
                         "(give it as a string input)")
    return number


def _typed(kind: str, value: Any) -> Any:
    """``value`` as the input type ``kind`` (ValueError if it is not one)."""
    if isinstance(value, str) and kind in _FROM_TEXT:
        value = _FROM_TEXT[kind](value.strip())
    if isinstance(value, Decimal) and kind in ("integer", "number") and value.is_finite():
        value = _from_decimal(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {"string": isinstance(value, str), "boolean": isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "number": numeric and (not isinstance(value, float) or math.isfinite(value)),
          "array": isinstance(value, list),
          "object": isinstance(value, dict)}.get(kind, True)
    if not ok:
        raise ValueError(value)
    return value


def coerce_inputs(routine: Routine | None, raw: dict[str, Any]) -> dict[str, Any]:
    """Check input values against the routine's declared types and enums, converting text
    (the CLI's ``-i name=value``: ``7``, ``true``, ``[1, 2]``) to them; a value of the
    wrong type, an unknown name or a value outside the enum is one RoutineError. ``None``
    is a value not given."""
    if routine is None:
        return dict(raw)
    out = {}
    for name, value in raw.items():
        spec = routine.inputs.get(name)
        if spec is None:
            raise RoutineError(f"routine {routine.name!r} has no input {name!r} "
                               f"(it has: {', '.join(routine.inputs) or 'none'})")
        if value is None:
            continue
        try:
            out[name] = _typed(spec.type, value)
        except (ValueError, TypeError, OverflowError) as exc:
            if isinstance(value, Decimal) and value.is_finite():
                raise RoutineError(f"input {name!r}: {exc}") from None
            example = {"integer": "7", "number": "2.5", "boolean": "true or false",
                       "array": "[1, 2]", "object": '{"a": 1}', "string": '"text"'}[spec.type]
            raise RoutineError(f"input {name!r} must be {a_type(spec.type)} (e.g. {example}), "
                               f"got {value!r}") from None
        if spec.enum is not None and out[name] not in spec.enum:
            raise RoutineError(f"input {name!r} must be one of {spec.enum}, got {value!r}")
    return out
