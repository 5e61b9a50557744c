"""Ninth hostile round, rich typed tools under guided decoding: schemas llama.cpp can
compile without crashing, recursive models that do not explode, old-style refs, each
branch option's own arguments, and pydantic's `= Field(...)` idiom in tool signatures."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Optional

import pytest
from pydantic import BaseModel, Field

from routine import tool
from routine.models.base import TurnGuide
from routine.models.client import _constrained
from routine.models.guided import reply_schema
from routine.tools.core import ToolArgumentsError


class Passport(BaseModel):
    country: str
    number: str = Field(pattern=r"^\d{4}-\w+$")


@tool
def register(holder: str, passport: Passport) -> str:
    """Register a passport."""
    return "ok"


def test_the_llama_request_carries_no_regular_expressions():
    guide = TurnGuide("s", "1", ("register",), constrain=True)
    request = _constrained({"messages": []}, guide, [register.openai_spec()], "llama")
    sent = json.dumps(request["response_format"]["schema"])
    # before: "^\\d{4}-\\w+$" reached llama.cpp, whose grammar left the sampler empty:
    # the embedded server crashed (SIGSEGV) on the first token
    assert "pattern" not in sent and '"number": {"type": "string"}' in sent
    other = _constrained({"messages": []}, guide, [register.openai_spec()], "json_schema")
    assert "pattern" in json.dumps(other["response_format"])  # vLLM/OpenAI keep it


class Region(BaseModel):
    name: str
    children: list[Region] = []
    excluded: Optional[Region] = None  # noqa: UP045 - as users write it
    parent: Optional[Region] = None  # noqa: UP045


@tool
def insure(coverage: Region) -> str:
    """Insure a region."""
    return "ok"


def test_a_recursive_model_is_inlined_once_per_path_not_to_a_fixed_depth():
    schema = reply_schema(TurnGuide("s", "1", ("insure",), constrain=True),
                          [insure.openai_spec()])
    assert len(json.dumps(schema)) < 5_000  # before: 2.9 MB, sent on every turn
    region = schema["properties"]["arguments"]["properties"]["coverage"]
    child = region["properties"]["children"]["items"]
    assert child == {"type": "object"}  # the recursion stops at the first repeat


def test_definitions_refs_of_older_generators_are_inlined():
    spec = {"type": "function", "function": {"name": "book", "parameters": {
        "type": "object", "properties": {"traveler": {"$ref": "#/definitions/Traveler"}},
        "required": ["traveler"], "definitions": {"Traveler": {
            "type": "object", "properties": {"name": {"type": "string"}},
            "required": ["name"]}}}}}
    schema = reply_schema(TurnGuide("s", "1", ("book",), constrain=True), [spec])
    traveler = schema["properties"]["arguments"]["properties"]["traveler"]
    assert traveler["properties"] == {"name": {"type": "string"}}  # before: a dangling $ref


def test_each_branch_option_keeps_only_the_arguments_it_names():
    from routine import Agent, ToolRegistry, load_routine_text
    from routine.models.testing import ScriptedModel, call

    @tool
    def find_customer(email: str) -> dict:
        """Find a customer."""
        return {"customer_id": 42}

    @tool
    def send_note(customer_id: int, text: str, channel: str = "email",
                  urgent: bool = False) -> str:
        """Send a note."""
        return "sent"

    routine = load_routine_text("""
name: notify
description: Notify a customer.
inputs: {email: {type: string, description: the email}}
steps:
  - {id: find, name: Find, description: d, tool: find_customer, args: {email: "${inputs.email}"}}
  - id: decide
    name: Decide
    description: urgent or not
    branch:
      - condition: the customer is angry
        steps:
          - {id: urgent, name: Urgent, description: d, tool: send_note,
             args: {customer_id: "${steps.find.output.customer_id}", text: On it, channel: sms,
                    urgent: true}}
      - condition: otherwise
        steps:
          - {id: calm, name: Calm, description: d, tool: send_note,
             args: {customer_id: "${steps.find.output.customer_id}", text: Thanks,
                    channel: email}}
  - {id: answer, name: Answer, description: d, finish: true}
""", "notify.yaml")
    model = ScriptedModel([call("find_customer", email="a@b.c"),
                           call("send_note", customer_id=42, text="Thanks", channel="email"),
                           call("finish", answer="ok")])
    Agent(routine, ToolRegistry(find_customer, send_note), model, decoding="guided").run(
        "a@b.c says thanks", {"email": "a@b.c"})
    request = model.requests[1]
    options = reply_schema(request.guide, request.tools)["anyOf"]
    calm = next(o for o in options if o["properties"]["arguments"]["properties"]["text"]
                == {"const": "Thanks"})
    # before: the union of both options' names let the calm option set urgent too
    assert "urgent" not in calm["properties"]["arguments"]["properties"]


def test_a_field_as_a_parameter_default_keeps_its_constraints():
    @tool
    def refund(customer_id: int, amount: Decimal = Field(gt=0, le=10_000),  # noqa: B008
               age: int = Field(30, ge=0, le=120)) -> str:  # noqa: B008
        """Refund money."""
        return f"{amount} {age}"

    # before: no constraint, amount optional, and the tool got the FieldInfo itself
    assert refund.parameters["required"] == ["customer_id", "amount"]
    with pytest.raises(ToolArgumentsError, match="greater than 0"):
        refund.validate_arguments({"customer_id": 1, "amount": -5})
    assert refund.function(**refund.validate_arguments({"customer_id": 1, "amount": 5})) \
        == "5 30"
