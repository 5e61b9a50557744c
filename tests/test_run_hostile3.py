"""Run-time hostile inputs, third round (a bank's card desk, not the bundled samples):
consent, confirmations with the contract off, loops that repeat one call, lookups that
find nothing, tool errors that cannot be read, closed conversations — scripted doubles."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from routine import Agent, RoutineError, RunContext, Toolset, load_routine_text
from routine.models.base import ModelReply
from routine.models.guided import reply_schema
from routine.models.testing import ScriptedModel, call
from routine.run.approval import policy
from routine.run.interaction import consent, is_yes


@dataclass
class Bank:
    cards: dict[int, dict[str, str]] = field(default_factory=lambda: {
        10: {"last4": "1234", "status": "active"}, 11: {"last4": "9999", "status": "active"}})
    log: list[str] = field(default_factory=list)
    seen: list[tuple[str, dict[str, object]]] = field(default_factory=list)


@contextlib.contextmanager
def fresh_bank() -> Iterator[Bank]:
    yield Bank()


bank = Toolset("bank", setup=fresh_bank)


@bank.tool
def find_card(ctx: RunContext[Bank], last4: str) -> dict | None:
    """Find a card by its last four digits (nothing if no card has them).

    Args:
        last4: the last four digits.
    """
    ctx.deps.seen.append((ctx.run_id, dict(ctx.inputs)))
    found = [k for k, c in ctx.deps.cards.items() if c["last4"] == last4]
    return {"card_id": found[0], "last4": last4} if found else None


@bank.tool
def block_card(ctx: RunContext[Bank], card_id: int) -> str:
    """Block a card.

    Args:
        card_id: the card.
    """
    ctx.deps.cards[card_id]["status"] = "blocked"
    ctx.deps.log.append(f"block {card_id}")
    return "blocked"


@bank.tool
def order_replacement(ctx: RunContext[Bank], card_id: int) -> str:
    """Order a replacement card.

    Args:
        card_id: the blocked card.
    """
    ctx.deps.log.append(f"replace {card_id}")
    return "ordered"


@bank.tool
def charge_fee(ctx: RunContext[Bank], card_id: int, amount: float) -> str:
    """Charge a fee on a card.

    Args:
        card_id: the card.
        amount: the fee.
    """
    ctx.deps.log.append(f"fee {card_id} {amount}")
    return "charged"


@bank.tool
def note(ctx: RunContext[Bank], text: str) -> str:
    """Write a note on the customer's file.

    Args:
        text: the note.
    """
    ctx.deps.log.append(f"note {text}")
    return "noted"


BLOCK = load_routine_text("""
name: block
description: Block a card after the customer confirms.
toolsets: [bank]
inputs: {last4: {type: string, description: the card's last four digits}}
steps:
  - {id: ask, name: Ask, description: Ask for the card., ask: "Which card (last four digits)?",
     fills: [last4]}
  - {id: find, name: Find the card, description: Find it., tool: find_card,
     args: {last4: "${inputs.last4}"}}
  - id: block
    name: Block the card
    description: Block it.
    tool: block_card
    args: {card_id: "${steps.find.output.card_id}"}
    confirm: "I will block the card ending {{ steps.find.output.last4 }}. Shall I go ahead?"
  - {id: done, name: Answer, description: Say so., finish: true, message: "Blocked."}
""", "block.yaml")


def bank_agent(replies: list, routine=BLOCK, **settings: object) -> Agent:
    return Agent(routine, [bank], ScriptedModel(replies, inputs={"last4": "1234"}), **settings)


# ------------------------------------------------------------ consent
@pytest.mark.parametrize("text,said", [
    ("I can't confirm that", "no"), ("I cannot confirm this", "no"),
    ("I didn't say yes", "no"), ("I won't, ok", "no"),
    ("Please don\u2019t block it, okay", "no"), ("Correct me if I'm wrong, my card is 11",
                                                 "unclear"),
    ("Go away", "unclear"), ("yes and also block the other card 9999", "unclear"),
    ("yes but only the first", "unclear"), ("ok, maybe later", "unclear"), ("", "unclear"),
    ("\x1b[32myes\x1b[0m", "yes"), ("That's correct", "yes"), ("Please proceed", "yes"),
    ("Yes, go ahead and block card 1234.", "yes"), ("I confirm", "yes"), ("OK.", "yes"),
    # what follows the yes: courtesy, or the question's own words; nothing else
    ("ok, the 50 GB one", "unclear"), ("yes, make it the 20 GB plan", "unclear"),
    ("yes and add roaming for Spain too", "unclear"),
    ("Yes please, on my wife's line 0698765432", "unclear"), ("Yes, block card 5555", "unclear"),
    ("Yes, no problem", "yes"), ("sure, why not", "yes"), ("yes, block it", "yes"),
    ("Yes please, thank you so much!", "yes"), ("ok wait", "no"), ("yes, no", "no"),
])
def test_consent_is_a_reply_that_opens_with_a_yes_and_adds_nothing(text, said):
    question = "I will block card 1234 for Ana Lima. Shall I go ahead?"
    assert consent(text, question) == said
    assert is_yes(text, question) is (said == "yes")


def test_without_the_question_a_yes_that_restates_the_action_is_asked_again():
    assert consent("Yes, go ahead and block card 1234.") == "unclear"
    assert consent("Yes, go ahead.") == "yes"


def test_a_negation_declines_and_a_hedge_is_asked_again_before_anything_is_written():
    replies = [call("find_card", last4="1234"), call("block_card", card_id=10)]
    with bank_agent(replies).conversation() as chat:
        asked = chat.send("Block my card ending 1234")
        again = chat.send("yes and also block the other card 9999")
        assert (again.status, again.waiting_for) == ("waiting", "confirmation")
        assert again.text == "I need a clear yes or no before I go on. " + asked.text
        no = chat.send("I can't confirm that")
        store = chat.contexts["bank"].deps
    # the lookup ran, so the decline says what ran rather than "Nothing was changed"
    assert no.status == "answered" and no.text == (
        'Stopped: block the card was not confirmed, so it was not done. '
        'What ran before that: find_card(last4="1234").')
    assert store.log == [] and store.cards[10]["status"] == "active"


# ------------------------------------------------------------ confirmations, contract off
def test_with_the_contract_off_a_confirmed_call_keeps_the_values_the_user_is_shown():
    replies = [call("find_card", last4="1234"), call("block_card", card_id=11),
               call("block_card", card_id=10)]
    with bank_agent(replies, enforce_steps=False).conversation() as chat:
        asked = chat.send("Block my card ending 1234")
        assert asked.text == "I will block the card ending 1234. Shall I go ahead?"
        done = chat.send("yes")
        store = chat.contexts["bank"].deps
    assert done.status == "answered" and store.log == ["block 10"]
    assert store.cards[11]["status"] == "active"
    refused = [c for c in done.trace.tool_calls if c.error_kind == "off_routine"]
    assert [c.arguments for c in refused] == [{"card_id": 11}]
    assert "'card_id' must be 10" in (refused[0].error or "")


TWO_CONFIRMS = load_routine_text("""
name: block_and_replace
description: Block a card and order a replacement, each after the customer confirms.
toolsets: [bank]
inputs: {card_id: {type: integer, description: the card}}
steps:
  - {id: block, name: Block the card, description: Block it., tool: block_card,
     args: {card_id: "${inputs.card_id}"}, confirm: true}
  - {id: replace, name: Order a replacement, description: Order one., tool: order_replacement,
     args: {card_id: "${inputs.card_id}"}, confirm: true}
  - {id: done, name: Answer, description: Say so., finish: true,
     message: "Card {{ inputs.card_id }} is blocked and a replacement is on its way."}
""", "two.yaml")


def test_two_confirmed_calls_in_one_reply_are_confirmed_one_at_a_time():
    both = ModelReply(tool_calls=[
        {"id": "a", "type": "function", "function": {
            "name": "block_card", "arguments": json.dumps({"card_id": 10})}},
        {"id": "b", "type": "function", "function": {
            "name": "order_replacement", "arguments": json.dumps({"card_id": 10})}}])
    model = ScriptedModel([both, call("order_replacement", card_id=10)])
    agent = Agent(TWO_CONFIRMS, [bank], model, enforce_steps=False)
    with agent.conversation(inputs={"card_id": 10}) as chat:
        first = chat.send("my card 10 was stolen")
        assert "block the card" in first.text  # the first call is the one asked about
        second = chat.send("yes")
        assert "order a replacement" in second.text
        store = chat.contexts["bank"].deps
        assert store.log == ["block 10"]
        done = chat.send("yes")
    assert done.status == "answered" and store.log == ["block 10", "replace 10"]
    (held,) = [c for c in first.trace.tool_calls if c.name == "order_replacement"][:1]
    assert held.error_kind == "awaiting_confirmation" and "one at a time" in (held.error or "")


# ------------------------------------------------------------ conversations
def test_a_closed_conversation_takes_no_more_messages():
    model = ScriptedModel(['{"last4": "1234"}', call("find_card", last4="1234"),
                           call("block_card", card_id=10)])
    chat = Agent(BLOCK, [bank], model).conversation()
    first = chat.send("Block my card ending 1234")
    assert first.waiting_for == "confirmation"
    chat.close()
    with pytest.raises(RoutineError, match="the conversation is closed"):
        chat.send("yes")


def test_tools_in_a_conversation_see_the_run_id_and_the_inputs_the_run_learned():
    model = ScriptedModel(['{"last4": null}', '{"last4": "1234"}',
                           call("find_card", last4="1234"), call("block_card", card_id=10)])
    with Agent(BLOCK, [bank], model).conversation() as chat:
        reply = chat.send("Block a card please")  # the ask step fills last4 from the reply
        assert reply.text == "Which card (last four digits)?"
        reply = chat.send("the one ending 1234")
        store = chat.contexts["bank"].deps
    assert store.seen == [(reply.trace.run_id, {"last4": "1234"})]


def test_an_empty_first_message_is_asked_what_the_routine_needs():
    with Agent(BLOCK, [bank], ScriptedModel(['{"last4": null}'])).conversation() as chat:
        reply = chat.send("")
    assert (reply.status, reply.text) == ("waiting", "Which card (last four digits)?")


# ------------------------------------------------------------ the model's replies
def test_a_call_nested_too_deeply_to_read_is_fed_back_not_raised():
    deep = "[" * 5000 + "]" * 5000
    model = ScriptedModel([ModelReply(tool_calls=[{"id": "a", "type": "function", "function": {
        "name": "find_card", "arguments": '{"last4": ' + deep + "}"}}]),
        '{"name": "find_card", "arguments": {"last4": ' + deep + "}}",
        call("find_card", last4="1234"), call("block_card", card_id=10)])
    trace = Agent(BLOCK, [bank], model, approver=policy(True)).run(
        "block 1234", inputs={"last4": "1234"})
    assert trace.outcome == "answered" and trace.tool_sequence == ["find_card", "block_card"]
    assert "nested too deeply" in trace.turns[0].feedback


FEES = load_routine_text("""
name: annual_fees
description: Charge the annual fee once per card.
toolsets: [bank]
constants: {cards: [10, 11, 12]}
steps:
  - id: each
    name: Each card
    description: Charge the fee for every card.
    for_each: ${constants.cards}
    as: card
    steps:
      - {id: fee, name: Charge the fee, description: Charge the 5.0 fee., tool: charge_fee,
         args: {card_id: 10, amount: 5.0}, max_visits: 1}
  - {id: done, name: Answer, description: Say what was charged., finish: true,
     message: "Charged."}
""", "fees.yaml")


def test_a_loop_may_make_the_same_call_for_every_item_and_max_visits_counts_per_item():
    model = ScriptedModel([call("charge_fee", card_id=10, amount=5.0)] * 3)
    trace = Agent(FEES, [bank], model).run("charge the fees")
    assert trace.outcome == "answered", trace.failure
    assert trace.tool_sequence == ["charge_fee"] * 3
    model.assert_complete()


def test_a_call_the_approver_refused_ends_the_run_with_the_executors_words():
    close = load_routine_text("""
name: close
description: Block a card once ops approves.
toolsets: [bank]
steps:
  - {id: block, name: Block, description: Block card 10., tool: block_card,
     args: {card_id: 10}, approval: required}
  - {id: done, name: Answer, description: Say it is blocked., finish: true}
""", "close.yaml")
    said = "I'm sorry, blocking the card was not approved."
    model = ScriptedModel([call("block_card", card_id=10), said])
    trace = Agent(close, [bank], model, approver=policy(False, by="ops")).run("block card 10")
    # (the eighth round: the model's words could claim it was done; the executor says it)
    assert (trace.outcome, trace.answer) == (
        "answered", "Nothing was changed: block was not approved (ops: refused by policy).")
    assert [c.error_kind for c in trace.tool_calls] == ["denied"]


def test_a_tool_error_whose_text_cannot_be_read_or_is_huge_is_data_for_the_model():
    class Broken(Exception):
        def __str__(self) -> str:
            raise KeyError("detail")

    failing = Toolset("failing")

    @failing.tool
    def lookup(n: int) -> str:
        """Look something up.

        Args:
            n: which.
        """
        raise Broken() if n == 1 else RuntimeError("x" * 100_000)

    routine = load_routine_text("""
name: look
description: Look it up.
toolsets: [failing]
steps:
  - {id: look, name: Look, description: Look it up., tool: lookup, args: {}}
  - {id: done, name: Answer, description: Say it., finish: true}
""", "look.yaml")
    model = ScriptedModel([call("lookup", n=1), call("lookup", n=2), "It failed.", "It failed."])
    trace = Agent(routine, [failing], model, validate=False).run("look")
    first, second = trace.tool_calls[:2]
    assert first.error == "Broken: (its message could not be read: KeyError)"
    assert second.error is not None and len(second.error) < 2_100
    assert second.error.endswith("[98000 more characters]")
    assert max(len(r.messages[-1].content or "") for r in model.requests) < 3_000


# ------------------------------------------------------------ the tracker
def test_a_lookup_that_found_nothing_stops_the_routine_instead_of_a_made_up_id():
    model = ScriptedModel([call("find_card", last4="0000")])
    agent = Agent(BLOCK, [bank], model, approver=policy(True))
    trace = agent.run("block my card 0000", inputs={"last4": "0000"})
    assert trace.outcome == "failed" and trace.tool_sequence == ["find_card"]
    assert "steps.find is null: it has no card_id" in (trace.failure or "")


ENUM = load_routine_text("""
name: why
description: Note why a card is blocked.
toolsets: [bank]
inputs:
  reason: {type: string, description: why, enum: [lost, stolen]}
steps:
  - {id: tell, name: Note, description: Note the reason., tool: note,
     args: {text: "${inputs.reason}"}}
  - {id: done, name: Answer, description: Say so., finish: true,
     message: "Noted: {{ inputs.reason }}."}
""", "why.yaml")


def test_an_input_with_an_enum_filled_by_a_call_must_be_one_of_its_values():
    model = ScriptedModel([call("note", text="I want to read the CEO's mail"),
                           call("note", text="stolen")])
    trace = Agent(ENUM, [bank], model).run("my card was stolen")
    assert (trace.outcome, trace.answer) == ("answered", "Noted: stolen.")
    refused = trace.tool_calls[0]
    assert refused.error_kind == "off_routine" and "one of" in (refused.error or "")


LEVELS = load_routine_text("""
name: levels
description: Act on a card by its risk level.
toolsets: [bank]
inputs: {level: {type: integer, description: the risk level}}
steps:
  - id: decide
    name: Decide
    description: By level.
    branch:
      - condition: the risk is low
        when: inputs.level <= 2
        steps: [{id: low, name: Note, description: Note it., tool: note, args: {text: low}}]
      - condition: the risk is high
        when: inputs.level >= 4
        steps: [{id: high, name: Block, description: Block it., tool: block_card,
                 args: {card_id: 10}}]
  - {id: done, name: Answer, description: Say so., finish: true, message: "Done."}
""", "levels.yaml")


def test_a_branch_whose_every_when_is_false_stops_instead_of_letting_the_model_pick():
    trace = Agent(LEVELS, [bank], ScriptedModel([])).run(inputs={"level": 3})
    assert trace.outcome == "failed" and trace.tool_sequence == []
    assert "no option's `when` holds" in (trace.failure or "")


# ------------------------------------------------------------ settings and hand-offs
@pytest.mark.parametrize("bad,match", [
    ({"max_stepz": 1}, "unknown run setting 'max_stepz' \\(did you mean 'max_steps'\\?\\)"),
    ({"decoding": "bogus"}, "invalid run setting: decoding"),
    ({"max_retries": -1}, "invalid run setting: max_retries"),
])
def test_agent_keyword_settings_are_checked_like_run_settings(bad, match):
    with pytest.raises(RoutineError, match=match):
        Agent(BLOCK, [bank], ScriptedModel([]), **bad)


def test_a_hand_off_the_target_refuses_ends_the_run_failed_not_raised():
    target = load_routine_text("""
name: by_id
description: Block a card by its id.
toolsets: [bank]
inputs: {card_id: {type: integer, description: the card}}
steps:
  - {id: block, name: Block, description: Block it., tool: block_card,
     args: {card_id: "${inputs.card_id}"}}
  - {id: done, name: Answer, description: Say so., finish: true, message: "Blocked."}
""", "by_id.yaml")
    source = load_routine_text("""
name: front
description: Pass the card on.
toolsets: [bank]
steps:
  - {id: pass, name: Pass, description: Pass it on., handoff: by_id,
     args: {card_id: "the stolen one"}}
""", "front.yaml")
    agent = Agent(source, [bank], ScriptedModel([]), validate=False)
    with agent.conversation(routines={"by_id": target}) as chat:
        reply = chat.send("my card was stolen")
    assert reply.status == "failed"
    assert "the hand-off to 'by_id' failed: input 'card_id' must be an integer" in reply.text


DECIDE = load_routine_text("""
name: decide
description: Approve or reject a request by its justification, and note it.
toolsets: [bank]
steps:
  - id: decide
    name: Decide
    description: Approve a business need, reject the others.
    branch:
      - condition: the justification is a business need
        steps: [{id: approve, name: Approve, description: Note the approval., tool: note,
                 args: {text: approved}}]
      - condition: otherwise
        steps: [{id: reject, name: Reject, description: Note the rejection., tool: note,
                 args: {text: rejected}}]
  - {id: done, name: Answer, description: Say what was decided., finish: true}
""", "decide.yaml")


@pytest.mark.parametrize("decoding", ["free", "guided"])
def test_branch_options_that_start_with_one_tool_are_told_apart_by_their_values(decoding):
    model = ScriptedModel([call("note", text="rejected"), "Rejected."])
    trace = Agent(DECIDE, [bank], model, decoding=decoding).run("I am curious")
    assert trace.outcome == "answered" and trace.tool_calls[0].ok
    assert trace.branches == {"decide": 1} and "reject" in trace.steps_done
    if decoding == "guided":  # the reply schema: one object per option, with its value
        guide = model.requests[0].guide
        assert guide is not None and "text" not in guide.fixed["note"]
        schema = reply_schema(guide, model.requests[0].tools)
        texts = [o["properties"]["arguments"]["properties"]["text"] for o in schema["anyOf"]]
        assert texts == [{"const": "approved"}, {"const": "rejected"}]
    refused = Agent(DECIDE, [bank], ScriptedModel([call("note", text="maybe")] * 4)).run("x")
    assert refused.outcome == "failed"
    assert "'text' must be \"approved\"" in (refused.tool_calls[0].error or "")


def test_guided_decoding_lets_the_model_answer_after_a_tool_error_instead_of_repeating():
    limits = Toolset("limits")

    @limits.tool
    def submit_claim(amount: float) -> str:
        """Submit an expense claim.

        Args:
            amount: the amount.
        """
        raise ValueError(f"{amount} is over the 2500 limit")

    routine = load_routine_text("""
name: claim
description: Submit a claim.
toolsets: [limits]
inputs: {amount: {type: number, description: the amount}}
steps:
  - {id: submit, name: Submit, description: Submit the claim., tool: submit_claim,
     args: {amount: "${inputs.amount}"}}
  - {id: done, name: Answer, description: Say it is submitted., finish: true}
""", "claim.yaml")
    said = "The claim of 4000 is over the 2500 limit, so it was not submitted."
    model = ScriptedModel([call("submit_claim", amount=4000), call("finish", answer=said)])
    trace = Agent(routine, [limits], model, decoding="guided").run(inputs={"amount": 4000})
    assert (trace.outcome, trace.answer, trace.early_answer) == ("answered", said, "submit")
    first, second = (r.guide for r in model.requests)
    assert first is not None and first.tools == ("submit_claim",)
    assert second is not None and second.tools == ("submit_claim", "finish")


NOTE = load_routine_text("""
name: note_it
description: Note why a card is blocked.
toolsets: [bank]
steps:
  - {id: tell, name: Note, description: Note the reason., tool: note, args: {text: stolen}}
  - {id: done, name: Answer, description: Say so., finish: true}
""", "note.yaml")


def test_a_call_after_the_last_step_is_told_to_answer_in_the_style_it_runs_in():
    model = ScriptedModel([call("note", text="stolen"), call("note", text="stolen"),
                           "Noted: stolen."])
    trace = Agent(NOTE, [bank], model).run("my card was stolen")  # compact: no finish tool
    refused = trace.tool_calls[1]
    assert refused.error == ("not run: the routine's steps are done: the answer to the user "
                             "comes now, not note. You are at step 2 (Answer): answer the user "
                             "in plain text.")
    full = Agent(NOTE, [bank], ScriptedModel([call("note", text="stolen"),
                                              call("note", text="stolen"),
                                              call("finish", answer="Noted.")]),
                 prompt_style="full").run("my card was stolen")
    assert (full.tool_calls[1].error or "").endswith("You are at step 2 (Answer): call finish.")
