"""References: where an argument's value comes from.

Arguments take one of these sources:

* a literal — any YAML value (``leave_type: annual``, ``days: 3``);
* an input — ``${inputs.employee_name}``;
* an earlier step's output — ``${steps.find_employee.output}`` (the whole
  result) or ``${steps.find_employee.output.id}`` (a field; ``.0`` indexes lists);
* a named value — ``${vars.customer.id}``: the output a step named with ``output:``
  (whichever of the steps that name it ran) or a ``compute`` result;
* a constant of the routine — ``${constants.max_credit}``;
* the current item of an enclosing ``for_each`` — ``${item.product_id}`` (its ``as``).

A reference that is the whole string keeps its type; references inside a longer
string are interpolated as text (``"Leave for ${inputs.employee_name}"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Reference", "parse_references", "reference_of", "value_at", "MISSING", "EXPECTED"]

MISSING: Any = object()  # what value_at gives for a path the value does not have

_REF_RE = re.compile(r"\$\{([^}]*)\}")
_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^\d+$")


@dataclass(frozen=True)
class Reference:
    """A parsed ``${...}``: ``kind`` is ``inputs``, ``steps``, ``vars``, ``constants`` or
    ``loop`` (a for_each item; ``name`` is its ``as``); ``path`` is the field path."""

    text: str
    kind: str
    name: str  # input name, step id, var, constant or loop item name
    path: tuple[str, ...] = ()
    whole: bool = True  # the reference is the entire argument value (not text, not a leaf)
    error: str | None = None
    method: str = ""  # in an expression or template: a method called on the value


def parse_references(value: Any, _leaf: bool = False) -> list[Reference]:
    """All references in an argument value (recursing into lists and mappings). ``whole``
    only when the value itself is exactly one reference: one that fills a leaf of a
    structure is not the argument's value."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in parse_references(v, True)]
    if isinstance(value, list):
        return [r for v in value for r in parse_references(v, True)]
    if not isinstance(value, str):
        return []
    matches = list(_REF_RE.finditer(value))
    whole = not _leaf and len(matches) == 1 and matches[0].span() == (0, len(value))
    refs = []
    for m in matches:
        refs.append(_parse_one(m.group(0), m.group(1).strip(), whole))
    if "${" in value and value.count("${") != len(matches):
        refs.append(Reference(value, "", "", error=f"unclosed '${{' ({EXPECTED})"))
    return refs


EXPECTED = ("expected ${inputs.NAME}, ${steps.STEP_ID.output[.FIELD...]}, ${vars.NAME}, "
            "${constants.NAME} or a for_each item's ${ITEM[.FIELD]}")


def reference_of(text: str, parts: list[str], whole: bool = True) -> Reference:
    """The reference a dotted path names (``["steps", "a", "output", "id"]``)."""
    head = parts[0]
    if head in ("inputs", "vars", "constants"):
        if len(parts) >= 2:
            return Reference(text, head, parts[1], tuple(parts[2:]), whole)
    elif head == "steps":
        if len(parts) >= 3 and parts[2] == "output":
            return Reference(text, "steps", parts[1], tuple(parts[3:]), whole)
    elif not head.isdigit():
        return Reference(text, "loop", head, tuple(parts[1:]), whole)
    return Reference(text, "", "", error=f"malformed reference {text!r}: {EXPECTED}")


def _parse_one(text: str, body: str, whole: bool) -> Reference:
    parts = body.split(".")
    if not all(_SEGMENT_RE.match(p) for p in parts):
        if re.search(r"\[\s*\d+\s*\]", body):  # items[0]: the path indexes with .0
            dotted = re.sub(r"\[\s*(\d+)\s*\]", r".\1", body)
            return Reference(text, "", "", error=f"malformed reference {text!r}: a list is "
                             f"indexed with .N in a reference (${{{dotted}}})")
        return Reference(text, "", "", error=f"malformed reference {text!r}: {EXPECTED}")
    return reference_of(text, parts, whole)


def value_at(value: Any, path: tuple[str, ...] | list[str]) -> Any:
    """Follow a field path into data (``.0`` indexes a list); :data:`MISSING` if it is not
    there."""
    for segment in path:
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return MISSING
    return value
