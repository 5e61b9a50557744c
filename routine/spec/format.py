"""The routine format: a YAML business process as a pydantic model.

A routine names its inputs, then lists steps. A step either calls one tool
(``tool`` + ``args``), branches (``branch``: options with a condition, each with
its own sub-steps), or finishes (``finish: true``: the model answers the user).

Arguments take one of three sources:

* a literal — any YAML value (``leave_type: annual``, ``days: 3``);
* an input — ``${inputs.employee_name}``;
* an earlier step's output — ``${steps.find_employee.output}`` (the whole
  result) or ``${steps.find_employee.output.id}`` (a field; ``.0`` indexes lists).

A reference that is the whole string keeps its type; references inside a longer
string are interpolated as text (``"Leave for ${inputs.employee_name}"``).

``load_routine`` reads YAML safely (no object construction) and keeps the line
and column of every node so that every problem can be reported where it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import Problem, SpecError
from ..tools.mcp import McpServer

__all__ = [
    "Routine",
    "Step",
    "BranchOption",
    "InputSpec",
    "McpServer",
    "Reference",
    "SourceMap",
    "LoadedRoutine",
    "parse_references",
    "load_routine",
    "load_routine_text",
    "routine_json_schema",
    "SCHEMA_COMMENT",
]

SCHEMA_COMMENT = "# yaml-language-server: $schema=../routine.schema.json"
ID_PATTERN = r"^[a-z][a-z0-9_]*$"
InputType = Literal["string", "integer", "number", "boolean", "array", "object"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class InputSpec(_Model):
    """A value the user's request must supply."""

    type: InputType = Field("string", description="JSON type of the value.")
    description: str = Field(description="What the value is; shown to the model.")
    required: bool = Field(True, description="Whether the request must supply it.")
    default: Any = Field(None, description="Value used when the request does not give one.")
    enum: list[Any] | None = Field(None, description="Allowed values, if restricted.")


class ToolsetSource(_Model):
    mcp: McpServer


class BranchOption(_Model):
    """One way out of a branch step."""

    condition: str = Field(description="When this option applies, in words (shown to the model).")
    when: str | None = Field(
        None,
        description="Optional expression over `inputs` and `steps` (Jinja syntax, e.g. "
        "`steps.check.output.remaining >= inputs.days`) that lets the executor pick the option.",
    )
    steps: list[Step] = Field(default_factory=list, description="Sub-steps of this option.")
    next: str | None = Field(
        None, description="Id of a LATER step to continue at after this option (default: "
        "the step after the branch)."
    )


class Step(_Model):
    """One step of a routine: a tool call, a branch, or the finishing answer."""

    id: str = Field(pattern=ID_PATTERN, description="Unique id, used in references.")
    name: str = Field(description="Short name of the step.")
    description: str = Field(description="Instruction for the model: what to do and why.")
    tool: str | None = Field(None, description="The tool this step calls.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Argument sources: literals, ${inputs.x} or ${steps.<id>.output[.field]}.",
    )
    output: str | None = Field(
        None, description="Name under which the result is kept in variable memory."
    )
    input_description: str | None = Field(None, description="What goes in, in words.")
    output_description: str | None = Field(None, description="What comes out, in words.")
    branch: list[BranchOption] | None = Field(
        None, description="Options of a branch step (the step then has no tool)."
    )
    finish: bool = Field(False, description="True for the step that answers the user.")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k, v in (("tool", self.tool), ("branch", self.branch),
                                ("finish", self.finish)) if v]
        if len(kinds) != 1:
            got = " and ".join(kinds) if kinds else "none of them"
            raise ValueError(f"a step needs exactly one of 'tool', 'branch' or 'finish: true' "
                             f"(got {got})")
        if self.args and not self.tool:
            raise ValueError("'args' only applies to a step with a 'tool'")
        if self.branch is not None and not self.branch:
            raise ValueError("'branch' needs at least one option")
        return self

    @property
    def kind(self) -> str:
        return "node" if self.tool else "branch" if self.branch else "finish"


BranchOption.model_rebuild()


class Routine(_Model):
    """A business process written down for an agent to follow."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique routine name.")
    description: str = Field(description="What the routine does; used to pick it for a request.")
    version: str | None = Field(None, description="Free-form version of the routine.")
    toolsets: list[str | ToolsetSource] = Field(
        default_factory=list,
        description="Where the tools come from: Python modules (`routine_tools.hr`, or "
        "`package.module:attribute`) or `{mcp: {command, args}}` servers.",
    )
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="Values the request must supply, by name."
    )
    steps: list[Step] = Field(min_length=1, description="The steps, in order.")

    def walk(self) -> list[tuple[Step, str]]:
        """Every step with its paper-style label (``2``, ``3-1_2`` ...), in document order."""
        out: list[tuple[Step, str]] = []

        def visit(steps: list[Step], prefix: str) -> None:
            for index, step in enumerate(steps, 1):
                label = f"{prefix}{index}"
                out.append((step, label))
                for n, option in enumerate(step.branch or [], 1):
                    visit(option.steps, f"{label}-{n}_")

        visit(self.steps, "")
        return out

    def tool_names(self) -> list[str]:
        """Tools the routine's steps name (a run may call only these, plus ``finish``)."""
        names: list[str] = []
        for step, _ in self.walk():
            if step.tool and step.tool not in names:
                names.append(step.tool)
        return names


# ---------------------------------------------------------------- references
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


# ---------------------------------------------------------------- loading
@dataclass
class SourceMap:
    """Line/column (1-based) of every mapping key and value, by path."""

    file: str
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: tuple[Any, ...]) -> tuple[int, int]:
        """Position of ``path`` or of its nearest known ancestor."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (1, 1))


@dataclass
class LoadedRoutine:
    """A routine with where it came from."""

    routine: Routine
    source: SourceMap
    path: Path | None = None


def _walk_nodes(node: yaml.Node, path: tuple[Any, ...], smap: SourceMap,
                dupes: list[tuple[tuple[Any, ...], str]]) -> None:
    smap.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            if key in seen:
                dupes.append((child, key))
            seen.add(key)
            smap.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk_nodes(value_node, child, smap, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_nodes(item, (*path, index), smap, dupes)


def load_routine_text(text: str, file: str = "<string>") -> LoadedRoutine:
    """Parse and type-check a routine from YAML text; raise SpecError with every problem."""
    smap = SourceMap(file)
    dupes: list[tuple[tuple[Any, ...], str]] = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:  # positions first: construction rewrites merge keys in place
                _walk_nodes(node, (), smap, dupes)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(file, line, col, f"YAML syntax: {exc.problem or exc}",
                                 "valid YAML")]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(file, 1, 1, "the file is not a YAML mapping",
                                 "a mapping with name, description, inputs and steps")])
    problems = [Problem(file, *smap.locate(p), f"duplicate key {k!r}", "each key once")
                for p, k in dupes]
    try:
        routine = Routine.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from_error(err, smap, data)
                     for err in exc.errors(include_url=False)]
        raise SpecError(problems) from None
    if problems:
        raise SpecError(problems)
    return LoadedRoutine(routine, smap)


def load_routine(path: str | Path) -> LoadedRoutine:
    """Load a routine file (see :func:`load_routine_text`)."""
    path = Path(path)
    loaded = load_routine_text(path.read_text(encoding="utf-8"), str(path))
    loaded.path = path
    return loaded


_FRIENDLY_EXPECTED = {
    "extra_forbidden": "one of the documented keys (see routines/routine.schema.json)",
    "missing": "this field to be present",
}


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """pydantic's error location with its union-member tags (``str``, ``ToolsetSource``...)
    removed: keep the parts that exist in the data, and the last part (a missing key)."""
    kept: list[Any] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif index != len(loc) - 1:
            continue  # a tag pydantic adds, not a place in the file
        kept.append(part)
    return tuple(kept)


def _problem_from_error(err: Any, smap: SourceMap, data: Any) -> Any:
    loc = _data_path(tuple(err["loc"]), data)
    line, col = smap.locate(loc)
    where = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r} at {where}"
    elif err["type"] == "missing":
        message = f"missing required key {where}"
    else:
        message = f"{where}: {err['msg']}"
    expected = _FRIENDLY_EXPECTED.get(err["type"], "")
    return Problem(smap.file, line, col, message, expected)


def routine_json_schema() -> dict[str, Any]:
    """The JSON Schema of the routine format (``routine schema``)."""
    schema = Routine.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Routine"
    return schema
