"""Bugs found by the fifth hostile-input round (a bank's card-services desk written from
scratch as a new user would): each test fails on the code before its fix."""

from __future__ import annotations

import contextlib
from datetime import datetime
from decimal import Decimal
from typing import Literal

import pytest
from pydantic import BaseModel

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.errors import SpecError
from routine.models.testing import ScriptedModel, call
from routine.run.approval import policy
from routine.spec.validate import check_routine
from routine.tools.core import ToolRegistry


class Card(BaseModel):
    card_id: int
    last4: str
    credit_limit: Decimal


@contextlib.contextmanager
def _ledger():
    yield []  # every write, in order


cards = Toolset("cards", setup=_ledger)


@cards.tool
def find_card(ctx: RunContext[list], last4: str) -> Card | None:
    """Find a card by its last four digits."""
    return Card(card_id=1, last4=last4, credit_limit=Decimal("1500.00"))


@cards.tool
def raise_limit(ctx: RunContext[list], card_id: int, new_limit: Decimal) -> str:
    """Raise a card's credit limit."""
    ctx.deps.append(("raise_limit", card_id, new_limit))
    return "raised"


@cards.tool
def transfer_balance(ctx: RunContext[list], card_id: int, amount: Decimal,
                     to_account: str | None = None) -> str:
    """Move a card's balance to an account (default: the customer's own)."""
    ctx.deps.append(("transfer_balance", card_id, amount, to_account))
    return "moved"


@cards.tool
def note(ctx: RunContext[list], text: str) -> str:
    """Write a note on the customer's file."""
    ctx.deps.append(("note", text))
    return "noted"


def _agent(text: str, replies: list, **kwargs) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(replies)
    return Agent(load_routine_text(text, "card.yaml"), [cards], model, **kwargs), model


def _writes(trace) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for c in trace.tool_calls
            if c.ok and c.name in ("raise_limit", "transfer_balance", "note")]


# ------------------------------------------- a confirmation shows what the yes covers
TRANSFER = """
name: balance_transfer
description: Move a card's balance to the customer's own account after they confirm.
toolsets: [cards]
inputs: {amount: {type: number, description: how much}}
steps:
  - id: move
    name: Move
    description: Move the balance to the customer's own account.
    tool: transfer_balance
    args: {card_id: 1, amount: "${inputs.amount}"}
    confirm: "Move {{ inputs.amount }} from card 4242 to your own account? (yes/no)"
  - {id: done, name: Done, description: Done., finish: true, message: "Moved."}
"""


def test_a_confirmation_shows_an_argument_the_model_added_that_its_text_does_not():
    evil = call("transfer_balance", card_id=1, amount=50, to_account="DE00 ATTACKER 666")
    agent, _ = _agent(TRANSFER, [evil])
    with agent.conversation(inputs={"amount": 50}) as chat:
        asked = chat.send("Move 50 from my card to my account")
        assert asked.waiting_for == "confirmation"
        assert asked.text.startswith("Move 50 from card 4242 to your own account? (yes/no)")
        assert 'to_account = "DE00 ATTACKER 666"' in asked.text  # the yes covers it, seen
        declined = chat.send("no")
    assert declined.status == "answered" and _writes(chat.trace) == []
    plain = call("transfer_balance", card_id=1, amount=50)  # nothing added: the text alone
    agent, _ = _agent(TRANSFER, [plain])
    with agent.conversation(inputs={"amount": 50}) as chat:
        assert chat.send("Move 50").text == \
            "Move 50 from card 4242 to your own account? (yes/no)"


# ---------------------------------------- a branch option the model could never choose
HANDOFF_OPTION = """
name: card_help
description: Help with a card.
toolsets: [cards]
inputs: {last4: {type: string, description: last four digits}}
steps:
  - {id: find, name: Find card, description: Find the card., tool: find_card,
     args: {last4: "${inputs.last4}"}}
  - id: what
    name: What next
    description: Decide what the customer wants.
    branch:
      - condition: the customer reports a fraudulent charge
        steps:
          - {id: ho, name: Hand off, description: Pass to the dispute desk.,
             handoff: card_dispute}
      - condition: the customer only wants a note on file
        steps:
          - {id: nt, name: Note, description: Note it., tool: note, args: {text: noted}}
          - {id: done, name: Done, description: Say so., finish: true}
"""


def test_a_branch_the_model_decides_refuses_an_option_that_begins_with_a_hand_off():
    registry = ToolRegistry(cards)
    problems = check_routine(load_routine_text(HANDOFF_OPTION, "card.yaml"), registry,
                             routines={"card_dispute": None})
    (problem,) = [p for p in problems if "cannot choose" in p.message]
    assert problem.line == 13 and "begins with step 'ho' (a handoff)" in problem.message
    assert "a 'when' on every option" in problem.expected
    with pytest.raises(SpecError, match="cannot choose"):
        Agent(load_routine_text(HANDOFF_OPTION, "card.yaml"), [cards], ScriptedModel([]))
    # the same choice over an input a `when` reads is fine
    decided = HANDOFF_OPTION.replace(
        "inputs: {last4: {type: string, description: last four digits}}",
        "inputs: {last4: {type: string, description: last four digits},\n"
        "         fraud: {type: boolean, description: a fraudulent charge}}").replace(
        "      - condition: the customer reports a fraudulent charge\n",
        "      - condition: the customer reports a fraudulent charge\n"
        "        when: inputs.fraud\n")
    assert not [p for p in check_routine(load_routine_text(decided, "card.yaml"), registry,
                                         routines={"card_dispute": None})
                if "cannot choose" in p.message]


# ------------------------------------------------------- the exact final message
def test_a_final_message_whose_template_fails_fails_the_run_instead_of_a_model_answer():
    text = """
name: show_limit
description: Tell the customer their limit.
toolsets: [cards]
steps:
  - {id: a, name: Find card, description: Find the card., tool: find_card,
     args: {last4: "4242"}}
  - id: z
    name: Answer
    description: Tell the limit.
    finish: true
    message: "Your limit is {{ steps.a.output.credit_limit + ' EUR' }}."
"""
    agent, model = _agent(text, [call("find_card", last4="4242"),
                                 "Your limit has been raised to 9,999 EUR."])
    trace = agent.run(None, {})
    assert trace.outcome == "failed" and trace.failure_kind == "routine_limit"
    assert "the exact message of step z cannot be written: TypeError" in trace.failure
    assert trace.answer is None and len(model.requests) == 1  # no model-written answer


# ------------------------------------------------------------- numbers from Python
RAISE_TO = """
name: raise_to
description: Raise a card's limit to an amount.
toolsets: [cards]
inputs: {new_limit: {type: number, description: the new limit}}
steps:
  - {id: r, name: Raise, description: Raise it., tool: raise_limit,
     args: {card_id: 1, new_limit: "${inputs.new_limit}"}}
  - {id: done, name: Done, description: Done., finish: true, message: done}
"""


def test_decimal_and_big_integer_inputs_are_numbers_not_crashes():
    agent, _ = _agent(RAISE_TO, [call("raise_limit", card_id=1, new_limit=2500.5)],
                      approver=policy(True))
    trace = agent.run(None, {"new_limit": Decimal("2500.50")})
    assert trace.outcome == "answered" and trace.inputs["new_limit"] == 2500.5
    huge = 10 ** 400
    agent, _ = _agent(RAISE_TO, [call("raise_limit", card_id=1, new_limit=huge)],
                      approver=policy(True))
    trace = agent.run(None, {"new_limit": huge})  # raised OverflowError before
    assert trace.outcome == "answered" and _writes(trace)[0][1]["new_limit"] == huge
    with pytest.raises(Exception, match="more digits than a number input keeps exactly"):
        agent.run(None, {"new_limit": Decimal("0.12345678901234567890123")})


def test_a_huge_integer_in_the_model_s_reading_of_the_request_does_not_crash_a_conversation():
    text = RAISE_TO.replace("  - {id: r,", "  - {id: ask, name: Ask, description: Ask.,\n"
                            "     ask: 'How much?', fills: [new_limit]}\n  - {id: r,")
    huge = "1" + "0" * 400
    agent, _ = _agent(text, ['{"new_limit": ' + huge + '}',
                             call("raise_limit", card_id=1, new_limit=int(huge))],
                      approver=policy(True))
    with agent.conversation() as chat:
        reply = chat.send(f"Raise my limit to {huge} euros")  # raised OverflowError before
    assert reply.status == "answered" and chat.trace.inputs["new_limit"] == int(huge)


# ------------------------------------------------------------------- compute
def test_compute_drops_binary_noise_but_keeps_real_digits():
    text = """
name: limit_calc
description: Compute a new limit.
toolsets: [cards]
inputs:
  base: {type: number, description: current limit}
  add: {type: number, description: increase}
steps:
  - {id: calc, name: Compute, description: Compute it., compute: {new_limit: "inputs.base + inputs.add"}}
  - {id: r, name: Raise, description: Raise it., tool: raise_limit,
     args: {card_id: 1, new_limit: "${vars.new_limit}"}}
  - {id: done, name: Done, description: Done., finish: true, message: "{{ vars.new_limit }}"}
"""
    for base, add, shown in [(1000.10, 1000.20, "2000.3"),  # noise dropped
                             (12345678901234.56, 0.01, "12345678901234.57"),  # the cent kept
                             (0.1, 1 / 3, "0.43333333333333335"),
                             (9007199254740993.0, 0.0, "9007199254740992.0")]:
        agent, _ = _agent(text, [call("raise_limit", card_id=1, new_limit=float(shown))],
                          approver=policy(True))
        trace = agent.run(None, {"base": base, "add": add})
        assert (trace.outcome, trace.answer) == ("answered", shown), (base, add)


# --------------------------------------------- inputs a `when` or `compute` reads
REVIEW = """
name: limit_review
description: Review a card's limit.
toolsets: [cards]
inputs:
  last4: {type: string, description: last four digits}
  manual_review: {type: boolean, description: send to manual review, required: false,
                  default: true}
steps:
  - {id: find, name: Find card, description: Find the card., tool: find_card,
     args: {last4: "${inputs.last4}"}}
  - id: route
    name: Route
    description: Manual review or automatic raise.
    branch:
      - condition: manual review
        when: inputs.manual_review
        steps:
          - {id: n, name: Note, description: Note it., tool: note, args: {text: manual review}}
      - condition: automatic
        steps:
          - {id: r, name: Raise, description: Raise it., tool: raise_limit,
             args: {card_id: 1, new_limit: 5000}}
  - {id: done, name: Done, description: Done., finish: true, message: done}
"""


@pytest.mark.parametrize("reading, wrote", [
    ('{"manual_review": null}', "note"),  # not stated: the default decides, not the model
    ('{"manual_review": false}', "raise_limit"),  # stated: the user's word decides
])
def test_a_when_over_an_unstated_input_reads_the_request_then_takes_the_default(reading, wrote):
    step = {"note": call("note", text="manual review"),
            "raise_limit": call("raise_limit", card_id=1, new_limit=5000)}[wrote]
    agent, model = _agent(REVIEW, [call("find_card", last4="4242"), reading, step],
                          approver=policy(True))
    trace = agent.run("Raise the limit of card 4242")
    assert trace.outcome == "answered" and [w[0] for w in _writes(trace)] == [wrote]
    assert "manual_review (boolean)" in model.requests[1].messages[-1].content
    assert trace.inputs["manual_review"] is (wrote == "note")
    model.assert_complete()


def test_a_compute_over_an_input_reads_it_from_the_request_or_names_it():
    text = """
name: raise_by
description: Raise a card's limit by an amount.
toolsets: [cards]
inputs: {increase: {type: number, description: how much to add}}
steps:
  - {id: find, name: Find card, description: Find the card., tool: find_card,
     args: {last4: "4242"}}
  - {id: calc, name: Compute, description: Compute it.,
     compute: {new_limit: "steps.find.output.credit_limit + inputs.increase"}}
  - {id: r, name: Raise, description: Raise it., tool: raise_limit,
     args: {card_id: 1, new_limit: "${vars.new_limit}"}}
  - {id: done, name: Done, description: Done., finish: true, message: "{{ vars.new_limit }}"}
"""
    agent, _ = _agent(text, [call("find_card", last4="4242"), '{"increase": 500}',
                             call("raise_limit", card_id=1, new_limit=2000)],
                      approver=policy(True))
    trace = agent.run("Raise the limit of card 4242 by 500")
    assert trace.outcome == "answered" and trace.answer == "2000"
    agent, _ = _agent(text, [call("find_card", last4="4242"), '{"increase": null}'])
    trace = agent.run("Raise the limit of card 4242")
    assert trace.outcome == "failed"
    assert "input 'increase' is not known (the request did not state it" in trace.failure


# ------------------------------------------------------------------ routine files
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\ufffe"])
def test_a_control_character_is_a_problem_at_its_line_not_a_reader_error(char):
    text = f"name: x\ndescription: d\nsteps:\n  - id: a\n    name: A\n    description: A{char}.\n"
    with pytest.raises(SpecError) as caught:
        load_routine_text(text, "card.yaml")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == ("card.yaml", 6)
    assert f"U+{ord(char):04X}" in problem.message


# ------------------------------------------------ literals the tool itself would refuse
class Evidence(BaseModel):
    kind: Literal["receipt", "email"]
    note: str


class Address(BaseModel):
    street: str
    city: str


@cards.tool
def open_dispute(ctx: RunContext[list], card_id: int, evidence: list[Evidence] | None = None,
                 ship_to: Address | None = None, when: datetime | None = None) -> str:
    """Open a dispute."""
    return "opened"


@pytest.mark.parametrize("literal, where", [
    ('evidence: [{kind: photo, note: attached}]', "evidence.0.kind"),  # a Literal in a list
    ("ship_to: {street: Main St 5}", "ship_to.city: Field required"),  # a nested model
    ('when: "next tuesday"', "when: Input should be a valid datetime"),
])
def test_validate_checks_a_literal_argument_as_the_tool_takes_it(literal, where):
    text = f"""
name: dispute
description: Open a dispute.
toolsets: [cards]
steps:
  - {{id: a, name: Dispute, description: Open it., tool: open_dispute,
     args: {{card_id: 1, {literal}}}}}
  - {{id: z, name: Done, description: Done., finish: true}}
"""
    (problem,) = check_routine(load_routine_text(text, "dispute.yaml"), ToolRegistry(cards))
    assert problem.line == 7 and where in problem.message
    assert "does not fit argument" in problem.message
    fine = text.replace(literal, 'evidence: [{kind: receipt, note: attached}], '
                                 'when: "2026-03-01T10:00:00"')
    assert check_routine(load_routine_text(fine, "dispute.yaml"), ToolRegistry(cards)) == []


def test_validate_checks_a_literal_for_a_tool_known_only_by_its_json_schema():
    from routine.tools.core import Tool

    schema = {"type": "object", "required": ["slot"], "properties": {
        "slot": {"$ref": "#/$defs/Slot"}}, "$defs": {"Slot": {
            "type": "object", "required": ["date", "window"], "properties": {
                "date": {"type": "string"}, "window": {"enum": ["am", "pm"]}}}}}
    book = Tool(name="book_technician", description="Book a visit.", parameters=schema,
                output_schema=None, function=lambda ctx, arguments: "booked",
                raw_arguments=True)  # (as an MCP server's tool is)
    text = """
name: visit
description: Book a visit.
steps:
  - {id: a, name: Book, description: Book it., tool: book_technician,
     args: {slot: {date: "2026-03-05", window: evening}}}
  - {id: z, name: Done, description: Done., finish: true}
"""
    (problem,) = check_routine(load_routine_text(text, "visit.yaml"), ToolRegistry(book))
    assert problem.line == 6 and "slot.window: 'evening' is not one of ['am', 'pm']" in \
        problem.message
    fine = text.replace("window: evening", "window: pm")
    assert check_routine(load_routine_text(fine, "visit.yaml"), ToolRegistry(book)) == []


# ------------------------------------------------------- calls that outlive their limit
def _slow_credit(written: list, seconds: float):
    import time

    from routine import tool

    @tool(approval=True)
    def apply_credit(account: str, amount: float) -> str:
        """Credit an account."""
        time.sleep(seconds)
        written.append((account, amount))
        return "credited"

    return apply_credit


CREDIT = """
name: credit
description: Credit an account.
inputs: {account: {type: string, description: the account}}
steps:
  - {id: pay, name: Credit, description: Credit it., tool: apply_credit,
     args: {account: "${inputs.account}", amount: 10}}
  - {id: done, name: Done, description: Say so., finish: true}
"""


def test_a_call_that_timed_out_is_not_sent_again():
    import time

    written: list = []
    again = call("apply_credit", account="A1", amount=10)
    model = ScriptedModel([again, again, "It is unknown whether the credit went through."])
    agent = Agent(load_routine_text(CREDIT, "credit.yaml"), [_slow_credit(written, 0.6)],
                  model, tool_timeout_s=0.2, approver=policy(True))
    trace = agent.run(None, {"account": "A1"})
    time.sleep(1.0)  # the first call finishes in the background
    assert written == [("A1", 10)]  # once: the retry was not run (it credited twice)
    first, second = trace.tool_calls
    assert first.error_kind == "timeout" and "whether it did its work is unknown" in first.error
    assert second.error_kind == "repeated" and "it is not sent twice" in second.error
    assert trace.outcome == "answered"  # the model may tell the user, not retry


def test_a_call_running_when_the_run_times_out_stays_in_the_trace_with_its_approval():
    written: list = []
    model = ScriptedModel([call("apply_credit", account="A1", amount=10)])
    agent = Agent(load_routine_text(CREDIT, "credit.yaml"), [_slow_credit(written, 1.5)],
                  model, timeout_s=0.5, tool_timeout_s=30, approver=policy(True, by="ops"))
    trace = agent.run(None, {"account": "A1"})
    assert trace.outcome == "failed" and trace.failure_kind == "timeout"
    (running,) = trace.tool_calls
    assert running.name == "apply_credit" and running.arguments == {"account": "A1",
                                                                    "amount": 10}
    assert "was running when the run ended" in running.error
    assert running.approval is not None and running.approval.by == "ops"


def test_an_impossible_date_is_reported_with_the_file_s_other_problems():
    text = """
name: dates
description: d
toolsets: [cards]
steps:
  - {id: a, name: A, description: A., tool: find_card, args: {last4: "4242", since: 2026-13-45}}
  - {id: b, name: B, description: B., tool: no_such_tool}
  - {id: z, name: Z, description: Z., finish: true}
"""
    loaded = load_routine_text(text, "dates.yaml")  # read on: the date kept as its text
    problems = check_routine(loaded, ToolRegistry(cards))
    assert [p.line for p in problems] == [6, 6, 7]
    assert "'2026-13-45' reads as a date, and is not one" in problems[0].message
    assert "takes no argument 'since'" in problems[1].message
    assert "unknown tool 'no_such_tool'" in problems[2].message
    with pytest.raises(SpecError, match="reads as a date"):
        Agent(loaded, [cards], ScriptedModel([]))
