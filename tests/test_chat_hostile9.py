"""Ninth hostile round, `routine chat` in front of people: an interrupted message leaves
a conversation that resumes, a paste cannot answer a confirmation not yet shown, bytes
that are not UTF-8 and a closed terminal do not lose the trace, and chat resumes a saved
conversation."""

from __future__ import annotations

import asyncio
import contextlib
import json

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.models.testing import ScriptedModel, call
from routine.run.conversation import Conversation

from .test_cli import scripted_server  # noqa: F401 - the fixture

DESK = Toolset("desk", setup=contextlib.contextmanager(lambda: (yield [])))


@DESK.tool
def close_ticket(ctx: RunContext[list], ticket: str) -> str:
    """Close a ticket."""
    ctx.deps.append(ticket)
    return "closed"


CLOSE = """
name: close
description: Close a ticket after the user confirms.
inputs: {ticket: {type: string, description: the ticket id}}
steps:
  - {id: ask, name: Ask, description: Ask which ticket., ask: "Which ticket?", fills: [ticket]}
  - {id: shut, name: Close, description: Close it., tool: close_ticket,
     args: {ticket: "${inputs.ticket}"}, confirm: "Close {{ inputs.ticket }}?"}
  - {id: done, name: Done, description: Done., finish: true, message: "Closed."}
"""


class SlowModel(ScriptedModel):
    """A scripted model whose replies take a while (a user gives up on one)."""

    async def complete(self, *args, **kwargs):
        await asyncio.sleep(0.5)
        return await super().complete(*args, **kwargs)


def test_a_message_interrupted_before_any_call_leaves_the_conversation_waiting():
    routine = load_routine_text(CLOSE, "close.yaml")

    async def go():
        chat = Conversation(Agent(routine, [DESK], SlowModel([json.dumps({"ticket": None})])))
        asked = await chat.asend("close a ticket")
        task = asyncio.ensure_future(chat.asend("T-77"))
        await asyncio.sleep(0.2)  # the model is reading the reply: Ctrl-C
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        trace = chat.trace
        await chat.aclose()
        return asked, trace

    asked, trace = asyncio.run(go())
    # before: saved as "running", which no longer resumes
    assert (trace.outcome, trace.answer) == ("waiting", asked.text)
    model = ScriptedModel([json.dumps({"ticket": "T-77"}), call("close_ticket", ticket="T-77")])
    with Conversation(Agent(routine, [DESK], model), trace=trace) as chat:
        assert chat.send("T-77").text == "Close T-77?"
        assert chat.send("yes").text == "Closed."


def test_chat_resumes_a_saved_conversation_and_reads_bytes_that_are_not_utf8(
        scripted_server, tmp_path, capsys, monkeypatch):  # noqa: F811
    import io

    from routine.cli import main
    from routine.run.trace import load_traces
    from tests.shop import CANCEL
    from tests.test_cli import ScriptedServer, _calls

    (tmp_path / "routine.toml").write_text('[toolsets]\nshop = "tests.shop:shop"\n')
    (tmp_path / "cancel.yaml").write_text(CANCEL)
    ScriptedServer.script = [
        {"content": '{"order_id": null, "reason": null}'},
        {"content": '{"order_id": 7, "reason": "ordered it by mistake"}'},
        _calls("find_by_email", email="ana@example.com"), _calls("get_order", order_id=7),
        _calls("check_stock", product_id=11), _calls("check_stock", product_id=12),
        _calls("cancel_order", order_id=7, reason="ordered it by mistake"),
        _calls("refund", order_id=7, amount=25.0),
    ]
    argv = ["--project", str(tmp_path / "routine.toml"), "chat", str(tmp_path / "cancel.yaml"),
            "--base-url", scripted_server, "--model", "m", "--trace-dir", str(tmp_path / "t")]
    # a Latin-1 byte in what is typed (read with surrogateescape): before, the trace was lost
    monkeypatch.setattr("sys.stdin", io.StringIO("Order 7, I ordered it by mistake caf\udce9\n"))
    assert main([*argv, "I want to cancel an order, I'm ana@example.com"]) == 0
    (first,) = load_traces(tmp_path / "t" / "traces.jsonl")
    assert first.outcome == "waiting" and first.said[-1].endswith("caf\ufffd")
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    code = main([*argv, "--resume", str(tmp_path / "t")])  # before: no way from the CLI
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Shall I go ahead?" in out and "Order 7 is cancelled; 25.0 will be refunded." in out
    last = list(load_traces(tmp_path / "t" / "traces.jsonl"))[-1]
    assert last.run_id == first.run_id and last.outcome == "answered"
