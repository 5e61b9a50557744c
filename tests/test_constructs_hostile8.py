"""Eighth hostile round, a freight company's routines: an ask inside a for_each asks about
every item, a null from an earlier step stops the run as validate warns, {{ }} in args is a
problem, and a failed conversation says what was done before it failed."""

from __future__ import annotations

import contextlib
import json

import pytest

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.errors import SpecError
from routine.models.testing import ScriptedModel, call

FREIGHT = Toolset("freight", setup=contextlib.contextmanager(lambda: (yield [])))
PARCELS = [{"parcel_id": 1, "label": "box A"}, {"parcel_id": 2, "label": "box B"},
           {"parcel_id": 3, "label": "crate C"}]


@FREIGHT.tool
def get_shipment(ctx: RunContext[list], tracking: str) -> dict:
    """A shipment with its parcels and the day it was delivered (null: not yet)."""
    return {"tracking": tracking, "parcels": PARCELS, "delivered_on": None}


@FREIGHT.tool
def record_damage(ctx: RunContext[list], parcel_id: int) -> str:
    """Record a damaged parcel."""
    ctx.deps.append(("damage", parcel_id))
    return "recorded"


@FREIGHT.tool
def book_redelivery(ctx: RunContext[list], tracking: str, day: str) -> str:
    """Book a redelivery on a day (YYYY-MM-DD)."""
    ctx.deps.append(("redelivery", tracking, day))
    return "booked"


@FREIGHT.tool
def last_delivery(ctx: RunContext[list], tracking: str) -> str | None:
    """The day of the last delivery attempt (None: none yet)."""
    return None


@FREIGHT.tool
def set_note(ctx: RunContext[list], tracking: str, note: str) -> str:
    """Put a note on a shipment."""
    ctx.deps.append(("note", tracking, note))
    return "noted"


ASK_EACH = """
name: damage_check
description: Ask about each parcel and record the damaged ones.
toolsets: [freight]
inputs:
  tracking: {type: string, description: the tracking number}
  damaged: {type: boolean, description: whether this parcel arrived damaged}
steps:
  - {id: get, name: Get the shipment, description: Get it., tool: get_shipment,
     args: {tracking: "${inputs.tracking}"}}
  - id: each
    name: Each parcel
    description: Ask about each parcel.
    for_each: ${steps.get.output.parcels}
    as: p
    steps:
      - {id: ask, name: Ask, description: Ask about this parcel.,
         ask: "Did {{ p.label }} arrive damaged?", fills: [damaged]}
      - id: which
        name: Damaged?
        description: Record only damaged parcels.
        branch:
          - condition: damaged
            when: inputs.damaged
            steps:
              - {id: record, name: Record, description: Record it., tool: record_damage,
                 args: {parcel_id: "${p.parcel_id}"}}
          - {condition: otherwise, steps: []}
  - {id: done, name: Done, description: Say so., finish: true, message: "Done."}
"""


def test_an_ask_inside_a_for_each_is_asked_for_every_item():
    model = ScriptedModel([
        call("get_shipment", tracking="TRK1"), json.dumps({"damaged": None}),
        json.dumps({"damaged": True}), call("record_damage", parcel_id=1),
        json.dumps({"damaged": False}),
        json.dumps({"damaged": True}), call("record_damage", parcel_id=3)])
    agent = Agent(load_routine_text(ASK_EACH, "damage.yaml"), [FREIGHT], model)
    asked = []
    with agent.conversation(inputs={"tracking": "TRK1"}) as chat:
        for said in ["I want to report damage on TRK1", "yes, box A is crushed",
                     "no, box B is fine", "yes, crate C is wet"]:
            reply = chat.send(said)
            asked.append(reply.text)
        log = chat.contexts["freight"].deps
    # before: asked about box A only; its "yes" recorded damage on all three parcels
    assert asked == ["Did box A arrive damaged?", "Did box B arrive damaged?",
                     "Did crate C arrive damaged?", "Done."]
    assert log == [("damage", 1), ("damage", 3)]


NULL_DAY = """
name: rebook
description: Rebook a delivery on the day of the last attempt.
toolsets: [freight]
inputs: {tracking: {type: string, description: the tracking number}}
steps:
  - {id: last, name: Last attempt, description: Get it., tool: last_delivery,
     args: {tracking: "${inputs.tracking}"}}
  - {id: book, name: Book, description: Book it., tool: book_redelivery,
     args: {tracking: "${inputs.tracking}", day: "${steps.last.output}"}}
  - {id: done, name: Done, description: Say so., finish: true, message: "Booked."}
"""


def test_a_null_from_an_earlier_step_stops_the_run_instead_of_a_made_up_value():
    made_up = call("book_redelivery", tracking="TRK3", day="2026-03-10")
    model = ScriptedModel([call("last_delivery", tracking="TRK3"), made_up])
    with pytest.warns(Warning, match="may be null"):
        agent = Agent(load_routine_text(NULL_DAY, "rebook.yaml"), [FREIGHT], model)
    trace = agent.run("rebook TRK3", inputs={"tracking": "TRK3"})
    assert trace.outcome == "failed" and trace.failure_kind == "routine_limit"
    assert "day = ${steps.last.output}, and it is null" in trace.failure
    assert [c.name for c in trace.tool_calls] == ["last_delivery"]  # before: booked


def test_a_template_in_args_is_a_problem_not_text_sent_as_written():
    bad = """
name: review
description: Note a review.
toolsets: [freight]
inputs:
  tracking: {type: string, description: the tracking number}
  amount: {type: number, description: the amount}
steps:
  - {id: note, name: Note, description: Note it., tool: set_note,
     args: {tracking: "${inputs.tracking}", note: "manual review {{ inputs.amount }}"}}
  - {id: done, name: Done, description: Done., finish: true}
"""
    with pytest.raises(SpecError) as caught:  # before: valid, and the note said "{{ … }}"
        Agent(load_routine_text(bad, "review.yaml"), [FREIGHT], ScriptedModel([]))
    assert "review.yaml:10:" in str(caught.value)
    assert "would be sent as written: arguments take ${...} references" in str(caught.value)


BAD_MESSAGE = """
name: note_it
description: Note a shipment, then say how long the note is.
toolsets: [freight]
inputs: {tracking: {type: string, description: the tracking number}}
steps:
  - {id: note, name: Note, description: Note it., tool: set_note,
     args: {tracking: "${inputs.tracking}", note: checked}, confirm: "Note TRK1?"}
  - {id: done, name: Done, description: Done., finish: true,
     message: "Noted ({{ (steps.note.output | length) + 'x' }})."}
"""


def test_a_conversation_that_fails_after_a_write_says_what_was_done():
    model = ScriptedModel([call("set_note", tracking="TRK1", note="checked")])
    agent = Agent(load_routine_text(BAD_MESSAGE, "note.yaml"), [FREIGHT], model)
    with agent.conversation(inputs={"tracking": "TRK1"}) as chat:
        chat.send("note TRK1")
        reply = chat.send("yes")
    assert reply.status == "failed"
    assert reply.text.endswith(  # before: only the failure, with the note written
        'What was done before that: set_note(tracking="TRK1", note="checked").')


ASK_THEN_ANSWER = """
name: rebook_on
description: Rebook a delivery on the day the customer asks for.
toolsets: [freight]
inputs:
  tracking: {type: string, description: the tracking number}
  day: {type: string, description: "the day to deliver on, YYYY-MM-DD"}
steps:
  - {id: ask, name: Ask the day, description: Ask which day., ask: "Which day suits you?",
     fills: [day]}
  - {id: book, name: Book, description: Book it., tool: book_redelivery,
     args: {tracking: "${inputs.tracking}", day: "${inputs.day}"}}
  - {id: done, name: Done, description: Say when., finish: true,
     answer: "Redelivery of {{ inputs.tracking }} on {{ inputs.day }}."}
"""


def test_the_answers_facts_are_added_after_a_question_the_user_answered():
    model = ScriptedModel([json.dumps({"day": None}), json.dumps({"day": "2026-03-12"}),
                           call("book_redelivery", tracking="TRK1", day="2026-03-12"),
                           "All booked!"])
    agent = Agent(load_routine_text(ASK_THEN_ANSWER, "rebook.yaml"), [FREIGHT], model,
                  answer_facts=True)
    with agent.conversation(inputs={"tracking": "TRK1"}) as chat:
        assert chat.send("Please redeliver TRK1").text == "Which day suits you?"
        done = chat.send("on 2026-03-12 please")
    # before: the question's mark stayed on the trace, and the facts were left out
    assert done.text == "All booked!\n\nRedelivery of TRK1 on 2026-03-12."
    assert chat.trace.asked == []


TRIAGE = """
name: triage
description: Send big claims to manual review.
toolsets: [freight]
inputs: {tracking: {type: string, description: the tracking number}}
steps:
  - {id: review, name: Review, description: Hand over., handoff: manual_review,
     args: {tracking: "${inputs.tracking}"}}
"""
REVIEW = """
name: manual_review
description: Note a claim for manual review.
toolsets: [freight]
inputs:
  tracking: {type: string, description: the tracking number}
  amount: {type: number, description: the claimed amount}
steps:
  - {id: note, name: Note, description: Note it., tool: set_note,
     args: {tracking: "${inputs.tracking}", note: "manual review"}}
  - {id: done, name: Done, description: Done., finish: true,
     message: "Your claim of {{ inputs.amount }} goes to review."}
"""


def test_a_hand_off_that_leaves_out_a_required_input_is_warned_and_itself_is_known():
    from routine.spec.validate import check_routine
    from routine.tools.core import ToolRegistry

    registry = ToolRegistry([FREIGHT])
    review = load_routine_text(REVIEW, "review.yaml")
    found: list = []
    problems = check_routine(load_routine_text(TRIAGE, "triage.yaml"), registry,
                             routines={"manual_review": review.routine}, warnings=found)
    assert problems == []
    assert [w.line for w in found] == [7]  # before: nothing said
    assert "requires input 'amount', which this hand-off does not pass" in found[0].message
    itself = TRIAGE.replace("handoff: manual_review", "handoff: triage")
    problems = check_routine(load_routine_text(itself, "triage.yaml"), registry, routines={})
    assert problems == []  # before: "'handoff' names no known routine: 'triage'"


def test_a_tool_registry_takes_a_list_as_agent_does_and_names_what_is_not_a_tool():
    from routine.errors import ToolDefinitionError
    from routine.tools.core import ToolRegistry

    assert "set_note" in ToolRegistry([FREIGHT]).names()  # before: a 3,000-character error
    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry({"a": 1})
    assert str(caught.value) == ("{'a': 1} (dict) is not callable: a tool is a function, a "
                                 "functools.partial or an object with __call__")


UNTIL = """
name: each_parcel
description: Record every parcel until the label is past 5.
toolsets: [freight]
inputs: {tracking: {type: string, description: the tracking number}}
steps:
  - {id: get, name: Get, description: Get it., tool: get_shipment,
     args: {tracking: "${inputs.tracking}"}}
  - id: each
    name: Each parcel
    description: Record each.
    for_each: ${steps.get.output.parcels}
    as: p
    until: "p.label > 5"
    steps:
      - {id: record, name: Record, description: Record it., tool: record_damage,
         args: {parcel_id: "${p.parcel_id}"}}
  - {id: done, name: Done, description: Done., finish: true, message: "Done."}
"""


def test_an_until_that_fails_is_said_as_the_loops_not_as_a_branch_the_model_chose():
    model = ScriptedModel([call("get_shipment", tracking="T")] +
                          [call("record_damage", parcel_id=p["parcel_id"]) for p in PARCELS])
    trace = Agent(load_routine_text(UNTIL, "each.yaml"), [FREIGHT], model).run(
        "record T", inputs={"tracking": "T"})
    assert trace.outcome == "answered" and len(trace.tool_calls) == 4
    assert trace.branch_errors["each"].startswith("until `p.label > 5`: TypeError")
    assert trace.branch_errors["each"].endswith("the loop went on through every item")


def test_guided_replies_leave_out_optional_parameters_the_routine_does_not_pass():
    from routine.models.guided import reply_schema

    claims = Toolset("claims", setup=contextlib.contextmanager(lambda: (yield [])))

    @claims.tool
    def open_claim(ctx: RunContext[list], tracking: str, reason: str = "") -> str:
        """Open a claim (an optional reason)."""
        ctx.deps.append(("claim", tracking, reason))
        return "opened"

    claim = """
name: claim
description: Open a claim.
toolsets: [claims]
inputs: {tracking: {type: string, description: the tracking number}}
steps:
  - {id: open, name: Open, description: Open it., tool: open_claim,
     args: {tracking: "${inputs.tracking}"}}
  - {id: done, name: Done, description: Done., finish: true, message: "Opened."}
"""
    model = ScriptedModel([call("open_claim", tracking="T")])
    Agent(load_routine_text(claim, "claim.yaml"), [claims], model, decoding="guided").run(
        "open a claim on T", inputs={"tracking": "T"})
    request = model.requests[0]
    schema = reply_schema(request.guide, request.tools)
    # before: the schema offered reason, and the 0.5B wrote one the user never gave
    assert set(schema["properties"]["arguments"]["properties"]) == {"tracking"}
