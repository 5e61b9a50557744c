"""Bugs found by the fourth hostile-input round (an insurer's claims desk, a mobile
operator's customer care, a procurement department set up from `routine init`): each test
fails on the code before its fix."""

from __future__ import annotations

import contextlib
import json
from datetime import date

from pydantic import BaseModel

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.models.testing import FunctionModel, Request, ScriptedModel, call
from routine.spec.validate import check_routine
from routine.tools.core import ToolRegistry

from .test_run_hostile3 import bank

BLOCK_THEN_MORE = load_routine_text("""
name: block_more
description: Block a card after the customer confirms, then ask if there is anything else.
toolsets: [bank]
inputs:
  last4: {type: string, description: the card's last four digits}
  more: {type: boolean, description: whether the customer wants anything else}
steps:
  - {id: find, name: Find the card, description: Find it., tool: find_card,
     args: {last4: "${inputs.last4}"}}
  - id: block
    name: Block the card
    description: Block it.
    tool: block_card
    args: {card_id: "${steps.find.output.card_id}"}
    confirm: "I will block the card ending {{ steps.find.output.last4 }}. Shall I go ahead?"
  - {id: more, name: Anything else, description: Ask., ask: "Anything else I can do?",
     fills: [more]}
  - {id: done, name: Answer, description: Say so., finish: true, message: "Done."}
""", "block_more.yaml")


def test_a_yes_to_a_confirmation_is_not_read_as_a_later_question_s_answer():
    heard: list[str] = []
    tool_turns = iter([call("find_card", last4="1234"), call("block_card", card_id=10)])

    def reply(request: Request):
        if request.guide is not None and request.guide.label == "inputs":
            text = request.messages[-2].content  # the user's words (then the instruction)
            heard.append(text)
            wanted = request.guide.schema["properties"]
            # a model that reads any "yes" as "wants more", as small models do
            return json.dumps({n: ("1234" if n == "last4" else
                                   True if "yes" in text.lower() else None) for n in wanted})
        return next(tool_turns)

    agent = Agent(BLOCK_THEN_MORE, [bank], FunctionModel(reply), inputs_first=True)
    with agent.conversation() as chat:
        first = chat.send("Please block my card ending 1234")
        assert first.waiting_for == "confirmation" and "Shall I go ahead?" in first.text
        second = chat.send("yes")
    assert second.waiting_for == "inputs" and second.text == "Anything else I can do?"
    assert not any(h.strip().lower().endswith("yes") for h in heard[1:])


def _closing_probe(closed: list[str]):
    import contextlib

    from routine import Toolset

    @contextlib.contextmanager
    def session():
        yield "db"
        closed.append("closed")

    return Toolset("probe", setup=session)


def _block_agent(closed: list[str]) -> Agent:
    from .test_run_hostile3 import BLOCK

    model = ScriptedModel([call("find_card", last4="1234"), call("block_card", card_id=10)],
                          inputs={"last4": "1234"})
    return Agent(BLOCK, [bank, _closing_probe(closed)], model)


def test_on_turn_sees_the_turn_in_which_a_confirmed_write_runs():
    seen: list[tuple[str, list[str]]] = []
    agent = _block_agent([])
    with agent.conversation(on_turn=lambda t: seen.append((t.kind, [c.name for c in t.calls]))
                            ) as chat:
        chat.send("Block my card ending 1234")
        reply = chat.send("yes")
    assert reply.status == "answered"
    assert ("reply", ["block_card"]) in seen  # the write, as the terminal shows it
    assert [(t.kind, [c.name for c in t.calls]) for t in reply.trace.turns] == seen


def test_closing_an_async_conversation_closes_its_tools_session():
    import asyncio

    import pytest

    from routine import RoutineError

    closed: list[str] = []

    async def inside_the_loop() -> None:
        chat = _block_agent(closed).conversation()
        await chat.asend("Block my card ending 1234")
        chat.close()  # from a coroutine: closed on this loop
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(inside_the_loop())
    assert closed == ["closed"]

    async def opened() -> object:
        chat = _block_agent(closed).conversation()
        await chat.asend("Block my card ending 1234")
        return chat

    chat = asyncio.run(opened())
    with pytest.raises(RoutineError, match="aclose"):
        chat.close()  # its loop is gone: say how to close it, never leave it silently open
    with pytest.raises(RoutineError, match="closed"):
        chat.send("yes")


# ---------------------------------------------------------------- claims desk
class Estimate(BaseModel):
    amount: float


claims = Toolset("claims", setup=lambda: _paid_log())


@contextlib.contextmanager
def _paid_log():
    yield []


@claims.tool
def get_estimate(claim_id: int) -> Estimate | None:
    """The damage estimate of a claim; None when there is none yet."""
    return None


@claims.tool
def pay_claim(ctx: RunContext[list], claim_id: int, amount: float) -> str:
    """Pay a claim."""
    ctx.deps.append((claim_id, amount))
    return "paid"


@claims.tool
def refer_claim(ctx: RunContext[list], claim_id: int) -> str:
    """Refer a claim to a senior adjuster."""
    ctx.deps.append(("referred", claim_id))
    return "referred"


PAYOUT = load_routine_text("""
name: payout
description: Pay a claim's estimate when it is under the limit, else refer it.
toolsets: [claims]
constants: {limit: 2500}
inputs: {claim_id: {type: integer, description: the claim}}
steps:
  - {id: est, name: Estimate, description: Get the estimate., tool: get_estimate,
     args: {claim_id: "${inputs.claim_id}"}}
  - id: check
    name: Under the limit?
    description: Pay or refer.
    branch:
      - condition: under the limit
        when: steps.est.output.amount <= constants.limit
        steps:
          - {id: pay, name: Pay, description: Pay it., tool: pay_claim,
             args: {claim_id: "${inputs.claim_id}", amount: "${steps.est.output.amount}"}}
      - condition: over the limit
        steps:
          - {id: refer, name: Refer, description: Refer it., tool: refer_claim,
             args: {claim_id: "${inputs.claim_id}"}}
  - {id: done, name: Answer, description: Say it., finish: true, message: "Done."}
""", "payout.yaml")


def test_a_branch_that_reads_a_field_of_nothing_found_stops_the_run_no_invented_amount():
    model = ScriptedModel([call("get_estimate", claim_id=7), call("pay_claim", claim_id=7,
                                                                   amount=950.0)],
                          inputs={"claim_id": 7})
    trace = Agent(PAYOUT, [claims], model).run("Pay claim 7")
    assert trace.outcome == "failed" and "pay_claim" not in trace.tool_sequence
    assert "cannot choose" in trace.failure and "steps.est is null" in trace.failure


def test_validate_warns_when_a_branch_tests_a_field_but_not_the_nothing_found():
    registry = ToolRegistry()
    registry.add(claims)
    warnings: list = []
    assert check_routine(PAYOUT, registry, warnings=warnings) == []
    assert [w.line for w in warnings] == [18]  # pay's amount: the branch tests a field only


def test_finish_is_refused_before_the_steps_when_the_style_does_not_offer_it():
    model = ScriptedModel([call("finish", answer="Your card is blocked."),
                           call("find_card", last4="1234"), call("block_card", card_id=10)],
                          inputs={"last4": "1234"})
    from .test_run_hostile3 import BLOCK

    with Agent(BLOCK, [bank], model).conversation() as chat:
        reply = chat.send("Block my card 1234")
    calls = [(c.name, c.error_kind) for c in reply.trace.tool_calls]
    assert calls[:2] == [("finish", "not_allowed"), ("find_card", None)]
    assert reply.waiting_for == "confirmation"  # the process goes on; no made-up answer


def test_a_var_set_from_an_optional_lookup_is_warned_about_too():
    text = PAYOUT_VARS
    registry = ToolRegistry()
    registry.add(claims)
    warnings: list = []
    assert check_routine(load_routine_text(text, "v.yaml"), registry, warnings=warnings) == []
    (warning,) = warnings
    assert "${vars.estimate.amount} (set by step 'est') may be null" in warning.message


PAYOUT_VARS = """
name: payout_vars
description: Pay a claim's estimate.
toolsets: [claims]
inputs: {claim_id: {type: integer, description: the claim}}
steps:
  - {id: est, name: Estimate, description: Get the estimate., tool: get_estimate,
     args: {claim_id: "${inputs.claim_id}"}, output: estimate}
  - {id: pay, name: Pay, description: Pay it., tool: pay_claim,
     args: {claim_id: "${inputs.claim_id}", amount: "${vars.estimate.amount}"}}
  - {id: done, name: Answer, description: Say it., finish: true, message: "Done."}
"""


@claims.tool
def get_claim(claim_id: int) -> dict:
    """A claim by its number (an error when there is no such claim)."""
    if claim_id != 502:
        raise KeyError(f"no claim {claim_id}")
    return {"claim_id": 502, "status": "open"}


STATUS = load_routine_text("""
name: claim_status
description: Tell a policyholder where their claim stands.
toolsets: [claims]
inputs:
  claim_id: {type: integer, description: the claim number}
  channel: {type: string, description: how the user wants the answer, required: false}
steps:
  - {id: ask_claim, name: Ask, description: Ask for the claim., ask: "What is your claim number?",
     fills: [claim_id], max_visits: 3}
  - {id: get, name: Get, description: Get the claim., tool: get_claim,
     args: {claim_id: "${inputs.claim_id}"}, on_error: ask_claim}
  - {id: done, name: Answer, description: Say it., finish: true,
     message: "Claim {{ steps.get.output.claim_id }} is {{ steps.get.output.status }}."}
""", "status.yaml")


def _reads_numbers(request: Request):
    """Reads the claim number from the user's words (the last number said), calls the step's
    tool with the value the guide fixes."""
    import re

    if request.guide is not None and request.guide.label == "inputs":
        numbers = re.findall(r"\d+", request.messages[-2].content)
        return json.dumps({"claim_id": int(numbers[-1]) if numbers else None})
    (tool, arguments), = request.guide.fixed.items()
    return call(tool, **arguments)


def test_an_ask_step_that_is_an_on_error_target_reads_the_first_message_like_any_other():
    agent = Agent(STATUS, [claims], FunctionModel(_reads_numbers))
    with agent.conversation() as chat:
        reply = chat.send("What's the status of claim 502?")
    assert reply.status == "answered" and reply.text == "Claim 502 is open."
    with agent.conversation() as chat:  # a claim that fails: asked again, then read
        first = chat.send("What's the status of claim 999?")
        assert first.waiting_for == "inputs" and first.text == "What is your claim number?"
        again = chat.send("Sorry, it is 502")
    assert again.status == "answered" and again.text == "Claim 502 is open."


def test_inputs_first_reads_the_request_in_a_conversation_too():
    model = ScriptedModel([call("get_estimate", claim_id=7)], inputs={"claim_id": 7})
    agent = Agent(PAYOUT, [claims], model, inputs_first=True, decoding="guided")
    with agent.conversation() as chat:
        reply = chat.send("Pay claim 7")
    assert reply.trace.turns[0].kind == "inputs" and reply.trace.inputs == {"claim_id": 7}
    assert model.requests[0].guide.fixed == {"get_estimate": {"claim_id": 7}}


def test_a_computed_sum_of_money_has_no_binary_noise():
    from routine.run.tracking import StepTracker

    routine = load_routine_text("""
name: total
description: Add two amounts.
constants: {items: [1000.10, 1000.20], tiny: 0.000000000001}
steps:
  - {id: sum, name: Sum, description: Add., compute: {gross: {expr: "constants.items | sum",
     type: number}, small: {expr: "constants.tiny * 3", type: number}}}
  - {id: done, name: Answer, description: Say it., finish: true, message: "{{ vars.gross }}"}
""", "total.yaml")
    tracker = StepTracker(routine.routine, {})
    assert tracker.vars["gross"] == 2000.3 and tracker.render("{{ vars.gross }}") == "2000.3"
    assert tracker.vars["small"] == 3e-12  # small values keep their digits


def _problems(text: str) -> list[str]:
    registry = ToolRegistry()
    registry.add(claims)
    return [f"{p.line}: {p.message}" for p in
            check_routine(load_routine_text(text, "c.yaml"), registry)]


COMPUTED = """
name: computed
description: Compute a payout.
toolsets: [claims]
constants: {deductible: {basic: 500, gold: 100}}
inputs: {claim_id: {type: integer, description: the claim}, reason: {type: string, description: why}}
steps:
  - {id: get, name: Get, description: Get the claim., tool: get_claim,
     args: {claim_id: "${inputs.claim_id}"}}
  - {id: sum, name: Sum, description: Add., compute: {gross: {expr: "EXPR", type: TYPE}}}
  - {id: done, name: Answer, description: Say it., finish: true, message: "MESSAGE"}
"""


def test_validate_checks_a_compute_s_declared_type_where_it_is_known():
    def problems(expr: str, kind: str) -> list[str]:
        return _problems(COMPUTED.replace("EXPR", expr).replace("TYPE", kind)
                         .replace("MESSAGE", "ok"))

    assert problems("'abc'", "number") == [
        "10: gross = 'abc' is string, but its declared type is number: every run would stop here"]
    assert "is object" in problems("constants.deductible", "number")[0]
    assert "is integer" in problems("constants.deductible.gold", "boolean")[0]
    assert problems("constants.deductible.gold", "number") == []
    assert problems("'12.5'", "number") == []  # a number's text is the number at run time
    assert problems("steps.get.output.claim_id * 2", "number") == []  # not known: left


def test_validate_refuses_a_field_of_a_text_input_in_a_message():
    text = COMPUTED.replace("EXPR", "1").replace("TYPE", "number")
    assert _problems(text.replace("MESSAGE", "Closed: {{ inputs.reason.nosuch }}.")) == [
        "11: ${inputs.reason.nosuch}: input 'reason' is a string and has no field 'nosuch'"]
    assert _problems(text.replace("MESSAGE", "Closed: {{ inputs.reason }}.")) == []


def test_a_step_id_yaml_reads_as_a_boolean_says_so():
    import pytest

    from routine.errors import SpecError

    with pytest.raises(SpecError) as caught:
        load_routine_text("name: t\ndescription: d\nsteps:\n  - id: no\n    name: N\n"
                          "    description: d\n    finish: true\n", "t.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (4, 5)
    assert "read as a boolean (False), not as text" in problem.message
    assert "quotes around the value" in problem.expected


@claims.tool
def open_claim(loss_date: date) -> str:
    """Open a claim for a loss on a day."""
    return f"opened for {loss_date.isoformat()}"


def test_a_user_value_the_tool_refuses_may_be_rewritten_by_the_model():
    routine = load_routine_text("""
name: open
description: Open a claim.
toolsets: [claims]
inputs: {loss_date: {type: string, description: the day of the loss}}
steps:
  - {id: open, name: Open, description: Open it., tool: open_claim,
     args: {loss_date: "${inputs.loss_date}"}}
  - {id: done, name: Answer, description: Say it., finish: true,
     message: "Opened for {{ inputs.loss_date }}."}
""", "open.yaml")
    model = ScriptedModel([call("open_claim", loss_date="20/02/2026"),
                           call("open_claim", loss_date="2026-02-20")],
                          inputs={"loss_date": "20/02/2026"})
    trace = Agent(routine, [claims], model, inputs_first=True).run("Water damage on 20/02/2026")
    first, second = trace.tool_calls
    assert first.error_kind == "invalid_arguments" and "is what the user said" in first.error
    assert second.ok and trace.answer == "Opened for 2026-02-20."
