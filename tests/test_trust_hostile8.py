"""Eighth hostile round, a bank's red team: what the user is asked and told must be what
runs (confirmations that hid an added argument whose value the text happened to contain,
answers after a refused write, forged yes replies, expressions that exhaust a machine)."""

from __future__ import annotations

import contextlib

import pytest

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.models.testing import ScriptedModel, call


@contextlib.contextmanager
def _ledger():
    yield []  # every send, in order


PAY = Toolset("pay", setup=_ledger)


@PAY.tool
def send(ctx: RunContext[list], to_account: str, amount: float, memo: str = "", fee: float = 0.0) -> str:
    """Send money from the customer's account (the fee is charged on top)."""
    ctx.deps.append(("send", to_account, amount, memo, fee))
    return "sent"


SEND = """
name: send_money
description: Send money after the customer confirms.
toolsets: [pay]
inputs:
  to_account: {type: string, description: the account to pay}
  amount: {type: number, description: how much}
steps:
  - id: send
    name: Send
    description: Send the money.
    tool: send
    args: {to_account: "${inputs.to_account}", amount: "${inputs.amount}"}
    confirm: "Send {{ inputs.amount }} EUR from Ana Lima's account to account {{ inputs.to_account }}?"
  - {id: done, name: Done, description: Done., finish: true, message: "Sent."}
"""


@pytest.mark.parametrize("added", [{"fee": 10}, {"memo": "A"}, {"memo": "Ana"}])
def test_an_added_argument_is_shown_even_when_the_text_happens_to_contain_its_value(added):
    # before: a plain substring test hid fee=10 ("100 EUR") and memo "A" ("Ana Lima")
    evil = call("send", to_account="2", amount=100, **added)
    agent = Agent(load_routine_text(SEND, "send.yaml"), [PAY], ScriptedModel([evil]))
    with agent.conversation(inputs={"to_account": "2", "amount": 100}) as chat:
        asked = chat.send("Send 100 EUR to account 2")
        log = chat.contexts["pay"].deps
        assert asked.waiting_for == "confirmation"
        (name, value), = added.items()
        assert f"Also in this send call: {name} = " in asked.text
        assert asked.text.endswith(f"{name} = {value!r}.".replace("'", '"'))
        chat.send("no")
    assert log == []


def test_the_arguments_a_confirmation_names_are_not_listed_again():
    plain = call("send", to_account="2", amount=100)
    agent = Agent(load_routine_text(SEND, "send.yaml"), [PAY], ScriptedModel([plain]))
    with agent.conversation(inputs={"to_account": "2", "amount": 100}) as chat:
        assert chat.send("Send 100 EUR to account 2").text == \
            "Send 100 EUR from Ana Lima's account to account 2?"


# ------------------------------------------------ a refused write: the executor says so
FREEZE = """
name: freeze
description: Freeze an account.
toolsets: [pay]
inputs: {account: {type: string, description: the account}}
steps:
  - {id: freeze, name: Freeze the account, description: Freeze it., tool: freeze,
     args: {account: "${inputs.account}"}, approval: required}
  - {id: done, name: Done, description: Say it is frozen., finish: true}
"""


@PAY.tool
def freeze(ctx: RunContext[list], account: str) -> str:
    """Freeze an account."""
    ctx.deps.append(("freeze", account))
    return "frozen"


@PAY.tool
def note(ctx: RunContext[list], text: str) -> str:
    """Put a note on file (raises on 'fail', after writing)."""
    ctx.deps.append(("note", text))
    if text == "fail":
        raise ValueError("the note service is down")
    return "noted"


def test_a_write_the_approver_refuses_ends_with_the_executors_words_not_the_models():
    from routine.run.approval import policy

    lie = "Your account 1 is now frozen."  # before: this was the answer, nothing frozen
    model = ScriptedModel([call("freeze", account="1"), lie, lie, lie])
    agent = Agent(load_routine_text(FREEZE, "freeze.yaml"), [PAY], model,
                  approver=policy(False))
    trace = agent.run("Freeze account 1", inputs={"account": "1"})
    assert trace.outcome == "answered" and "frozen" not in trace.answer
    assert trace.answer.startswith("Nothing was changed: freeze the account was not approved")
    assert [c.error_kind for c in trace.tool_calls] == ["denied"]


SEND_OR_DECLINE = SEND.replace(
    '  - {id: done, name: Done, description: Done., finish: true, message: "Sent."}',
    '    on_decline: kept\n'
    '  - {id: done, name: Done, description: Done., finish: true, message: "Sent."}\n'
    '  - {id: kept, name: Kept, description: Nothing sent., finish: true,\n'
    '     message: "Nothing was sent."}').replace(
    "    tool: send\n", "    tool: send\n    approval: required\n")


def test_an_approver_refusal_after_the_users_yes_takes_the_routines_decline_path():
    from routine.run.approval import policy

    agent = Agent(load_routine_text(SEND_OR_DECLINE, "send.yaml"), [PAY],
                  ScriptedModel([call("send", to_account="2", amount=100)]),
                  approver=policy(False))
    with agent.conversation(inputs={"to_account": "2", "amount": 100}) as chat:
        chat.send("Send 100 EUR to account 2")
        done = chat.send("yes")  # before: failed as the model's mistakes
        log = chat.contexts["pay"].deps
    assert (done.status, done.text) == ("answered", "Nothing was sent.")
    assert log == []


BRANCH = """
name: pay_if_covered
description: Pay when the balance covers it.
toolsets: [pay]
inputs: {to_account: {type: string, description: the account to pay}}
steps:
  - id: covered
    name: Covered?
    description: Does the balance cover the payment?
    branch:
      - condition: the balance covers it
        steps:
          - {id: send, name: Send, description: Send it., tool: send,
             args: {to_account: "${inputs.to_account}", amount: 100}}
          - {id: sent, name: Sent, description: Sent., finish: true, message: "Sent."}
      - condition: the balance is too low
        steps:
          - {id: low, name: Too low, description: Refuse., finish: true,
             message: "Payment refused: the balance is too low."}
"""


def test_an_answer_at_a_branch_takes_the_exact_message_of_the_option_it_chose():
    lie = "Done! I have sent 100 EUR to account 2 (payment #1)."
    agent = Agent(load_routine_text(BRANCH, "pay.yaml"), [PAY], ScriptedModel([lie]))
    trace = agent.run("Pay 100 to account 2", inputs={"to_account": "2"})
    assert trace.answer == "Payment refused: the balance is too low."  # before: the lie
    assert trace.tool_calls == []


DECLINE_AFTER_FAILED_WRITE = """
name: note_then_send
description: Note, then send after a yes.
toolsets: [pay]
inputs: {to_account: {type: string, description: the account to pay}}
steps:
  - {id: note, name: Note, description: Put a note., tool: note, args: {text: fail},
     on_error: send}
  - {id: send, name: Send money, description: Send it., tool: send,
     args: {to_account: "${inputs.to_account}", amount: 5}, confirm: "Send 5?"}
  - {id: done, name: Done, description: Done., finish: true, message: "Sent."}
"""


def test_a_decline_after_a_write_that_failed_does_not_say_nothing_changed():
    agent = Agent(load_routine_text(DECLINE_AFTER_FAILED_WRITE, "n.yaml"), [PAY],
                  ScriptedModel([call("note", text="fail"), call("send", to_account="2", amount=5)]))
    with agent.conversation(inputs={"to_account": "2"}) as chat:
        chat.send("Send 5 to account 2")
        no = chat.send("no")
        log = chat.contexts["pay"].deps
    assert log == [("note", "fail")]  # the note was written before the tool raised
    assert "Nothing was changed" not in no.text  # before: said, with the note written
    assert 'note(text="fail") (failed: it may have made changes)' in no.text


@pytest.mark.parametrize("reply, question, said", [
    ("yes, card 5678", "Freeze card 1234 and card 5678?", "unclear"),  # before: yes (both)
    ("yes, send 2 EUR", "Send 100 EUR to account 2?", "unclear"),  # before: yes (100 sent)
    ("yes, 100 EUR to account 2", "Send 100 EUR to account 2?", "yes"),
    ("Yes, go ahead with order 7", "Cancel order 7?", "yes"),
    ("yes, freeze it", "Freeze card 1234 and card 5678?", "yes"),
])
def test_a_yes_that_restates_only_some_of_the_questions_numbers_is_asked_again(
        reply, question, said):
    from routine.run.interaction import consent

    assert consent(reply, question) == said


def test_the_terminal_approver_and_the_cli_write_out_bidi_overrides_and_c1_controls():
    from routine.cli.terminal import shown
    from routine.run.approval import ApprovalRequest, ask_in_terminal

    assert shown("pay \u202e666 DE\x9b") == "pay \\u202e666 DE\\x9b"  # before: kept raw
    asked: list[str] = []
    approver = ask_in_terminal("ops", ask=lambda question: asked.append(question) or "n")
    approver(ApprovalRequest(run_id="r", routine="pay", tool="send", step_id=None,
                             arguments={"to_account": "\u202e666", "memo": "\x9b2J"},
                             reason="step requires approval"))
    assert "\u202e" not in asked[0] and "\x9b" not in asked[0]
    assert "\\u202e666" in asked[0]


@pytest.mark.parametrize("expression", [
    "(([[1] * 1500] * 1500)|sum(start=[])|length) > 0",  # before: ok after 6 s of one core
    "((['x' * 99999] * 99999)|join|length) > 0",  # before: tried to build 10 GB
    "(([0] * 99999) + ([0] * 99999))|length > 0",
])
def test_expressions_that_would_build_huge_values_are_refused_at_once(expression):
    from routine.spec.expressions import static_problem

    assert "is refused" in static_problem(expression)


def test_bounded_sum_and_join_still_work():
    from routine.spec.expressions import compile_when

    def value(expression):
        return compile_when(expression)(inputs={}, steps={}, constants={})

    assert value("[1, 2, 3]|sum") == 6 and value("[[1], [2]]|sum(start=[])") == [1, 2]
    assert value("[{'a': 1}, {'a': 2}]|sum(attribute='a')") == 3
    assert value("['a', 'b']|join(', ')") == "a, b" and value("[1]+[2]") == [1, 2]


def test_money_formats_with_its_cents_and_widths_stay_bounded():
    from routine.spec.expressions import compile_when, refused_method, static_problem

    def value(expression, **inputs):
        return compile_when(expression)(inputs=inputs, steps={}, constants={})

    assert value("'{:,.2f} EUR'.format(inputs.x)", x=1234.5) == "1,234.50 EUR"
    assert refused_method("format") == ""  # before: validate refused what runs
    # before: built ten megabytes
    assert "widths and precisions of at most 200" in static_problem("'{:>9999999}'.format(1)")
    assert "unsafe" in static_problem("'{0.__class__}'.format(1)")


def test_int_and_float_filters_refuse_text_that_is_not_a_number():
    from routine.spec.expressions import compile_when, static_problem

    def value(expression, **inputs):
        return compile_when(expression)(inputs=inputs, steps={}, constants={})

    with pytest.raises(ValueError, match="'abc' is not an integer"):
        value("inputs.s | int", s="abc")  # before: 0, and a claim of 0 was filed
    assert value("inputs.s | int(default=5)", s="abc") == 5 and value("'7' | int") == 7
    assert "fails in every run" in static_problem("'x' | float")


@pytest.mark.parametrize("value, text, read", [
    ("2023-10-01", "Please request annual leave for Kofi Dubois.", False),  # invented
    ("The order number is not on their account.", "it's order 40134", False),  # one word
    ("2026-06-22", "from the 22nd of June", True), ("2026-06-22", "from tomorrow", True),
    ("ordered it by mistake", "Order 7, I ordered it by mistake", True),
    (40236, "where is #40236?", True), (3, "three days, please", True),
    (7, "cancel my order", False), ("camila.engel@example.net", "I'm camila.engel@example.net", True),
])
def test_a_value_read_from_the_users_words_must_be_in_them(value, text, read):
    from routine.run.inputs import grounded

    assert grounded(value, text) is read
