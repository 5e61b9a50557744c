"""The JSON schema a drafted routine is generated under (guided decoding).

The full format's schema (``routines/routine.schema.json``) is too general for a grammar
compiler: llama.cpp's converter refuses its untyped ``default`` fields, and it is
recursive (steps inside branches inside steps). :func:`draft_schema` derives a reduced
schema from the tools a routine may use:

* the routine's ``name`` is fixed; ``toolsets`` is left out (the caller sets it);
* each kind of step starts with its own key (``tool``, ``finish``, or ``id`` for a branch),
  so one alternative is left after the first key: a grammar whose alternatives share a
  long prefix (the id, name and description of every tool's step) samples far slower;
* the routine ends with its answer: a top-level ``finish`` object (id, name, description)
  that :func:`~routine.drafting.reply.routine_yaml` appends as the last step, so every path
  ends in a finish step (a branch option may also end in its own);
* an argument is a well-formed reference (``${inputs.X}``, ``${steps.X.output.F}``), a
  number, a boolean or a text that does not start with ``$``;
* a step is a tool step (one alternative per tool: the tool's name as a constant, its
  ``args`` limited to the tool's parameters, the required ones required), a branch
  (options with a ``condition``, a ``when`` expression or null, and steps), or
  ``finish: true``; branches nest one level (their options hold tool and finish steps);
* inputs are typed ``string``/``integer``/``number``/``boolean`` with an optional enum.

Everything the schema leaves open (references, expressions, which steps exist) is checked
by :func:`routine.spec.check_routine` and repaired in the next round.
"""

from __future__ import annotations

from typing import Any

from ..spec.format import ID_PATTERN
from ..tools.core import ToolRegistry

__all__ = ["draft_schema", "MAX_TOP_STEPS", "MAX_BRANCH_STEPS", "REFERENCE", "LITERAL"]

MAX_TOP_STEPS = 12     # steps of the routine itself
MAX_BRANCH_STEPS = 6   # steps of one branch option
_TEXT = {"type": "string", "minLength": 1}
_ID = {"type": "string", "pattern": ID_PATTERN}
# a reference is well formed (which inputs, steps and fields exist is validation's job);
# a literal text does not start with "$". Character classes only: llama.cpp's server
# crashed (SIGSEGV) on a schema whose patterns escape characters (\$, \{).
REFERENCE = (r"^[$][{](inputs[.][a-z][a-z0-9_]*|steps[.][a-z][a-z0-9_]*[.]output"
             r"([.][a-z0-9_]+)*)[}]$")
LITERAL = r"^[A-Za-z0-9 ,.:;_@/()-][A-Za-z0-9 ,.:;_@/()'-]*$"
_SCALAR = {"anyOf": [{"type": "string", "pattern": REFERENCE},
                     {"type": "string", "pattern": LITERAL},
                     {"type": "number"}, {"type": "boolean"}]}


def _obj(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": [k for k in properties if k not in optional],
            "additionalProperties": False}


def _tool_step(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    props = parameters.get("properties", {})
    required = [p for p in parameters.get("required", []) if p in props]
    args = {"type": "object", "properties": {p: _SCALAR for p in props},
            "required": required, "additionalProperties": False}
    return _obj({"tool": {"const": name}, "id": _ID, "name": _TEXT, "description": _TEXT,
                 "args": args})


def _finish_step() -> dict[str, Any]:
    return _obj({"finish": {"const": True}, "id": _ID, "name": _TEXT, "description": _TEXT})


def draft_schema(registry: ToolRegistry, name: str | None = None) -> dict[str, Any]:
    """The reduced JSON schema of a routine over ``registry``'s tools (``name`` fixed)."""
    tools = [_tool_step(t.name, t.parameters) for t in registry]
    inner = {"anyOf": [*tools, _finish_step()]}
    option = _obj({"condition": _TEXT,
                   "when": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "null"}]},
                   "steps": {"type": "array", "items": inner, "minItems": 1,
                             "maxItems": MAX_BRANCH_STEPS}})
    branch = _obj({"id": _ID, "name": _TEXT, "description": _TEXT,
                   "branch": {"type": "array", "items": option, "minItems": 2, "maxItems": 4}})
    step = {"anyOf": [*tools, branch]}
    value = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
    an_input = _obj({"type": {"enum": ["string", "integer", "number", "boolean"]},
                     "description": _TEXT, "required": {"type": "boolean"},
                     "default": value, "enum": {"type": "array", "items": value}},
                    optional=("required", "default", "enum"))
    return _obj({"name": {"const": name} if name else _ID, "description": _TEXT,
                 "inputs": {"type": "object", "additionalProperties": an_input},
                 "steps": {"type": "array", "items": step, "minItems": 1,
                           "maxItems": MAX_TOP_STEPS},
                 "finish": _obj({"id": _ID, "name": _TEXT, "description": _TEXT})})
