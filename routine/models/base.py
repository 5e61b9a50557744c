"""What the run loop needs from a model: the :class:`Model` protocol and its records.

Every client (:class:`~routine.models.client.OpenAIModel`) and every test double
(:mod:`routine.models.testing`, the evaluation's gold and oracle players)
implements :class:`Model`. Each request carries the conversation, the offered
tools, the sampling settings and a :class:`TurnGuide`: what the routine allows
at this turn (the tools that move the run on, the argument values the routine
fixes), so a model that can use it (a test double, the oracle, a constrained
decoder) does not have to read it back out of the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .messages import Message, Usage

__all__ = ["Model", "ModelReply", "TurnGuide", "model_requests_allowed",
           "set_model_requests_allowed"]

_ALLOW_REQUESTS = True


def set_model_requests_allowed(allowed: bool) -> None:
    """Allow or forbid requests to real models (unit tests forbid them)."""
    global _ALLOW_REQUESTS
    _ALLOW_REQUESTS = allowed


def model_requests_allowed() -> bool:
    return _ALLOW_REQUESTS


@dataclass
class ModelReply:
    """One assistant reply: text and/or structured tool calls (OpenAI wire shape)."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    decoding: str = "free"  # how the reply was constrained: free, json_schema, llama, tool_choice
    reasoning: str = ""  # a reasoning model's thinking, kept out of ``content``
    note: str = ""  # how the request was adapted to the endpoint (a refused constraint...)


@dataclass(frozen=True)
class TurnGuide:
    """What the routine allows at one turn.

    Attributes:
        step_id: the current step (None: no routine, or the routine is done).
        label: its paper-style number (``3-1_2``).
        tools: the tools that move the run on from here (one for a tool step, the
            options' first tools at an undecided branch, ``finish`` for the answer step).
        arguments: for each of those tools, the argument values the routine fixes or
            the run already knows (literals, inputs, earlier outputs).
        unknown: arguments of the current step whose value is not known yet (the model
            must supply them, e.g. from the request).
        branch_undecided: the current step is a branch the executor could not decide.
        fixed: for each allowed tool, the argument values the routine fixes (literals,
            resolved references; not free text): what the step contract enforces and a
            guided reply must carry as constants.
        constrain: the run asks for guided decoding: a model that can constrain its
            output should keep to :func:`routine.models.guided.reply_schema`.
        schema: the reply's JSON schema for a turn that is not a step (the inputs-first
            turn); None: the step's reply schema.
        sources: for each unknown argument that is an input of the routine, that input's
            name (``{"name": "employee_name"}``): where the model must find the value.
        variants: for a tool that starts several options of an undecided branch, what
            each option fixes (``note(text="approved")`` or ``note(text="rejected")``):
            a guided reply carries one option's values.
        named: for each allowed tool, the arguments its step's ``args`` name (one tuple
            per option it may start, as ``variants``): a guided reply carries those (and
            the tool's required ones) only — an optional
            parameter the routine does not pass keeps the tool's default rather than a
            value the model makes up (a leave "reason" the user never gave).
    """

    step_id: str | None = None
    label: str = ""
    tools: tuple[str, ...] = ()
    arguments: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    branch_undecided: bool = False
    fixed: dict[str, dict[str, Any]] = field(default_factory=dict)
    constrain: bool = False
    schema: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    variants: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    named: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    """What the executor needs from a model."""

    name: str

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply: ...
