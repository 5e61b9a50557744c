"""Limits that hold and runs that always end in a trace (issue 11's findings, one test each)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import openai
import pytest

from routine import Agent, RunSettings, ToolRegistry, load_routine_text, tool
from routine.cli.commands import redacted
from routine.models.base import ModelReply, set_model_requests_allowed
from routine.models.client import OpenAIModel
from routine.models.testing import ScriptedModel, call

ROUTINE = load_routine_text("""
name: record
description: Write one record.
steps:
  - id: write
    name: Write
    description: Write the record.
    tool: write_record
    args: {value: 1}
  - id: answer
    name: Answer
    description: Say it is written.
    finish: true
""").routine

WRITES: list[int] = []


@tool
def write_record(value: int) -> dict:
    """Write a record."""
    WRITES.append(value)
    return {"written": value}


@tool
def slow_lookup(seconds: float) -> str:
    """Block for a while."""
    time.sleep(seconds)
    return "late"


@tool
def exits() -> str:
    """Exit the process."""
    sys.exit(3)


@tool
async def exits_async() -> str:
    """Exit the process, from a coroutine."""
    raise SystemExit(4)


@tool
async def interrupted_async() -> str:
    """A KeyboardInterrupt raised inside the tool's own code."""
    raise KeyboardInterrupt


@tool
def cyclic() -> dict:
    """Return a value that is not data."""
    loop: dict = {}
    loop["self"] = loop
    return loop


def registry(*tools) -> ToolRegistry:
    reg = ToolRegistry()
    for item in tools:
        reg.add(item)
    return reg


def flood(count: int) -> ModelReply:
    return ModelReply(tool_calls=[{"id": f"c{i}", "type": "function", "function": {
        "name": "write_record", "arguments": json.dumps({"value": 1})}} for i in range(count)])


def test_max_steps_counts_every_call_of_a_parallel_flood():
    WRITES.clear()
    model = ScriptedModel([flood(200)])
    agent = Agent(None, registry(write_record), model, RunSettings(max_steps=20, max_repeats=500),
                  validate=False)
    trace = agent.run("write")
    assert len(WRITES) == 20  # all 200 ran before
    assert trace.outcome == "failed" and trace.failure_kind == "max_steps"
    kinds = [c.error_kind for c in trace.turns[0].calls]
    assert kinds.count(None) == 20 and kinds.count("over_budget") == 180


def test_a_blocking_tool_cannot_outlive_its_time_limit():
    model = ScriptedModel([call("slow_lookup", seconds=8), call("finish", answer="gave up")])
    agent = Agent(None, registry(slow_lookup), model, RunSettings(tool_timeout_s=0.5),
                  validate=False)
    started = time.perf_counter()
    trace = agent.run("look it up")
    assert time.perf_counter() - started < 4  # it blocked for 8 s before
    assert trace.tool_calls[0].error_kind == "timeout" and trace.outcome == "answered"


def test_the_run_time_limit_holds_with_a_blocking_tool():
    model = ScriptedModel([call("slow_lookup", seconds=8)])
    agent = Agent(None, registry(slow_lookup), model, RunSettings(timeout_s=1, tool_timeout_s=30),
                  validate=False)
    started = time.perf_counter()
    trace = agent.run("look it up")
    assert time.perf_counter() - started < 4
    assert trace.failure_kind == "timeout"


def test_a_tool_that_exits_is_an_error_for_the_model_and_one_that_returns_no_data_a_bug():
    model = ScriptedModel([call("exits"), call("cyclic"), call("finish", answer="done")])
    trace = Agent(None, registry(exits, cyclic), model, validate=False).run("go")
    # SystemExit and a cyclic result ended the process before; a result that is not data
    # came after the tool ran (its work is done): the run ends naming the tool's bug
    assert trace.outcome == "failed" and trace.failure_kind == "tool_bug"
    first, second = trace.tool_calls
    assert first.error_kind == "tool_error" and "SystemExit" in first.error
    assert second.error_kind == "tool_bug" and "cannot be kept as data" in second.error
    assert "cyclic" in trace.failure


def test_an_async_tool_that_exits_is_an_error_for_the_model_not_a_hung_run():
    model = ScriptedModel([call("exits_async"), call("interrupted_async"),
                           call("finish", answer="done")])
    agent = Agent(None, registry(exits_async, interrupted_async), model,
                  RunSettings(timeout_s=20), validate=False)
    trace = agent.run("go")  # hung forever before: SystemExit killed the blocking loop
    assert trace.outcome == "answered"
    first, second = trace.tool_calls
    assert first.error_kind == "tool_error" and "SystemExit(4)" in first.error
    assert second.error_kind == "tool_error" and "KeyboardInterrupt" in second.error
    after = Agent(None, registry(exits_async), ScriptedModel([call("finish", answer="ok")]),
                  validate=False)
    assert after.run("again").answer == "ok"  # the process's blocking loop still runs


# ---------------------------------------------------------------- the endpoint
def _model(handler, **kwargs) -> OpenAIModel:
    client = openai.AsyncOpenAI(base_url="http://server.test/v1", api_key="k",
                                max_retries=kwargs.pop("max_retries", 2),
                                http_client=httpx.AsyncClient(
                                    transport=httpx.MockTransport(handler)))
    return OpenAIModel("m", base_url="http://server.test/v1", client=client, **kwargs)


def _completion(**message) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": "stop"}]}


@pytest.fixture
def _allow():
    set_model_requests_allowed(True)  # mocked transports: nothing leaves the process
    yield
    set_model_requests_allowed(False)


def _run(handler) -> object:
    agent = Agent(None, registry(write_record), _model(handler), validate=False)
    return asyncio.run(agent.arun("hi"))


@pytest.mark.usefixtures("_allow")
@pytest.mark.parametrize("fault, kind", [
    (lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}), "unavailable"),
    (lambda r: httpx.Response(429, json={"error": {"message": "slow down"}},
                              headers={"retry-after-ms": "5"}), "rate_limited"),
    (lambda r: httpx.Response(503, text="busy", headers={"retry-after-ms": "5"}), "endpoint"),
    (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")), "endpoint"),
    (lambda r: httpx.Response(200, text="<html>hello</html>",
                              headers={"content-type": "text/html"}), "endpoint"),
    (lambda r: httpx.Response(200, json={"choices": []}), "endpoint"),
    (lambda r: httpx.Response(400, json={"error": {"message": "too long"}}), "request_refused"),
])
def test_every_endpoint_fault_ends_in_a_failed_trace_with_its_kind(fault, kind):
    trace = _run(fault)  # 401 and a dropped connection raised out of arun before
    assert trace.outcome == "failed" and trace.failure_kind == kind and trace.failure


@pytest.mark.usefixtures("_allow")
def test_429_and_503_are_retried_honouring_retry_after():
    answers = iter([httpx.Response(429, json={"error": {"message": "wait"}},
                                   headers={"retry-after-ms": "20"}),
                    httpx.Response(503, text="busy", headers={"retry-after-ms": "20"}),
                    httpx.Response(200, json=_completion(content=None, tool_calls=[{
                        "id": "c", "type": "function", "function": {
                            "name": "finish", "arguments": '{"answer": "ok"}'}}]))])
    seen = []

    def handler(request):
        seen.append(time.perf_counter())
        return next(answers)

    trace = _run(handler)
    assert trace.outcome == "answered" and len(seen) == 3
    assert seen[1] - seen[0] >= 0.015  # it waited as told


@pytest.mark.usefixtures("_allow")
def test_a_huge_reply_is_cut_not_stored_whole():
    huge = "x" * 5_000_000
    trace = _run(lambda r: httpx.Response(200, json=_completion(content=huge)))
    stored = len(trace.model_dump_json())
    assert stored < 2_000_000  # a 20 MB reply made a 160 MB trace before


def test_secrets_are_not_written_with_the_command_line():
    assert redacted(["eval", "d", "--api-key", "sk-123", "--model", "m"]) == [
        "eval", "d", "--api-key", "***", "--model", "m"]
    assert redacted(["--api-key=sk-123"]) == ["--api-key=***"]
