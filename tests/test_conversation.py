"""Conversations: ask the user, confirm before writing, loop over items, fail over, compute,
finish with an exact message, resume from a trace — with scripted model doubles."""

from __future__ import annotations

import json

import pytest

from routine import Agent, load_routine_text
from routine.models.testing import ScriptedModel, call
from routine.run.interaction import is_yes
from routine.run.trace import dump_traces, load_traces
from routine.tools.core import ToolRegistry
from tests.shop import CANCEL, shop

ROUTINE = load_routine_text(CANCEL, "cancel.yaml")


def extracted(**values: object) -> str:
    """What a model replies to an inputs turn: the values as JSON (null: not stated)."""
    return json.dumps(values)


def agent(replies: list) -> Agent:
    return Agent(ROUTINE, ToolRegistry(shop), ScriptedModel(replies))


FIND_TO_CANCEL = [
    call("find_by_email", email="ana@example.com"),
    call("get_order", order_id=7),
    call("check_stock", product_id=11),
    call("check_stock", product_id=12),
    call("cancel_order", order_id=7, reason="ordered it by mistake"),
]


def test_a_conversation_asks_confirms_loops_computes_and_finishes_with_its_message():
    model_replies = [
        extracted(order_id=None, reason=None),                     # the request has neither
        extracted(order_id=7, reason="ordered it by mistake"),     # the reply has both
        *FIND_TO_CANCEL,
        call("refund", order_id=7, amount=25.0),
    ]
    chat = agent(model_replies).conversation()
    with chat:
        first = chat.send("I want to cancel an order. My email is ana@example.com")
        assert (first.status, first.waiting_for) == ("waiting", "inputs")
        assert first.text == "Which order would you like to cancel, and why?"
        second = chat.send("Order 7, I ordered it by mistake")
        assert (second.status, second.waiting_for) == ("waiting", "confirmation")
        assert second.text == ("I will cancel order 7 for Ana Lima and refund 25.0. Shall I go "
                               "ahead?")
        store = chat.contexts["shop"].deps
        assert store.orders[7].status == "pending"  # nothing written before the yes
        third = chat.send("Yes please, go ahead")
        assert (third.status, third.text) == ("answered",
                                             "Order 7 is cancelled; 25.0 will be refunded.")
    trace = third.trace
    assert store.orders[7].status == "cancelled" and store.refunds == [(7, 25.0)]
    assert store.log == ["stock 11", "stock 12", "cancel 7: ordered it by mistake"]
    assert trace.tool_sequence == ["find_by_email", "get_order", "check_stock", "check_stock",
                                   "cancel_order", "refund"]
    (cancel,) = [c for c in trace.tool_calls if c.name == "cancel_order" and c.ok]
    assert cancel.approval is not None and cancel.approval.approved
    assert (cancel.approval.by, cancel.approval.reason) == ("user", "Yes please, go ahead")
    assert trace.said == ["I want to cancel an order. My email is ana@example.com",
                          "Order 7, I ordered it by mistake", "Yes please, go ahead"]
    kinds = [t.kind for t in trace.turns]
    assert kinds.count("ask") == 1 and kinds.count("confirm") == 1 and kinds[-1] == "message"
    assert trace.steps_done[-1] == "done"
    loop = [d for d in trace.steps_done if d in ("each_item", "stock")]
    assert loop == ["stock", "stock", "each_item"]


def test_declining_writes_nothing_and_goes_where_the_routine_says():
    replies = [extracted(order_id=7, reason="ordered it by mistake"), *FIND_TO_CANCEL]
    with agent(replies).conversation() as chat:
        first = chat.send("Cancel order 7 please, I ordered it by mistake. ana@example.com")
        assert first.waiting_for == "confirmation"  # nothing asked: the request said it all
        reply = chat.send("No, wait, keep it")
        store = chat.contexts["shop"].deps
    assert (reply.status, reply.text) == ("answered",
                                          "Nothing was changed: order 7 stays as it is.")
    assert store.orders[7].status == "pending" and store.refunds == []
    (declined,) = [c for c in reply.trace.tool_calls if c.error_kind == "denied"]
    assert declined.approval is not None and not declined.approval.approved
    assert declined.approval.reason == "No, wait, keep it"


def test_a_question_at_a_confirmation_is_not_a_yes_it_asks_again():
    replies = [extracted(order_id=7, reason="ordered it by mistake"), *FIND_TO_CANCEL,
               call("refund", order_id=7, amount=25.0)]
    with agent(replies).conversation() as chat:
        asked = chat.send("Cancel order 7 please, I ordered it by mistake. ana@example.com")
        again = chat.send("Is that the correct amount?")
        store = chat.contexts["shop"].deps
        assert (again.status, again.waiting_for) == ("waiting", "confirmation")
        assert again.text == "I need a clear yes or no before I go on. " + asked.text
        assert store.orders[7].status == "pending"  # nothing written on a question
        done = chat.send("yes")
    assert store.orders[7].status == "cancelled"
    (cancel,) = [c for c in done.trace.tool_calls if c.name == "cancel_order" and c.ok]
    assert cancel.approval is not None and cancel.approval.reason == "yes"


def test_questions_until_the_limit_decline():
    replies = [extracted(order_id=7, reason="ordered it by mistake"), *FIND_TO_CANCEL]
    with agent(replies).conversation() as chat:
        chat.send("Cancel order 7 please, I ordered it by mistake. ana@example.com")
        for question in ("Why?", "Are you sure?"):
            assert chat.send(question).waiting_for == "confirmation"
        last = chat.send("y is it 25?")
        store = chat.contexts["shop"].deps
    assert last.status == "answered" and store.orders[7].status == "pending"
    (declined,) = [c for c in last.trace.tool_calls if c.error_kind == "denied"]
    assert declined.approval is not None and declined.approval.reason == "y is it 25?"


def test_a_failed_lookup_fails_over_and_the_paths_rejoin():
    replies = [
        extracted(order_id=7, reason="wrong size"),
        call("find_by_email", email="zed@example.com"),            # no such customer
        extracted(name=None, zip=None),
        extracted(name="Ana Lima", zip="1000"),
        call("find_by_name", name="Ana Lima", zip="1000"),
        call("get_order", order_id=7),
        call("check_stock", product_id=11),
        call("check_stock", product_id=12),
        call("cancel_order", order_id=7, reason="wrong size"),
    ]
    with agent(replies).conversation() as chat:
        first = chat.send("Cancel order 7, wrong size. I'm zed@example.com")
        assert first.text == "I could not find that email. What are your full name and zip code?"
        second = chat.send("Ana Lima, zip 1000")
    # the confirmation reads ${vars.customer}: set by the fallback step, not the failed one
    assert second.text.startswith("I will cancel order 7 for Ana Lima")
    trace = second.trace
    assert "find_by_email" not in trace.steps_done and "find_by_name" in trace.steps_done
    (failed,) = [c for c in trace.tool_calls if c.name == "find_by_email"]
    assert "on_error" in (failed.error or "") and failed.error_kind == "tool_error"


def test_a_waiting_conversation_resumes_from_its_trace(tmp_path):
    first_agent = agent([extracted(order_id=None, reason=None)])
    with first_agent.conversation() as chat:
        reply = chat.send("I want to cancel an order. My email is ana@example.com")
    assert reply.status == "waiting" and reply.trace.state is not None
    dump_traces([reply.trace], tmp_path / "t.jsonl")
    (saved,) = load_traces(tmp_path / "t.jsonl")
    later = agent([extracted(order_id=8, reason="too slow"),
                   call("find_by_email", email="ana@example.com"), call("get_order", order_id=8),
                   call("cancel_order", order_id=8, reason="too slow")])
    with later.conversation(trace=saved) as chat:
        reply = chat.send("Order 8, it is too slow")
        assert chat.trace is not None and chat.trace.run_id == saved.run_id
    # order 8 has no items: the loop runs zero times; the refund is its total minus the fee
    assert reply.waiting_for == "confirmation"
    assert reply.text == "I will cancel order 8 for Ana Lima and refund 0.0. Shall I go ahead?"
    assert reply.trace.inputs["order_id"] == 8
    assert reply.trace.said == ["I want to cancel an order. My email is ana@example.com",
                                "Order 8, it is too slow"]
    # the loaded trace stays as it was read (it was changed in place: resuming it twice
    # went on from the second state)
    assert saved.outcome == "waiting" and saved.said == [
        "I want to cancel an order. My email is ana@example.com"]


def test_outside_a_conversation_a_question_ends_the_run_waiting():
    trace = agent([extracted(order_id=None, reason=None)]).run(
        "I want to cancel an order. My email is ana@example.com")
    assert trace.outcome == "waiting" and trace.asked == ["order_id", "reason"]
    assert trace.answer == "Which order would you like to cancel, and why?"


@pytest.mark.parametrize("text,yes", [
    ("yes", True), ("Yes please", True), ("ok, go ahead", True), ("sure", True),
    ("confirm", True), ("yes, cancel it", True),
    ("no", False), ("not yet", False), ("wait", False), ("yes... actually no", False),
    ("hmm, maybe", False), ("what will it cost?", False), ("I don't want that", False),
    ("", False), ("Is that the correct amount?", False), ("Are you sure?", False),
    ("y is it 500?", False), ("Where does the money go?", False),
])
def test_only_an_explicit_yes_confirms(text, yes):
    assert is_yes(text, "I will cancel order 7 and refund 25.0. Shall I go ahead?") is yes


def test_a_long_result_shows_its_fields_and_a_path_into_it_is_an_argument():
    from routine.run.memory import VariableMemory

    memory = VariableMemory(threshold=10)
    order = {"order_id": 7, "items": [{"product_id": 11}, {"product_id": 12}], "total": 30}
    entry = memory.store(order, json.dumps(order), "get_order")
    assert "Fields: order_id, items[].{product_id}, total" in memory.shown(entry)
    assert memory.substitute({"p": "memory_1.items.1.product_id", "o": "memory_1",
                              "x": "memory_1.nope"}) == {"p": 12, "o": order,
                                                         "x": "memory_1.nope"}


BOUNDED = """
name: pick_a_day
description: Ask for a day until the user gives one the calendar has.
toolsets: [shop]
inputs:
  order_id: {type: integer, description: the order number}
steps:
  - id: ask
    name: Ask for the order
    description: Ask for the order number.
    ask: "Which order?"
    fills: [order_id]
    max_visits: 2
  - id: look
    name: Look it up
    description: Get the order.
    tool: get_order
    args: {order_id: "${inputs.order_id}"}
    on_error: retry
  - id: done
    name: Answer
    description: Say the status.
    finish: true
    message: "Order {{ steps.look.output.order_id }} is {{ steps.look.output.status }}."
  - id: retry
    name: Try again
    description: The order was not found.
    branch:
      - condition: ask again
        when: "true"
        next: ask
"""


def test_a_bounded_loop_back_stops_at_its_visit_limit():
    routine = load_routine_text(BOUNDED, "b.yaml")
    replies = [call("get_order", order_id=99), extracted(order_id=98),
               call("get_order", order_id=98)]
    chat = Agent(routine, ToolRegistry(shop), ScriptedModel(replies)).conversation(
        inputs={"order_id": 99})
    with chat:
        reply = chat.send("What is the status of order 99?")
        # 99 fails over to retry -> back to ask (visit 2 of 2): asked anew, 99 forgotten
        assert reply.status == "waiting" and reply.text == "Which order?"
        assert "order_id" not in reply.trace.inputs
        reply = chat.send("Sorry, it is 98")
    # 98 fails too -> back to ask a third time: past max_visits, the run ends
    assert reply.status == "failed" and reply.trace.failure_kind == "routine_limit"
    assert "max_visits" in (reply.trace.failure or "")


def test_a_handoff_passes_the_conversation_with_its_inputs():
    first = load_routine_text("""
name: triage
description: Find the customer, then pass to cancellation.
toolsets: [shop]
inputs:
  email: {type: string, description: "the customer's email"}
steps:
  - id: find
    name: Find the customer
    description: Find the customer by email.
    tool: find_by_email
    args: {email: "${inputs.email}"}
  - id: pass
    name: Pass on
    description: Hand over to cancellations.
    handoff: cancel_with_refund
""", "triage.yaml")
    replies = [call("find_by_email", email="ana@example.com"),
               extracted(order_id=None, reason=None)]
    model = ScriptedModel(replies)
    chat = Agent(first, ToolRegistry(shop), model).conversation(
        routines={"cancel_with_refund": ROUTINE}, inputs={"email": "ana@example.com"})
    with chat:
        reply = chat.send("I need to cancel something")
    assert [t.routine for t in chat.traces] == ["triage", "cancel_with_refund"]
    assert chat.traces[0].outcome == "handed_off"
    assert chat.traces[0].handoff is not None
    assert chat.traces[0].handoff.inputs["email"] == "ana@example.com"
    assert reply.routine == "cancel_with_refund" and reply.text.startswith("Which order")
    assert chat.traces[1].inputs["email"] == "ana@example.com"


def test_routines_handing_a_message_round_in_a_circle_end_not_hang():
    ping, pong = (load_routine_text(f"""
name: {a}
description: Hand over to {b}.
steps:
  - {{id: pass, name: Pass on, description: Hand over., handoff: {b}}}
""", f"{a}.yaml") for a, b in (("ping", "pong"), ("pong", "ping")))
    # pong hands back to ping, which the conversation began with: known without being listed
    chat = Agent(ping, ToolRegistry(shop), ScriptedModel([])).conversation(
        routines={"pong": pong})
    with chat:
        reply = chat.send("hi")  # looped forever before, traces piling up
    assert reply.status == "failed" and len(chat.traces) == 6
    assert "5 hand-offs without waiting for the user: ping → pong → ping" in reply.text


@pytest.mark.parametrize("reply,values", [
    ('{"order_id": 7}', {"order_id": 7}),
    ("```json\n{\"order_id\": 7, \"reason\": null}\n```", {"order_id": 7, "reason": None}),
    ("order_id: 7", {"order_id": 7}),                    # what the 0.5B wrote
    ('- order_id: 7\n- reason: "by mistake"', {"order_id": 7, "reason": "by mistake"}),
    ("I do not know.", None),
])
def test_input_values_are_read_from_what_small_models_write(reply, values):
    from routine.run.inputs import _read

    assert _read(reply, []) == values


def test_a_reply_is_read_with_the_question_it_answers():
    replies = [extracted(order_id=None, reason=None),
               extracted(order_id=7, reason="ordered it by mistake")]
    model = ScriptedModel(replies + FIND_TO_CANCEL)
    with Agent(ROUTINE, ToolRegistry(shop), model).conversation() as chat:
        chat.send("I want to cancel an order. My email is ana@example.com")
        chat.send("Order 7, it is late")
    second = model.requests[1].messages
    assert [type(m).__name__ for m in second[1:]] == ["AssistantMessage", "UserMessage",
                                                      "SystemMessage"]
    assert second[1].content == "Which order would you like to cancel, and why?"
    assert second[2].content == "Order 7, it is late"  # only the reply, not the request again


# ------------------------------------------------ inputs the user stated but no ask read
HELPDESK = """
name: open_ticket
description: Open a support ticket for a user.
toolsets: [desk]
inputs:
  email: {type: string, description: "the user's email"}
  summary: {type: string, description: what is wrong}
  team: {type: string, description: the team the user is in}
steps:
  - id: find_user
    name: Find the user
    description: Look the user up by email.
    tool: find_user
    args: {email: "${inputs.email}"}
  - id: open
    name: Open the ticket
    description: Open the ticket.
    tool: open_desk_ticket
    args: {user_id: "${steps.find_user.output.id}", summary: "${inputs.summary}"}
    confirm: "Open a ticket for {{ steps.find_user.output.name }}: {{ inputs.summary }}?"
  - id: done
    name: Done
    description: Tell the user.
    finish: true
    message: "Ticket {{ steps.open.output.ticket }} is open for {{ inputs.email }} ({{ inputs.team }})."
"""


def _desk():
    from routine import Toolset

    desk = Toolset("desk")
    opened: list[str] = []

    @desk.tool
    def find_user(email: str) -> dict:
        """Find a user by email."""
        return {"id": 3, "name": "Ana Lima", "email": email}

    @desk.tool
    def open_desk_ticket(user_id: int, summary: str) -> dict:
        """Open a ticket."""
        opened.append(summary)
        return {"ticket": 41}

    return desk, opened


def test_inputs_a_call_carried_fill_the_confirmation_and_the_final_message():
    desk, opened = _desk()
    routine = load_routine_text(HELPDESK, "open_ticket.yaml")
    model = ScriptedModel([call("find_user", email="ana@example.com"),
                           call("open_desk_ticket", user_id=3, summary="VPN is down")],
                          inputs={"team": "Finance"})  # the one input no call carries
    with Agent(routine, ToolRegistry(desk), model).conversation() as chat:
        asked = chat.send("I am ana@example.com, the VPN is down. I'm in Finance.")
        # the author's text, with the summary the call carries (the generic text before)
        assert asked.text == "Open a ticket for Ana Lima: VPN is down?"
        done = chat.send("yes")
    # failed before: 'dict object' has no attribute 'email', after the ticket was written
    assert (done.status, done.text) == ("answered",
                                        "Ticket 41 is open for ana@example.com (Finance).")
    assert opened == ["VPN is down"]


def test_a_final_message_that_cannot_be_written_leaves_the_answer_to_the_model():
    desk, opened = _desk()
    routine = load_routine_text(HELPDESK, "open_ticket.yaml")
    model = ScriptedModel([call("find_user", email="ana@example.com"),
                           call("open_desk_ticket", user_id=3, summary="VPN is down"),
                           "Ticket 41 is open."], inputs={})  # the team never stated
    with Agent(routine, ToolRegistry(desk), model).conversation() as chat:
        chat.send("ana@example.com: the VPN is down")
        done = chat.send("yes")
    trace = done.trace  # it failed after the write before
    assert (trace.outcome, trace.answer) == ("answered", "Ticket 41 is open.")
    (note,) = [t for t in trace.turns if t.kind == "message"]
    assert "needs a value the run does not have" in (note.feedback or "") and opened


@pytest.mark.parametrize("items,says", [
    ("abc", 'is str "abc"'), ({"a": 1}, "is dict"), (5, "is int 5"),
])
def test_a_for_each_over_what_is_not_a_list_stops_the_routine_saying_why(items, says):
    from routine.run.tracking import StepTracker

    tracker = StepTracker(ROUTINE.routine, {"email": "a@b.c", "order_id": 7, "reason": "r"})
    tracker.complete()  # the ask step: answered
    tracker.record("find_by_email", {"id": 1, "name": "Ana"})
    tracker.record("get_order", {"items": items, "total": 30.0})
    # it ran zero times, silently, before: the run answered "checked 0 items"
    assert tracker.stopped is not None and tracker.finished
    assert "step each_item: for_each needs a list" in tracker.stopped and says in tracker.stopped


def test_a_for_each_over_nothing_found_runs_no_times():
    from routine.run.tracking import StepTracker

    tracker = StepTracker(ROUTINE.routine, {"email": "a@b.c", "order_id": 7, "reason": "r"})
    tracker.complete()
    tracker.record("find_by_email", {"id": 1, "name": "Ana"})
    tracker.record("get_order", {"items": None, "total": 30.0})
    assert tracker.stopped is None and tracker.step is not None and tracker.step.id == "cancel"


REFUND_EACH = """
name: refund_each
description: Refund every item of an order, each after the customer's yes.
toolsets: [shop]
inputs:
  order_id: {type: integer, description: the order number}
steps:
  - id: get_order
    name: Get the order
    description: Get the order with its items.
    tool: get_order
    args: {order_id: "${inputs.order_id}"}
  - id: each
    name: Each item
    description: Refund each item.
    for_each: ${steps.get_order.output.items}
    as: item
    steps:
      - id: pay
        name: Refund the item
        description: Refund the item's price.
        tool: refund
        args: {order_id: "${inputs.order_id}", amount: "${item.price}"}
        confirm: "Refund {{ item.price }} for the {{ item.name }}?"
  - {id: done, name: Done, description: Say so., finish: true, message: "All refunded."}
"""


def test_a_decline_after_a_confirmed_write_says_what_was_already_done():
    routine = load_routine_text(REFUND_EACH, "refund_each.yaml")
    model = ScriptedModel([call("get_order", order_id=7), call("refund", order_id=7, amount=10.0),
                           call("refund", order_id=7, amount=20.0)])
    with Agent(routine, ToolRegistry(shop), model).conversation(inputs={"order_id": 7}) as chat:
        assert chat.send("refund my order").text == "Refund 10.0 for the mug?"
        assert chat.send("yes").text == "Refund 20.0 for the lamp?"
        last = chat.send("no")
        store = chat.contexts["shop"].deps
    assert store.refunds == [(7, 10.0)]
    # "Nothing was changed" before, with the mug's refund made
    assert last.text == ("Stopped: refund the item was not confirmed, so it was not done. "
                         "What ran before that: get_order(order_id=7); "
                         "refund(order_id=7, amount=10.0).")


def test_a_question_never_answered_fails_saying_why_not_repeating_it():
    model = ScriptedModel([], inputs={})  # the user never says which order
    with agent_for_asks(model).conversation() as chat:
        replies = [chat.send(text) for text in ("cancel something", "hmm", "dunno", "no idea")]
    last = replies[-1]
    # text was the question, status failed, before: the terminal showed it in red
    assert last.status == "failed" and "Which order" not in last.text
    assert last.text.startswith("Sorry, I could not finish this: step ask_order: asked 3 times")


def agent_for_asks(model: ScriptedModel) -> Agent:
    return Agent(ROUTINE, ToolRegistry(shop), model)


def test_a_compute_that_overflows_stops_the_routine():
    from routine.run.tracking import StepTracker

    text = CANCEL.replace('"steps.get_order.output.total - constants.fee"',
                          '"steps.get_order.output.total * 1.0e308 * 10"')
    tracker = StepTracker(load_routine_text(text, "c.yaml").routine,
                          {"email": "a@b.c", "order_id": 7, "reason": "r"})
    tracker.complete()
    tracker.record("find_by_email", {"id": 1, "name": "Ana"})
    tracker.record("get_order", {"items": [], "total": 30.0})
    # inf was accepted before, and the next step demanded "amount": Infinity
    assert tracker.stopped == "step amounts: amount = inf (the number overflowed)"
