"""Bugs found by the sixth hostile-input round's conversation probe (a university's
student services: enrol, drop with confirmation, a transcript request that hands off to
payment): scripted doubles. Each test fails on the code before its fix."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.errors import RoutineError
from routine.models.testing import ScriptedModel, call
from routine.run.conversation import Conversation


class Office:
    """The registry's state for one conversation (what the tools changed)."""

    def __init__(self) -> None:
        self.enrolments = {1: (1001, "MA101"), 2: (1003, "CS101")}
        self.requests: list[int] = []
        self.payments: list[tuple[int, float]] = []


OFFICE: list[Office] = []


@contextlib.contextmanager
def _office():
    OFFICE.append(Office())
    yield OFFICE[-1]


uni = Toolset("uni", setup=_office)


@uni.tool
def find_enrolment(ctx: RunContext[Office], student_id: int, course_code: str) -> dict:
    """Find a student's enrolment in a course."""
    for enrolment_id, (student, code) in ctx.deps.enrolments.items():
        if (student, code) == (student_id, course_code):
            return {"enrolment_id": enrolment_id, "code": code}
    raise LookupError(f"student {student_id} is not enrolled in {course_code}")


@uni.tool
def drop_enrolment(ctx: RunContext[Office], enrolment_id: int) -> str:
    """Drop an enrolment."""
    del ctx.deps.enrolments[enrolment_id]
    return "dropped"


@uni.tool
def request_transcript(ctx: RunContext[Office], student_id: int) -> dict:
    """Open a transcript request."""
    ctx.deps.requests.append(student_id)
    return {"fee": 20.0}


@uni.tool
def take_payment(ctx: RunContext[Office], student_id: int, amount: float) -> dict:
    """Charge a student's account."""
    ctx.deps.payments.append((student_id, amount))
    return {"amount": amount, "payment_id": len(ctx.deps.payments)}


DROP = """
name: drop_course
description: Drop a course after the student confirms.
inputs:
  student_id: {type: integer, description: the student's id}
  course_code: {type: string, description: the course}
steps:
  - {id: find, name: Find the enrolment, description: Find it., tool: find_enrolment,
     args: {student_id: "${inputs.student_id}", course_code: "${inputs.course_code}"}}
  - id: drop
    name: Drop the course
    description: Drop the enrolment.
    tool: drop_enrolment
    args: {enrolment_id: "${steps.find.output.enrolment_id}"}
    confirm: "Drop {{ steps.find.output.code }} for student {{ inputs.student_id }}?"
  - {id: done, name: Answer, description: Say it is dropped., finish: true,
     message: "Done: {{ steps.find.output.code }} is dropped."}
"""

TRANSCRIPT = """
name: request_transcript
description: Request a transcript, then pass to payment.
inputs:
  student_id: {type: integer, description: the student's id}
steps:
  - {id: req, name: Request, description: Open the request., tool: request_transcript,
     args: {student_id: "${inputs.student_id}"}}
  - {id: pay, name: Pay, description: Hand over to payment., handoff: take_fee,
     args: {student_id: "${inputs.student_id}", amount: "${steps.req.output.fee}"}}
"""

TAKE_FEE = """
name: take_fee
description: Charge a fee after the student confirms.
inputs:
  student_id: {type: integer, description: the student's id}
  amount: {type: number, description: the amount}
steps:
  - id: charge
    name: Charge
    description: Charge the fee.
    tool: take_payment
    args: {student_id: "${inputs.student_id}", amount: "${inputs.amount}"}
    confirm: "Charge {{ inputs.amount }} to student {{ inputs.student_id }}?"
  - {id: done, name: Answer, description: Confirm the payment., finish: true,
     message: "Paid {{ steps.charge.output.amount }}."}
"""


def _routine(text: str) -> Any:
    return load_routine_text(text, "uni.yaml")


def test_with_the_contract_off_a_confirmed_write_waits_for_its_lookup():
    model = ScriptedModel([call("drop_enrolment", enrolment_id=2),  # the lookup skipped
                           call("find_enrolment", student_id=1001, course_code="MA101"),
                           call("drop_enrolment", enrolment_id=1)])
    agent = Agent(_routine(DROP), [uni], model, enforce_steps=False)
    with agent.conversation() as chat:
        first = chat.send("drop MA101 for student 1001")
        assert first.status == "waiting" and first.text == "Drop MA101 for student 1001?"
        refused = chat.trace.tool_calls[0]
        assert refused.error_kind == "off_routine" and "has not run yet" in refused.error
        done = chat.send("yes")
    assert done.text == "Done: MA101 is dropped."
    assert OFFICE[-1].enrolments == {2: (1003, "CS101")}  # student 1003's course is kept


def test_a_decline_after_an_unconfirmed_write_does_not_say_nothing_changed():
    model = ScriptedModel([call("request_transcript", student_id=1001),
                           call("take_payment", student_id=1001, amount=20.0)])
    fee = _routine(TAKE_FEE)
    agent = Agent(_routine(TRANSCRIPT), [uni], model)
    with agent.conversation(routines={"take_fee": fee}) as chat:
        asked = chat.send("a transcript for student 1001 please")
        assert asked.status == "waiting" and asked.routine == "take_fee"
        declined = chat.send("no")
    assert OFFICE[-1].requests == [1001]  # the request was made before the hand-off
    assert "Nothing was changed" not in declined.text
    assert "request_transcript(student_id=1001)" in declined.text


def test_a_handoff_target_the_conversation_lacks_is_an_error_before_anything_runs():
    model = ScriptedModel([call("request_transcript", student_id=1001)])
    agent = Agent(_routine(TRANSCRIPT), [uni], model)
    with pytest.raises(RoutineError, match="'take_fee'.*routines="):
        agent.conversation()
    assert not model.requests  # nothing ran: before, the request was written first


def test_a_conversation_saved_after_a_handoff_resumes_with_the_agent_it_began_with():
    fee = _routine(TAKE_FEE)
    agent = Agent(_routine(TRANSCRIPT), [uni], ScriptedModel([
        call("request_transcript", student_id=1001),
        call("take_payment", student_id=1001, amount=20.0)]))
    with agent.conversation(routines={"take_fee": fee}) as chat:
        chat.send("a transcript for student 1001 please")
        saved = chat.trace
    assert saved is not None and saved.routine == "take_fee" and saved.outcome == "waiting"
    again = Agent(_routine(TRANSCRIPT), [uni], ScriptedModel([]))
    with Conversation(again, routines={"take_fee": fee}, trace=saved) as chat:
        paid = chat.send("yes")  # RoutineError before: the trace is of another routine
    assert paid.text == "Paid 20.0." and OFFICE[-1].payments == [(1001, 20.0)]


def test_a_trace_does_not_resume_under_an_edited_routine():
    model = ScriptedModel([call("find_enrolment", student_id=1001, course_code="MA101"),
                           call("drop_enrolment", enrolment_id=1)])
    agent = Agent(_routine(DROP), [uni], model)
    with agent.conversation() as chat:
        chat.send("drop MA101 for student 1001")
        saved = chat.trace
    edited = Agent(_routine(DROP.replace("id: drop\n", "id: drop_it\n")), [uni],
                   ScriptedModel([]))
    with pytest.raises(RoutineError, match="has changed since this trace was saved"):
        with Conversation(edited, trace=saved) as chat:
            chat.send("yes")
    same = Agent(_routine(DROP), [uni], ScriptedModel([]))
    with Conversation(same, trace=saved) as chat:
        assert chat.send("yes").text == "Done: MA101 is dropped."
