"""Bugs found by the fourth hostile-input round (an insurer's claims desk, a mobile
operator's customer care, a procurement department set up from `routine init`): each test
fails on the code before its fix."""

from __future__ import annotations

import json

from routine import Agent, load_routine_text
from routine.models.testing import FunctionModel, Request, call

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
    from routine.models.testing import ScriptedModel

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
