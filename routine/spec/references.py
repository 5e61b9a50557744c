"""References: where an argument's value comes from.

Arguments take one of three sources:

* a literal — any YAML value (``leave_type: annual``, ``days: 3``);
* an input — ``${inputs.employee_name}``;
* an earlier step's output — ``${steps.find_employee.output}`` (the whole
  result) or ``${steps.find_employee.output.id}`` (a field; ``.0`` indexes lists).

A reference that is the whole string keeps its type; references inside a longer
string are interpolated as text (``"Leave for ${inputs.employee_name}"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Reference", "parse_references"]

_REF_RE = re.compile(r"\$\{([^}]*)\}")
_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^\d+$")


@dataclass(frozen=True)
class Reference:
    """A parsed ``${...}``: ``kind`` is ``inputs`` or ``steps``; ``path`` is the field path."""

    text: str
    kind: str
    name: str  # input name or step id
    path: tuple[str, ...] = ()
    whole: bool = True  # the reference is the entire string value
    error: str | None = None


def parse_references(value: Any) -> list[Reference]:
    """All references in an argument value (recursing into lists and mappings)."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in parse_references(v)]
    if isinstance(value, list):
        return [r for v in value for r in parse_references(v)]
    if not isinstance(value, str):
        return []
    matches = list(_REF_RE.finditer(value))
    whole = len(matches) == 1 and matches[0].span() == (0, len(value))
    refs = []
    for m in matches:
        refs.append(_parse_one(m.group(0), m.group(1).strip(), whole))
    if "${" in value and value.count("${") != len(matches):
        refs.append(Reference(value, "", "", error="unclosed '${' (expected ${inputs.NAME} or "
                              "${steps.STEP_ID.output[.FIELD]})"))
    return refs


def _parse_one(text: str, body: str, whole: bool) -> Reference:
    parts = body.split(".")
    expected = "expected ${inputs.NAME} or ${steps.STEP_ID.output[.FIELD...]}"
    if not all(_SEGMENT_RE.match(p) for p in parts):
        return Reference(text, "", "", error=f"malformed reference {text!r}: {expected}")
    if parts[0] == "inputs" and len(parts) >= 2:
        return Reference(text, "inputs", parts[1], tuple(parts[2:]), whole)
    if parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output":
        return Reference(text, "steps", parts[1], tuple(parts[3:]), whole)
    return Reference(text, "", "", error=f"malformed reference {text!r}: {expected}")
