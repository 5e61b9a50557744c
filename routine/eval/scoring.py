"""Score tool calls the way the Routine paper (and BFCL's AST checker) does, in layers.

1. **format** — the reply is a well-formed call (or calls);
2. **tool** — the right tools, and the right number of calls;
3. **arguments** — none missing, none invented, right types and values.

A sample is correct only when every layer passes. Partial credit is reported
beside the verdict: tool-name F1 and the fraction of expected arguments matched.

Expected values are lists of acceptable values per argument (BFCL's "possible
answers"); the :data:`OPTIONAL` marker (``""``) in the list means the argument
may be left out. How a value is compared is configurable per argument:

* ``loose`` (default for strings) — case, spaces and ``,./-_*^`` ignored (BFCL's rule);
* ``exact`` — equal as JSON values;
* ``fuzzy`` — free text: word overlap with an acceptable value of at least 0.5;
* ``ignore`` — any value of the right type.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["text_matches", "words", "FUZZY_OVERLAP", "ExpectedCall", "CallScore", "ArgMode",
           "OPTIONAL", "score_calls", "standardize", "tool_f1"]

OPTIONAL = ""
ArgMode = Literal["loose", "exact", "fuzzy", "ignore"]
Layer = Literal["format", "tool", "count", "arguments"]

# JSON Schema's and BFCL's type names. BFCL's checker maps its "any" to ``str`` (a value
# of the acceptable values' type passes too, as for every type); a schema without a type
# constrains nothing.
_PY_TYPES: dict[str, type | tuple[type, ...] | None] = {
    "string": str, "integer": int, "number": float, "float": float, "boolean": bool,
    "array": list, "tuple": list, "object": dict, "dict": dict, "any": str,
}


@dataclass
class ExpectedCall:
    """A gold call: the tool and, per argument, its acceptable values."""

    name: str
    arguments: dict[str, list[Any]]

    @classmethod
    def exact(cls, name: str, arguments: dict[str, Any],
              defaults: dict[str, Any] | None = None) -> ExpectedCall:
        """From a gold call with one value per argument; an argument equal to the tool's
        default may also be left out."""
        defaults = defaults or {}
        return cls(name, {k: [v, OPTIONAL] if k in defaults and defaults[k] == v else [v]
                          for k, v in arguments.items()})


@dataclass
class CallScore:
    """The verdict on one sample."""

    correct: bool
    layer: Layer | None = None  # the first layer that failed
    error: str = ""
    tool_f1: float = 0.0
    arg_match: float = 0.0  # fraction of expected arguments given with an acceptable value
    details: list[str] = field(default_factory=list)

    @property
    def wellformed(self) -> bool:
        return self.layer != "format"

    @property
    def tools_ok(self) -> bool:
        return self.layer not in ("format", "tool", "count")


def standardize(text: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lower-case, ' -> "."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


FUZZY_OVERLAP = 0.5  # the share of words two free texts must have in common


def words(text: str) -> set[str]:
    """The lower-cased words of a text, as the ``fuzzy`` mode compares them."""
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _fuzzy(a: str, b: str) -> bool:
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return standardize(a) == standardize(b)
    return len(wa & wb) / len(wa | wb) >= FUZZY_OVERLAP or standardize(a) == standardize(b)


def text_matches(value: str, expected: str, mode: ArgMode) -> bool:
    """Whether a free-text value matches the expected one under ``mode`` (the same test the
    argument layer applies: ``fuzzy`` word overlap, ``loose`` BFCL-normalised, ``exact``)."""
    if mode == "ignore":
        return True
    if mode == "fuzzy":
        return _fuzzy(value, expected)
    if mode == "loose":
        return standardize(value) == standardize(expected)
    return value == expected


def tool_f1(predicted: list[str], expected: list[str]) -> float:
    """F1 of the tool names, as multisets."""
    if not predicted and not expected:
        return 1.0
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def _type_of(schema: dict[str, Any]) -> tuple[str, str | None]:
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    nested = None
    if kind in ("array", "tuple"):
        nested = (schema.get("items") or {}).get("type")
    return kind, nested


def _type_ok(value: Any, kind: str, nested: str | None, possible: list[Any]) -> bool:
    """BFCL's type check: the schema's type, or (for answers given as variables) the type
    of the acceptable values; list items checked one level deep."""
    expected = _PY_TYPES.get(kind)
    if expected is None:
        return True
    if type(value) is expected:
        inner = _PY_TYPES.get(nested) if nested else None
        if inner is None:
            return True
        for p in possible:
            if not isinstance(p, list):
                return True
            first = next((q for q in p if q != OPTIONAL), None)
            if all(type(v) is inner or (first is not None and type(v) is type(first))
                   for v in value):
                return True
        return False
    answer_type = next((type(p) for p in possible if p != OPTIONAL), None)
    return answer_type is not None and type(value) is answer_type


def _is_variable(value: Any, kind: str, possible: list[Any]) -> bool:
    answer_type = next((type(p) for p in possible if p != OPTIONAL), None)
    return answer_type is not None and answer_type is not _PY_TYPES.get(kind) \
        and _PY_TYPES.get(kind) is not None


def _value_ok(value: Any, possible: list[Any], kind: str, nested: str | None,
              mode: ArgMode) -> bool:
    if mode == "ignore":
        return True
    if mode == "exact" or _is_variable(value, kind, possible):
        return value in possible
    expected = _PY_TYPES.get(kind)
    if expected is dict:
        return isinstance(value, dict) and any(_dict_ok(value, p) for p in possible
                                               if isinstance(p, dict))
    if expected is list and not value and OPTIONAL in possible and mode == "loose":
        # BFCL accepts an empty list for a list argument that may be left out (its list
        # checkers turn the "" marker into an empty acceptable list); we follow it.
        return True
    if expected is list and _PY_TYPES.get(nested or "") is dict:
        return any(isinstance(p, list) and len(p) == len(value)
                   and all(isinstance(v, dict) and _dict_ok(v, q)
                           for v, q in zip(value, p, strict=True))
                   for p in possible)
    if expected is str or (expected is None and isinstance(value, str)):
        if mode == "fuzzy":
            return any(isinstance(p, str) and p != OPTIONAL and _fuzzy(value, p)
                       for p in possible)
        return standardize(value) in [standardize(p) for p in possible if isinstance(p, str)]
    if expected is list:
        norm = [standardize(v) if isinstance(v, str) else v for v in value]
        return any(norm == [standardize(q) if isinstance(q, str) else q for q in p]
                   for p in possible if isinstance(p, list))
    return value in possible


def _dict_ok(value: dict[str, Any], possible: dict[str, list[Any]]) -> bool:
    for key, item in value.items():
        if key not in possible:
            return False
        options = [standardize(p) if isinstance(p, str) else p for p in possible[key]]
        if (standardize(item) if isinstance(item, str) else item) not in options:
            return False
    return all(key in value or OPTIONAL in opts for key, opts in possible.items())


def _check_call(name: str, arguments: dict[str, Any], expected: ExpectedCall,
                schema: dict[str, Any], modes: dict[str, ArgMode]) -> tuple[str, int]:
    """Error text ('' if the call passes) and how many expected arguments it got right."""
    if name != expected.name:
        return f"called {name!r}, expected {expected.name!r}", 0
    props = schema.get("properties", {})
    matched = 0
    error = ""
    for param in schema.get("required", []):
        if param not in arguments and not error:
            error = f"missing required argument {param!r}"
    for param, value in arguments.items():
        if param not in props or param not in expected.arguments:
            error = error or f"invented argument {param!r}"
            continue
        possible = expected.arguments[param]
        kind, nested = _type_of(props[param])
        if kind in ("number", "float") and type(value) is int:
            value = float(value)
        mode = modes.get(f"{expected.name}.{param}", modes.get(param, "loose"))
        if not _type_ok(value, kind, nested, possible):
            error = error or f"argument {param!r}: expected {kind}, got {type(value).__name__}"
        elif not _value_ok(value, possible, kind, nested, mode):
            error = error or f"argument {param!r}: {value!r} is not one of {possible!r}"
        else:
            matched += 1
    for param, possible in expected.arguments.items():
        if param not in arguments:
            if OPTIONAL in possible:
                matched += 1
            else:
                error = error or f"missing argument {param!r}"
    return error, matched


def score_calls(output: list[tuple[str, dict[str, Any]]] | None, expected: list[ExpectedCall],
                schemas: dict[str, dict[str, Any]], *, modes: dict[str, ArgMode] | None = None,
                ordered: bool = False) -> CallScore:
    """Score a model's calls (None: the reply was not a well-formed call) against the gold.

    ``schemas`` maps tool names to their parameters' JSON schema; ``modes`` maps
    ``tool.argument`` (or ``argument``) to an :data:`ArgMode`."""
    modes = modes or {}
    expected_names = [e.name for e in expected]
    total_args = sum(len(e.arguments) for e in expected) or 1
    if output is None:
        return CallScore(False, "format", "the reply is not a well-formed tool call")
    names = [n for n, _ in output]
    f1 = tool_f1(names, expected_names)
    arg_hits = _partial_args(output, expected, schemas, modes)
    partial = dict(tool_f1=f1, arg_match=arg_hits / total_args if expected else float(not output))
    if Counter(names) != Counter(expected_names):
        if len(names) != len(expected_names) and Counter(names) & Counter(expected_names) == \
                Counter(expected_names if len(names) > len(expected_names) else names):
            return CallScore(False, "count", f"{len(names)} calls, expected "
                             f"{len(expected_names)}", **partial)
        return CallScore(False, "tool", f"tools {names}, expected {expected_names}", **partial)
    used: set[int] = set()
    for index, gold in enumerate(expected):
        candidates = [index] if ordered else range(len(output))
        errors = []
        for i in candidates:
            if i in used:
                continue
            error, _ = _check_call(*output[i], gold, schemas.get(gold.name, {}), modes)
            if not error:
                used.add(i)
                break
            errors.append(error)
        else:
            return CallScore(False, "arguments", errors[0] if errors else "no matching call",
                             details=errors, **partial)
    return CallScore(True, None, "", **partial)


def _partial_args(output: list[tuple[str, dict[str, Any]]], expected: list[ExpectedCall],
                  schemas: dict[str, dict[str, Any]], modes: dict[str, ArgMode]) -> int:
    """Expected arguments matched, pairing each gold call with its best same-named call."""
    hits = 0
    used: set[int] = set()
    for gold in expected:
        best, best_i = -1, None
        for i, (name, arguments) in enumerate(output):
            if i in used or name != gold.name:
                continue
            _, matched = _check_call(name, arguments, gold, schemas.get(gold.name, {}), modes)
            if matched > best:
                best, best_i = matched, i
        if best_i is not None:
            used.add(best_i)
            hits += best
    return hits
