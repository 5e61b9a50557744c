"""Routine-guided decoding: the per-turn reply schema admits every gold call and nothing the
routine forbids (every step of every gold example, both domains)."""

from __future__ import annotations

import asyncio
import json

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from routine import tool
from routine.eval.conditions import CONDITIONS
from routine.eval.dataset import load_dataset, load_domain
from routine.eval.steps import step_samples
from routine.models.base import TurnGuide, set_model_requests_allowed
from routine.models.client import OpenAIModel
from routine.models.guided import inputs_schema, reply_schema
from routine.run.approval import policy

from .conftest import ROOT


def _samples(name: str):
    folder = ROOT / "eval" / "datasets" / name
    domain = load_domain(folder)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    examples = load_dataset(folder)
    return asyncio.run(step_samples(examples, routines, registry, CONDITIONS["nl+track"],
                                    shuffle_tools=False))


@pytest.fixture(scope="module", params=["retail", "hr"])
def samples(request):
    return request.param, _samples(request.param)


def _valid(schema, reply) -> bool:
    try:
        jsonschema.validate(reply, schema)
    except jsonschema.ValidationError:
        return False
    return True


def test_every_gold_call_fits_its_turns_schema_and_forbidden_calls_do_not(samples):
    domain, chosen = samples
    kinds = set()
    checked = fixed_checked = 0
    for sample in chosen:
        guide = sample.guide
        assert guide is not None, sample.id
        schema = reply_schema(guide, sample.tools)
        name = sample.expected["name"]
        gold = {k: v[0] for k, v in sample.expected["arguments"].items() if v != ["<any>"]}
        if name == "finish":
            gold = {"answer": "an answer"}
            kinds.add("finish")
        else:
            kinds.add("branch" if guide.branch_undecided else "tool")
        assert _valid(schema, {"name": name, "arguments": gold}), (sample.id, schema, gold)
        checked += 1
        offered = [t["function"]["name"] for t in sample.tools]
        for other in offered:  # a tool the routine does not call here
            if other not in guide.tools:
                assert not _valid(schema, {"name": other, "arguments": gold}), (sample.id, other)
        for argument, value in guide.fixed.get(name, {}).items():  # a fixed value changed
            changed = dict(gold, **{argument: f"{value}-changed" if isinstance(value, str)
                                    else ["not", "it"]})
            assert not _valid(schema, {"name": name, "arguments": changed}), sample.id
            fixed_checked += 1
        assert not _valid(schema, {"name": name, "arguments": {**gold, "extra": 1}})
        assert not _valid(schema, {"name": name})  # malformed: no arguments
    assert checked == len(chosen) > 50 and fixed_checked > 20
    assert kinds >= {"tool", "finish"}  # gold branches are decided by `when`: see below


def test_without_a_guide_any_offered_tool_and_finish_are_allowed():
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}},
             {"type": "function", "function": {"name": "finish", "parameters": {
                 "type": "object", "properties": {"answer": {"type": "string"}},
                 "required": ["answer"]}}}]
    schema = reply_schema(None, tools)
    assert _valid(schema, {"name": "lookup", "arguments": {"q": "x"}})
    assert _valid(schema, {"name": "finish", "arguments": {"answer": "done"}})
    assert not _valid(schema, {"name": "finish", "arguments": {"answer": ""}})
    assert not _valid(schema, {"name": "other", "arguments": {}})


class Address(BaseModel):
    street: str
    city: str


def test_pydantic_refs_are_inlined():
    @tool
    def move(order: int, address: Address) -> str:
        """Move an order."""
        return "ok"

    schema = reply_schema(TurnGuide("s", "1", ("move",), fixed={"move": {"order": 7}}),
                          [move.openai_spec()])
    assert "$ref" not in json.dumps(schema) and "$defs" not in json.dumps(schema)
    assert _valid(schema, {"name": "move", "arguments": {
        "order": 7, "address": {"street": "a", "city": "b"}}})
    assert not _valid(schema, {"name": "move", "arguments": {
        "order": 8, "address": {"street": "a", "city": "b"}}})


def test_inputs_schema_allows_not_stated():
    schema = inputs_schema({"email": {"type": "string"},
                            "status": {"type": "string", "enum": ["all", "pending"]}})
    assert _valid(schema, {"email": "a@b.c", "status": None})
    assert not _valid(schema, {"email": "a@b.c", "status": "weird"})
    assert not _valid(schema, {"email": "a@b.c"})  # every input answered, if only with null


@pytest.mark.parametrize("how, key", [("json_schema", "response_format"),
                                      ("llama", "response_format"),
                                      ("tool_choice", "tool_choice")])
def test_the_client_sends_the_constraint_and_falls_back_when_refused(how, key):
    set_model_requests_allowed(True)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if len(seen) == 1 and how == "json_schema":
            return httpx.Response(400, json={"error": {"message": "response_format unknown"}})
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0,
                                         "model": "m", "choices": [{"index": 0, "message": {
                                             "role": "assistant",
                                             "content": '{"name": "finish", "arguments": '
                                                        '{"answer": "ok"}}'},
                                             "finish_reason": "stop"}]})

    client = openai.AsyncOpenAI(base_url="http://t/v1", api_key="k", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(handler)))
    model = OpenAIModel("m", client=client, structured=how)
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("lookup", "finish")]
    guide = TurnGuide("answer", "3", ("finish",), constrain=True)
    reply = asyncio.run(model.complete([], tools, guide=guide))
    assert key in seen[0]
    if how == "json_schema":  # refused: asked again free, the same constraint not sent again
        assert reply.decoding == "free" and key not in seen[1] and "response_format unknown" \
            in reply.note and model.refusal
        again = asyncio.run(model.complete([], tools, guide=guide))
        assert again.decoding == "free" and key not in seen[2] and "sent free" in again.note
    else:
        assert reply.decoding == how
    if how == "tool_choice":
        assert [t["function"]["name"] for t in seen[0]["tools"]] == ["finish"]
    if how == "llama":
        assert seen[0]["response_format"]["type"] == "json_object"
        assert seen[0]["response_format"]["schema"]["properties"]["name"] == {"const": "finish"}
    free = asyncio.run(model.complete([], tools, guide=TurnGuide("a", "3", ("finish",))))
    assert free.decoding == "free" and key not in seen[-1] or how == "tool_choice" and \
        "tool_choice" not in seen[-1]


def test_an_undecided_branch_allows_the_first_tool_of_each_option():
    from routine import Agent, ToolRegistry, load_routine_text, tool
    from routine.models.testing import ScriptedModel, call

    @tool
    def check(order: int) -> dict:
        """Check an order."""
        return {"order": order}

    @tool
    def refund(order: int) -> str:
        """Refund it."""
        return "refunded"

    @tool
    def escalate(order: int, note: str = "") -> str:
        """Escalate it."""
        return "escalated"

    routine = load_routine_text("""
name: r
description: d
inputs: {order: {type: integer, description: the order}}
steps:
  - {id: look, name: Look, description: d, tool: check, args: {order: "${inputs.order}"}}
  - id: decide
    name: Decide
    description: refund or escalate
    branch:
      - condition: the customer is right
        steps:
          - {id: pay, name: Pay, description: d, tool: refund,
             args: {order: "${steps.look.output.order}"}}
      - condition: unclear
        steps:
          - {id: up, name: Up, description: d, tool: escalate,
             args: {order: "${steps.look.output.order}"}}
  - {id: answer, name: Answer, description: d, finish: true}
""")
    model = ScriptedModel([call("check", order=5), call("escalate", order=5, note="odd"),
                           call("finish", answer="escalated")])
    Agent(routine, ToolRegistry(check, refund, escalate), model, decoding="guided").run(
        "order 5", {"order": 5})
    guide = model.requests[1].guide
    assert guide.branch_undecided and set(guide.tools) == {"refund", "escalate"}
    assert guide.constrain and guide.fixed == {"refund": {"order": 5}, "escalate": {"order": 5}}
    schema = reply_schema(guide, model.requests[1].tools)
    assert _valid(schema, {"name": "escalate", "arguments": {"order": 5}})
    # an optional parameter the step's args do not name keeps its default (made-up text)
    assert not _valid(schema, {"name": "escalate", "arguments": {"order": 5, "note": "odd"}})
    assert _valid(schema, {"name": "refund", "arguments": {"order": 5}})
    assert not _valid(schema, {"name": "refund", "arguments": {"order": 6}})
    assert not _valid(schema, {"name": "check", "arguments": {"order": 5}})
    assert model.requests[2].guide.tools == ("finish",)


def test_a_parameter_named_like_a_schema_keyword_survives():
    @tool
    def book(title: str, examples: int = 0) -> str:
        """Book."""
        return "ok"

    schema = reply_schema(None, [book.openai_spec()])
    assert _valid(schema, {"name": "book", "arguments": {"title": "Review", "examples": 2}})


def _retail():
    from routine import load_routine

    from .conftest import ROUTINES

    return load_routine(ROUTINES / "retail" / "order_status.yaml")


def test_inputs_first_reads_the_request_once_then_the_steps_know_the_values(tmp_path):
    from routine.eval.dataset import load_domain
    from routine.models.testing import ScriptedModel, call

    domain = load_domain(ROOT / "eval" / "datasets" / "retail")
    model = ScriptedModel(['{"email": "helga.lindqvist@example.net", "status": "pending"}',
                           call("find_customer", email="helga.lindqvist@example.net"),
                           call("finish", answer="done")])
    from routine import Agent

    agent = Agent(_retail(), domain.registry(), model, inputs_first=True, decoding="guided",
                  max_retries=0)
    trace = agent.run("Which of my orders are pending? I'm helga.lindqvist@example.net")
    first = model.requests[0]
    assert first.guide.constrain and first.guide.schema["required"] == ["email", "status"]
    assert first.tools == [] and "read these values" in first.messages[-1].content
    assert trace.turns[0].kind == "inputs"
    assert trace.inputs == {"email": "helga.lindqvist@example.net", "status": "pending"}
    state = model.requests[1].messages[-1].content  # the step now states the value
    assert "helga.lindqvist@example.net" in state and "take it from the user" not in state
    assert model.requests[1].guide.fixed["find_customer"] == {
        "email": "helga.lindqvist@example.net"}


def test_a_required_input_not_stated_is_asked_for_not_guessed():
    from routine import Agent
    from routine.eval.dataset import load_domain
    from routine.models.testing import ScriptedModel

    domain = load_domain(ROOT / "eval" / "datasets" / "retail")
    model = ScriptedModel(['{"email": null, "status": "all"}'])
    trace = Agent(_retail(), domain.registry(), model, inputs_first=True).run(
        "Show me my orders please")
    assert trace.outcome == "answered" and trace.asked == ["email"]
    assert "email" in trace.answer and trace.tool_calls == []
    model.assert_complete()


def test_a_wrongly_typed_or_unknown_input_is_left_unknown():
    from routine import Agent
    from routine.eval.dataset import load_domain
    from routine.models.testing import ScriptedModel, call

    domain = load_domain(ROOT / "eval" / "datasets" / "retail")
    model = ScriptedModel(['{"email": "a@b.c", "status": "sideways", "color": "red"}',
                           call("finish", answer="x")])
    trace = Agent(_retail(), domain.registry(), model, inputs_first=True,
                  enforce_steps=False, prompt_style="full").run("orders of a@b.c")
    assert trace.inputs == {"email": "a@b.c"}  # status outside its enum, color unknown


ANSWERED = """
name: status
description: Tell a customer their latest order's status.
inputs: {email: {type: string, description: the account email}}
steps:
  - {id: find, name: Find, description: d, tool: find_customer, args: {email: "${inputs.email}"}}
  - {id: orders, name: Orders, description: d, tool: list_orders,
     args: {customer_id: "${steps.find.output.customer_id}"}}
  - id: answer
    name: Answer
    description: Say the status.
    finish: true
    answer: "{% for o in steps.orders.output[:1] %}Order {{ o.order_id }}: {{ o.status }}{% endfor %}"
"""


def _answered_run(answer: str, **settings):
    from routine import Agent, load_routine_text
    from routine.eval.dataset import load_domain
    from routine.models.testing import ScriptedModel, call

    domain = load_domain(ROOT / "eval" / "datasets" / "retail")
    model = ScriptedModel([call("find_customer", email="rafael.takahashi@example.net"),
                           call("list_orders", customer_id=26),
                           call("finish", answer=answer)])
    return Agent(load_routine_text(ANSWERED), domain.registry(), model, **settings).run(
        "Has my latest order arrived? rafael.takahashi@example.net")


def test_the_answer_template_adds_the_facts_an_answer_lacks():
    trace = _answered_run("It has not arrived, sorry.", answer_facts=True)
    assert trace.answer_facts == "Order 40085: cancelled"
    assert trace.answer == "It has not arrived, sorry.\n\nOrder 40085: cancelled"
    stated = _answered_run("Your order 40085.0 was CANCELLED, sorry.", answer_facts=True)
    assert stated.answer == "Your order 40085.0 was CANCELLED, sorry."  # values all there
    half = _answered_run("Order 40085 has not arrived.", answer_facts=True)
    assert half.answer.endswith("Order 40085: cancelled")  # the status was missing
    off = _answered_run("It has not arrived.")  # off by default
    assert off.answer == "It has not arrived." and off.answer_facts is None


@pytest.mark.parametrize("template, why", [
    ("{{ steps.nowhere.output.id }}", "missing step 'nowhere'"),
    ("{{ balance }}", "unknown name 'balance' in the answer template"),
    ("{% for o in steps.orders.output %}{{ o.order_id }}", "invalid template"),
    ("{{ steps.orders.output | nosuchfilter }}", "No filter named 'nosuchfilter'"),
    ("{% if steps.orders.output is nosuchtest %}x{% endif %}", "No test named 'nosuchtest'"),
])
def test_answer_templates_are_validated(template, why):
    from routine import load_routine_text
    from routine.eval.dataset import load_domain
    from routine.spec.validate import check_routine

    text = ANSWERED.replace(
        '"{% for o in steps.orders.output[:1] %}Order {{ o.order_id }}: {{ o.status }}'
        '{% endfor %}"', json.dumps(template))
    loaded = load_routine_text(text, "t.yaml")
    registry = load_domain(ROOT / "eval" / "datasets" / "retail").registry()
    problems = check_routine(loaded, registry)
    assert any(why in p.message and p.line == 13 for p in problems), problems


@pytest.mark.parametrize("name", ["retail", "hr"])
def test_answer_templates_state_every_required_fact_of_every_gold_example(name):
    """Each finish step's template, rendered from a gold trajectory's outputs, holds that
    example's required facts: a guided answer carries them whatever the model writes."""
    from routine import Agent
    from routine.eval.dataset import ORACLE_SETTINGS
    from routine.eval.players import GoldPlayer
    from routine.eval.tasks import missing_facts

    folder = ROOT / "eval" / "datasets" / name
    domain = load_domain(folder)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    settings = ORACLE_SETTINGS.model_copy(update={"answer_facts": True})
    checked = 0
    for example in load_dataset(folder):
        if example.kind != "routine" or example.user is not None:
            continue
        player = GoldPlayer([(c.name, c.arguments) for c in example.calls], "Done.",
                            inputs=example.inputs)
        trace = asyncio.run(Agent(routines[example.routine], registry, player, settings,
                                  validate=False, approver=policy(True)).arun(example.query))
        assert trace.outcome == "answered", example.id
        assert missing_facts(trace.answer, example.required_facts) == [], (
            example.id, trace.answer_facts, example.required_facts)
        checked += 1
    assert checked > 100


def test_a_step_named_like_a_dict_method_is_data_in_templates_and_expressions():
    from routine.spec.expressions import compile_when, render_template

    steps = {"update": {"output": {"n": 3}}, "items": {"output": [1, 2]}}
    assert render_template("{{ steps.update.output.n }}/{{ steps.items.output|length }}",
                           inputs={}, steps=steps) == "3/2"
    assert compile_when("steps.update.output.n > 2")(inputs={}, steps=steps) is True
