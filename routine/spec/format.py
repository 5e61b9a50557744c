"""The routine format: a YAML business process as a pydantic model.

A routine names its inputs, then lists steps. A step either calls one tool
(``tool`` + ``args``), branches (``branch``: options with a condition, each with
its own sub-steps), or finishes (``finish: true``: the model answers the user).
Argument sources (literals, ``${inputs.x}``, ``${steps.id.output.f}``) are parsed
by :mod:`.references`; files are read by :mod:`.loader`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..tools.mcp import McpServer

__all__ = [
    "Routine",
    "Step",
    "BranchOption",
    "InputSpec",
    "McpServer",
    "ToolsetSource",
    "routine_json_schema",
    "SCHEMA_COMMENT",
    "ID_PATTERN",
    "MAX_STEPS",
]

MAX_STEPS = 200  # steps in a routine, branches included

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
    answer: str | None = Field(
        None, description="For the finish step: a template of the facts the answer must state "
        "(Jinja over `inputs` and `steps`, e.g. `Order {{ steps.find.output.order_id }} is "
        "{{ steps.find.output.status }}`); rendered from the step outputs and added to the "
        "model's answer when it lacks them (RunSettings.answer_facts).")
    approval: Literal["required"] | None = Field(
        None, description="`required`: the call waits for a person's (or a policy's) decision "
        "before it runs; the decision and who made it are in the trace.")

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
        if self.approval and not self.tool:
            raise ValueError("'approval' only applies to a step with a 'tool'")
        if self.answer is not None and not self.finish:
            raise ValueError("'answer' only applies to the finish step")
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

    @field_validator("steps")
    @classmethod
    def _bounded(cls, steps: list[Step]) -> list[Step]:
        count, todo = 0, list(steps)
        while todo:
            step = todo.pop()
            count += 1
            todo += [s for option in step.branch or [] for s in option.steps]
        if count > MAX_STEPS:
            raise ValueError(f"the routine has {count} steps (branches included); at most "
                             f"{MAX_STEPS}: split a longer process into routines")
        return steps

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


def routine_json_schema() -> dict[str, Any]:
    """The JSON Schema of the routine format (``routine schema``)."""
    schema = Routine.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Routine"
    return schema
