"""The routine format: a YAML business process as a pydantic model.

A routine names its inputs and constants, then lists steps. A step is one of:

* ``tool`` + ``args`` — call one tool (optionally ``confirm``: the user says yes first;
  ``on_error``: steps to run instead when the call fails; ``output``: a name for the
  result that later steps read as ``${vars.NAME}``, whichever step set it);
* ``branch`` — options with a condition (and an optional ``when``), each with its own
  sub-steps and an optional ``next`` (a later step, or an earlier one with ``max_visits``);
* ``ask`` + ``fills`` — ask the user and fill named inputs from the reply;
* ``compute`` — derive values from inputs, constants and earlier outputs (safe
  expressions), kept as ``${vars.NAME}``;
* ``for_each`` + ``as`` + ``steps`` — run sub-steps for every item of a list
  (``${ITEM.field}`` inside; an optional ``until``);
* ``handoff`` — pass the conversation to another routine, with input values;
* ``finish: true`` — answer the user (optionally an exact ``message``).

Argument sources (literals, ``${inputs.x}``, ``${steps.id.output.f}``,
``${vars.name}``, ``${constants.name}``, a loop's ``${item.f}``) are parsed by
:mod:`.references`; files are read by :mod:`.loader`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from ..tools.mcp import McpServer

__all__ = [
    "Routine",
    "Step",
    "BranchOption",
    "InputSpec",
    "ComputeSpec",
    "McpServer",
    "ToolsetSource",
    "routine_json_schema",
    "SCHEMA_COMMENT",
    "ID_PATTERN",
    "MAX_STEPS",
]

MAX_STEPS = 200  # steps in a routine, branches included
MAX_ITEMS = 100  # items a for_each runs over
MAX_VISITS = 20  # the highest visit limit a step may set
STEP_KINDS = ("tool", "branch", "finish", "ask", "compute", "for_each", "handoff")

SCHEMA_COMMENT = "# yaml-language-server: $schema=../routine.schema.json"
ID_PATTERN = r"^[a-z][a-z0-9_]*$"
InputType = Literal["string", "integer", "number", "boolean", "array", "object"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class InputSpec(_Model):
    """A value the user's request must supply."""

    type: InputType = Field("string", description="JSON type of the value.")
    description: str = Field(description="What the value is; shown to the model.")
    required: bool = Field(True, strict=True,
                           description="Whether the request must supply it.")
    default: Any = Field(None, description="Value used when the request does not give one.")
    enum: list[Any] | None = Field(None, description="Allowed values, if restricted.")


class ComputeSpec(_Model):
    """A derived value: a safe expression and the JSON type it must produce."""

    expr: str = Field(description="Jinja expression over inputs, constants, vars, steps and "
                      "loop items, e.g. `steps.get_order.output.total - constants.fee`.")
    type: InputType | None = Field(None, description="The JSON type of the value (checked "
                                   "when computed; used by validate for references).")


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
    """One step of a routine: a tool call, a branch, a question, a computation, a loop, a
    hand-off, or the finishing answer."""

    id: str = Field(pattern=ID_PATTERN, description="Unique id, used in references.")
    name: str = Field(description="Short name of the step.")
    description: str = Field(description="Instruction for the model: what to do and why.")
    tool: str | None = Field(None, description="The tool this step calls.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Argument sources: literals, ${inputs.x} or ${steps.<id>.output[.field]}.",
    )
    output: str | None = Field(
        None, pattern=ID_PATTERN, description="A name for the result: later steps read it "
        "as ${vars.NAME} (steps on different paths may set the same name: the one that ran "
        "counts), and it is kept in variable memory under that name.")
    input_description: str | None = Field(None, description="What goes in, in words.")
    output_description: str | None = Field(None, description="What comes out, in words.")
    branch: list[BranchOption] | None = Field(
        None, description="Options of a branch step (the step then has no tool)."
    )
    finish: bool = Field(False, strict=True,
                         description="True for the step that answers the user.")
    answer: str | None = Field(
        None, description="For the finish step: a template of the facts the answer must state "
        "(Jinja over `inputs` and `steps`, e.g. `Order {{ steps.find.output.order_id }} is "
        "{{ steps.find.output.status }}`); rendered from the step outputs and added to the "
        "model's answer when it lacks them (RunSettings.answer_facts).")
    approval: Literal["required"] | None = Field(
        None, description="`required`: the call waits for a person's (or a policy's) decision "
        "before it runs; the decision and who made it are in the trace.")
    confirm: StrictBool | str | None = Field(
        None, description="For a tool step that changes something: before the call runs, "
        "the user sees what it will do (`true`: the step and its argument values; a text: "
        "that Jinja template) and must answer yes; anything else declines it. Recorded in "
        "the trace like an approval.")
    on_decline: str | None = Field(
        None, description="With `confirm`: the step to continue at when the user declines "
        "(default: the run ends saying nothing was changed).")
    on_error: str | list[Step] | None = Field(
        None, description="For a tool step: when the call fails (the tool raises), the steps "
        "to run instead (they rejoin after this step), or the id of a step to continue at.")
    ask: str | None = Field(
        None, description="A question for the user (Jinja template); the reply fills the "
        "inputs named in `fills`. Skipped when those inputs are known already.")
    fills: list[str] = Field(default_factory=list, description="For an `ask` step: the "
                             "inputs the user's reply supplies.")
    compute: dict[str, str | ComputeSpec] | None = Field(
        None, description="Values derived without a tool: name -> expression (or {expr, "
        "type}); later steps read them as ${vars.NAME}.")
    for_each: str | None = Field(
        None, description="A list to run `steps` for, item by item: a reference like "
        "${steps.get_order.output.items}.")
    as_: str = Field("item", alias="as", pattern=ID_PATTERN, description="For `for_each`: "
                     "the name of the current item (${item.field} in the sub-steps).")
    steps: list[Step] | None = Field(None, description="For `for_each`: the sub-steps run "
                                     "for every item.")
    until: str | None = Field(None, description="For `for_each`: an expression checked after "
                              "each item; true ends the loop early.")
    handoff: str | None = Field(
        None, description="The name of another routine to pass the conversation to; `args` "
        "gives its inputs (same-named inputs are carried over).")
    message: str | None = Field(
        None, description="For the finish step: the exact final message (a Jinja template); "
        "the run answers with it instead of asking the model.")
    max_visits: int | None = Field(
        None, ge=1, le=MAX_VISITS, strict=True, description="How many times a run may come "
        "to this step; needed for a `next` that jumps back to it (a bounded loop). Past it "
        "the run ends.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        given = {"tool": self.tool, "branch": self.branch, "finish": self.finish,
                 "ask": self.ask is not None, "compute": self.compute is not None,
                 "for_each": self.for_each is not None, "handoff": self.handoff}
        kinds = [k for k in STEP_KINDS if given[k]]
        if self.branch is not None and not self.branch:
            raise ValueError("'branch' needs at least one option")
        if len(kinds) != 1:
            got = " and ".join(kinds) if kinds else "none of them"
            raise ValueError("a step needs exactly one of 'tool', 'branch', 'finish: true', "
                             f"'ask', 'compute', 'for_each' or 'handoff' (got {got})")
        kind = kinds[0]
        only = {"args": ("tool", "handoff"), "approval": ("tool",), "confirm": ("tool",),
                "on_decline": ("tool",), "on_error": ("tool",), "answer": ("finish",),
                "message": ("finish",), "fills": ("ask",), "steps": ("for_each",),
                "until": ("for_each",)}
        for name, kinds_ in only.items():
            if getattr(self, name) not in (None, False, [], {}) and kind not in kinds_:
                where = " or ".join(f"'{k}'" for k in kinds_)
                raise ValueError(f"'{name}' only applies to a step with {where}")
        if self.as_ != "item" and kind != "for_each":
            raise ValueError("'as' only applies to a 'for_each' step")
        if self.on_decline and not self.confirm:
            raise ValueError("'on_decline' needs 'confirm'")
        if self.branch is not None and not self.branch:
            raise ValueError("'branch' needs at least one option")
        if kind == "ask" and not self.fills:
            raise ValueError("an 'ask' step needs 'fills': the inputs the reply supplies")
        if kind == "for_each" and not self.steps:
            raise ValueError("a 'for_each' step needs 'steps' to run for each item")
        if kind == "compute" and not self.compute:
            raise ValueError("'compute' needs at least one name: expression")
        if isinstance(self.on_error, list) and not self.on_error:
            raise ValueError("'on_error' needs at least one step (or a step id)")
        return self

    @property
    def kind(self) -> str:
        if self.tool:
            return "node"
        for kind in STEP_KINDS[1:]:
            value = getattr(self, kind)
            if value not in (None, False):
                return kind
        return "finish"

    def children(self) -> list[tuple[tuple[Any, ...], list[Step]]]:
        """The step lists nested in this step, each with its path below the step:
        branch options, a loop's body, the steps run on error."""
        nested: list[tuple[tuple[Any, ...], list[Step]]] = [
            (("branch", n, "steps"), option.steps) for n, option in enumerate(self.branch or [])]
        if self.steps:
            nested.append((("steps",), self.steps))
        if isinstance(self.on_error, list):
            nested.append((("on_error",), self.on_error))
        return nested


BranchOption.model_rebuild()


class Routine(_Model):
    """A business process written down for an agent to follow."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique routine name.")
    description: str = Field(description="What the routine does; used to pick it for a request.")
    version: str | None = Field(None, description="Free-form version of the routine.")
    toolsets: list[str | ToolsetSource] = Field(
        default_factory=list,
        description="Where the tools come from: names of the project's toolsets (routine.toml "
        "[toolsets]: Python modules such as `routine_tools.hr`, `package.module:attribute`, "
        "or MCP servers); a routine file cannot launch a server itself (`validate` refuses "
        "`{mcp: ...}` here).",
    )
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="Values the request must supply, by name."
    )
    constants: dict[str, Any] = Field(
        default_factory=dict, description="Fixed values of the process (limits, tables), by "
        "name: ${constants.NAME} in arguments, `constants.NAME` in expressions.")
    steps: list[Step] = Field(min_length=1, description="The steps, in order.")

    @field_validator("steps")
    @classmethod
    def _bounded(cls, steps: list[Step]) -> list[Step]:
        count, todo = 0, list(steps)
        while todo:
            step = todo.pop()
            count += 1
            todo += [s for _, nested in step.children() for s in nested]
        if count > MAX_STEPS:
            raise ValueError(f"the routine has {count} steps (branches included); at most "
                             f"{MAX_STEPS}: split a longer process into routines")
        return steps

    def digest(self) -> str:
        """A fingerprint of the routine's content (its steps, inputs, texts): two routines
        with the same digest run alike."""
        text = json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True,
                          ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def walk(self) -> list[tuple[Step, str]]:
        """Every step with its paper-style label (``2``, ``3-1_2`` ...), in document order."""
        out: list[tuple[Step, str]] = []

        def visit(steps: list[Step], prefix: str) -> None:
            for index, step in enumerate(steps, 1):
                label = f"{prefix}{index}"
                out.append((step, label))
                for n, option in enumerate(step.branch or [], 1):
                    visit(option.steps, f"{label}-{n}_")
                if step.steps:
                    visit(step.steps, f"{label}-each_")
                if isinstance(step.on_error, list):
                    visit(step.on_error, f"{label}-error_")

        visit(self.steps, "")
        return out

    def tool_names(self) -> list[str]:
        """Tools the routine's steps name (a run may call only these, plus ``finish``)."""
        names: list[str] = []
        for step, _ in self.walk():
            if step.tool and step.tool not in names:
                names.append(step.tool)
        return names


def routine_json_schema() -> dict[str, Any]:
    """The JSON Schema of the routine format (``routine schema``)."""
    schema = Routine.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Routine"
    return schema


def a_type(name: str) -> str:
    """A JSON type name with its article, for messages: ``an integer``, ``a string``."""
    return ("an " if name[:1] in ("a", "e", "i", "o", "u") else "a ") + name
