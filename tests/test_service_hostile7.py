"""Bugs found by the seventh hostile-input round's service probe (a travel agency's web
service: many runs and conversations at once, traces stored between requests): each test
fails on the code before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import openai
import pytest

from routine import Agent, OpenAIModel, RunContext, Toolset, load_routine_text
from routine.errors import RoutineError
from routine.models.base import TurnGuide, set_model_requests_allowed
from routine.models.testing import FunctionModel, ScriptedModel, call
from routine.run.approval import Decision
from routine.run.conversation import Conversation
from routine.run.trace import dump_traces, load_traces

REFUNDS: list[tuple[str, float]] = []


@contextlib.contextmanager
def _desk():
    yield REFUNDS


travel = Toolset("travel", setup=_desk)


@travel.tool
async def refund(ctx: RunContext[list], booking: str, amount: float) -> str:
    """Refund a booking."""
    await asyncio.sleep(DELAY[0])
    ctx.deps.append((booking, amount))
    return f"refunded {amount}"


DELAY = [0.0]

REFUND = """
name: refund
description: Refund a booking after the customer confirms{approval}.
inputs:
  booking: {{type: string, description: the booking}}
  amount: {{type: number, description: the amount}}
steps:
  - id: pay
    name: Refund
    description: Refund it.
    tool: refund
    args: {{booking: "${{inputs.booking}}", amount: "${{inputs.amount}}"}}
    confirm: "Refund {{{{ inputs.amount }}}} for {{{{ inputs.booking }}}}?"{required}
  - {{id: done, name: Answer, description: Say it., finish: true, message: "Refunded."}}
"""


def _agent(approval: bool = False, **kwargs: Any) -> Agent:
    text = REFUND.format(approval=" and a supervisor approves" if approval else "",
                         required="\n    approval: required" if approval else "")
    model = ScriptedModel([call("refund", booking="BK1", amount=102.0)] * 2)
    return Agent(load_routine_text(text, "refund.yaml"), [travel], model, **kwargs)


@pytest.fixture(autouse=True)
def _fresh():
    REFUNDS.clear()
    DELAY[0] = 0.0


def test_the_customer_s_yes_does_not_stand_in_for_a_required_approval():
    asked: list[str] = []

    def supervisor(request) -> Decision:
        asked.append(request.tool)
        return Decision(approved=False, by="supervisor", reason="over the limit")

    with _agent(approval=True, approver=supervisor).conversation() as chat:
        chat.send("refund BK1, 102")
        chat.send("yes")
    assert asked == ["refund"] and REFUNDS == []  # the yes alone refunded before

    with _agent(approval=True, approver=lambda request: True).conversation() as chat:
        chat.send("refund BK1, 102")
        done = chat.send("yes")
    assert done.text == "Refunded." and REFUNDS == [("BK1", 102.0)]
    approval = chat.trace.tool_calls[-1].approval
    assert approval.by == "user" and "approved by approver" in approval.reason


def test_a_reply_cancelled_while_its_confirmed_call_runs_leaves_no_waiting_trace():
    DELAY[0] = 0.5
    agent = _agent()

    async def go():
        chat = Conversation(agent)
        await chat.asend("refund BK1, 102")
        task = asyncio.ensure_future(chat.asend("yes"))
        await asyncio.sleep(0.2)  # the refund is running: the client goes away
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)
        trace = chat.trace
        await chat.aclose()
        return trace

    trace = asyncio.run(go())
    assert trace.outcome == "failed" and trace.waiting is None  # "waiting" before: a resumed
    assert trace.turns[-1].calls[0].name == "refund"  # yes refunded a second time
    with pytest.raises(RoutineError, match="only a waiting run resumes"):
        Conversation(_agent(), trace=trace).send("yes")


def test_a_failing_on_turn_neither_loses_the_trace_nor_the_run():
    def watcher(turn):
        raise ConnectionError("metrics backend down")

    agent = _agent(approver=lambda request: True)
    trace = agent.run("refund", inputs={"booking": "BK1", "amount": 102.0}, on_turn=watcher)
    assert trace.outcome == "answered" and REFUNDS == [("BK1", 102.0)]  # raised before


def test_two_messages_at_once_to_one_conversation_are_refused_not_interleaved():
    DELAY[0] = 0.3
    agent = _agent()

    async def go():
        async with Conversation(agent) as chat:
            await chat.asend("refund BK1, 102")
            return await asyncio.gather(chat.asend("yes"), chat.asend("yes"),
                                        return_exceptions=True)

    first, second = asyncio.run(go())
    assert first.text == "Refunded." and isinstance(second, RoutineError)
    assert "one message at a time" in str(second) and REFUNDS == [("BK1", 102.0)]


def test_a_refusal_that_is_not_about_the_constraint_teaches_nothing():
    set_model_requests_allowed(True)
    try:
        def handler(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if "too long" in json.dumps(body["messages"]):
                return httpx.Response(400, json={"error": {"message": "maximum context length"}})
            return httpx.Response(200, json={
                "id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": "ok"}}]})

        client = openai.AsyncOpenAI(base_url="http://t/v1", api_key="k", max_retries=0,
                                    http_client=httpx.AsyncClient(
                                        transport=httpx.MockTransport(handler)))
        model = OpenAIModel("m", client=client)
        guide = TurnGuide("a", "1", ("finish",), constrain=True)
        tools = [{"type": "function", "function": {"name": "finish", "parameters": {}}}]
        with pytest.raises(Exception, match="maximum context length"):
            asyncio.run(model.complete([{"role": "user", "content": "too long"}], tools,
                                       guide=guide))
        later = asyncio.run(model.complete([{"role": "user", "content": "hi"}], tools,
                                           guide=guide))
        assert later.decoding == "json_schema" and not model.refusal  # another user's turn
    finally:
        set_model_requests_allowed(False)


def test_a_model_used_with_asyncio_run_per_request_lets_closed_loops_go():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.servers.completions import send_completion

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections kept open, as real servers do

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            send_completion(self, "m", {"content": "ok"})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    set_model_requests_allowed(True)
    try:
        model = OpenAIModel("m", f"http://127.0.0.1:{server.server_address[1]}/v1")
        for _ in range(5):  # a web handler's asyncio.run per request
            assert asyncio.run(model.complete([], [])).content == "ok"
        assert len(model._clients) <= 1  # a client, its loop and a socket per request before
    finally:
        set_model_requests_allowed(False)
        server.shutdown()
        server.server_close()


def _traces(n: int) -> list:
    agent = Agent(None, [travel], FunctionModel(lambda request: "Bonjour Müller, 東京"),
                  validate=False)
    return [agent.run(f"hello {i}") for i in range(n)]


def test_a_trace_file_with_a_torn_line_stays_readable_and_appendable(tmp_path):
    path = tmp_path / "traces.jsonl"
    first, second, third = _traces(3)
    dump_traces([first], path)
    whole = path.read_bytes()
    line = json.dumps(second.model_dump(mode="json"), ensure_ascii=False).encode()
    cut = line.index("東".encode()) + 1  # a writer killed inside a character
    path.write_bytes(whole + line[:cut])
    assert [t.run_id for t in load_traces(path)] == [first.run_id]  # unreadable file before
    dump_traces([third], path)  # the next writer: not glued onto the fragment
    assert [t.run_id for t in load_traces(path)] == [first.run_id, third.run_id]
