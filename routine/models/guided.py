"""Routine-guided decoding: the JSON schema of the one reply the routine allows at a turn.

At each turn the executor knows (a :class:`~routine.models.base.TurnGuide`) which tools
the current step allows and the argument values the routine fixes. :func:`reply_schema`
turns that into a JSON schema for the reply ``{"name": ..., "arguments": {...}}``:

* ``name`` is one of the allowed tools (a tool step's tool, an undecided branch's
  options, ``finish`` at the answer step); without a guide, any offered tool;
* arguments the routine fixes are constants; the others keep the tool's own
  parameter schema (types, enums, formats, required); no other keys;
* ``finish`` needs a non-empty ``answer``.

An endpoint that enforces structured output (llama.cpp, vLLM) then cannot emit anything
else: no bracket too many, no other tool, no fixed value typed wrongly (OpenAI's API,
without ``strict``, takes the schema as guidance). :func:`inputs_schema` is the
schema of the inputs-first turn (each declared input, or null when not stated).
``$ref``s of pydantic models are inlined, so grammar compilers (llama.cpp's, vLLM's)
get one self-contained schema.
"""

from __future__ import annotations

import copy
from typing import Any

from .base import TurnGuide

__all__ = ["reply_schema", "inputs_schema", "allowed_names", "grammar_safe", "FINISH"]

FINISH = "finish"
_DROP = {"title", "examples", "$defs", "definitions"}  # no effect on validity


def _inline(schema: Any, defs: dict[str, Any], chain: tuple[str, ...] = ()) -> Any:
    """``schema`` with ``#/$defs/X`` (and the older ``#/definitions/X``) references
    replaced by their definitions. A model that refers to itself (a region of regions) is
    inlined once along each path and is a plain object below that: inlining it to a fixed
    depth grew three self-references into a 2.9 MB schema sent every turn."""
    if isinstance(schema, list):
        return [_inline(item, defs, chain) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        name = ref.rsplit("/", 1)[-1]
        if name in chain or len(chain) > 8:
            return {"type": "object"}
        return _inline(defs[name], defs, (*chain, name))
    out = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _inline(sub, defs, chain) for name, sub in value.items()}
        else:  # (property names are data: a parameter may be called "title")
            out[key] = _inline(value, defs, chain)
    return out


def _parameters(spec: dict[str, Any]) -> dict[str, Any]:
    parameters = spec.get("function", spec).get("parameters") or {"type": "object"}
    defs = {**(parameters.get("definitions") or {}), **(parameters.get("$defs") or {})}
    return _inline(copy.deepcopy(parameters), defs)


def grammar_safe(schema: Any) -> Any:
    """``schema`` without what llama.cpp's grammar converter cannot take: regular
    expression ``pattern``s (an escape such as ``\\d`` left the server's sampler without a
    grammar, and it crashed on the next token). The tool still checks its own patterns
    when the call runs, and the model is told what was wrong."""
    if isinstance(schema, list):
        return [grammar_safe(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "patternProperties" or key == "pattern" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: grammar_safe(sub) for name, sub in value.items()}
        else:
            out[key] = grammar_safe(value)
    return out


def allowed_names(guide: TurnGuide | None, tools: list[dict[str, Any]]) -> list[str]:
    """The tool names a reply may use now: the guide's, else every offered tool."""
    offered = [t.get("function", t)["name"] for t in tools]
    if guide is not None and guide.tools:
        return [name for name in guide.tools if name in offered or name == FINISH]
    return offered


def _call_schema(name: str, parameters: dict[str, Any], fixed: dict[str, Any],
                 named: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One call of ``name``: its parameters (of the optional ones only those in ``named``,
    when given), with ``fixed`` values as constants."""
    properties = dict(parameters.get("properties", {}))
    required = list(parameters.get("required", []))
    if named is not None:
        properties = {k: v for k, v in properties.items() if k in named or k in required}
    if name == FINISH:
        properties["answer"] = {"type": "string", "minLength": 1}
    for argument, value in fixed.items():
        properties[argument] = {"const": value}
        if argument not in required:
            required.append(argument)
    return {
        "type": "object",
        "properties": {"name": {"const": name},
                       "arguments": {"type": "object", "properties": properties,
                                     "required": required, "additionalProperties": False}},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def reply_schema(guide: TurnGuide | None, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of a reply that keeps to the routine at this turn."""
    specs = {t.get("function", t)["name"]: t for t in tools}
    options = []
    for name in allowed_names(guide, tools):
        if name in specs:
            parameters = _parameters(specs[name])
        else:  # finish without an offered spec
            parameters = {"type": "object", "properties": {"answer": {"type": "string"}},
                          "required": ["answer"]}
        fixed = guide.fixed.get(name, {}) if guide is not None else {}
        variants = guide.variants.get(name) if guide is not None else None
        named = guide.named.get(name) if guide is not None else None
        for index, values in enumerate(variants or (fixed,)):  # one object per option
            own = named[index] if named and variants and index < len(named) else (
                tuple({a for each in named for a in each}) if named else None)
            options.append(_call_schema(name, parameters, {**fixed, **values}, own))
    if not options:
        return {"type": "object"}
    return options[0] if len(options) == 1 else {"anyOf": options}


def inputs_schema(inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The inputs-first turn's reply: every declared input, its value or null (not stated).
    ``inputs`` maps a name to its ``{type, description, enum}``."""
    properties = {}
    for name, spec in inputs.items():
        value: dict[str, Any] = {"type": spec.get("type", "string")}
        if spec.get("enum"):
            value = {"enum": list(spec["enum"])}
        properties[name] = {"anyOf": [value, {"type": "null"}]}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}
