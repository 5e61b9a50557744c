"""OpenAIModel at the HTTP boundary (httpx MockTransport): what is sent, what is read."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import openai
import pytest

from routine.errors import ModelUnavailable
from routine.models.base import set_model_requests_allowed
from routine.models.client import OpenAIModel, endpoint_from_env

TOOLS = [{"type": "function", "function": {"name": "get_employee", "description": "d",
                                             "parameters": {"type": "object", "properties": {}}}}]


def model_with(handler, **kwargs) -> OpenAIModel:
    client = openai.AsyncOpenAI(base_url="http://server.test/v1", api_key="k",
                                http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    return OpenAIModel("qwen", base_url="http://server.test/v1", client=client, **kwargs)


def completion(message: dict) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "qwen",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}


@pytest.fixture(autouse=True)
def _allow():
    set_model_requests_allowed(True)  # the transport is mocked: nothing leaves the process


def test_request_shape_and_structured_calls():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        return httpx.Response(200, json=completion({"content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "get_employee", "arguments": '{"employee_id": 3}'}}]}))

    model = model_with(handler)
    messages = [{"role": "system", "content": "s"},
                {"role": "assistant", "content": None, "tool_calls": []}]
    reply = asyncio.run(model.complete(messages, TOOLS, temperature=0, max_tokens=64, seed=0))
    assert seen["model"] == "qwen" and seen["tools"] == TOOLS and seen["temperature"] == 0
    # llama.cpp's server rejects content null: it is sent as ""
    assert seen["messages"][1]["content"] == ""
    assert reply.tool_calls[0]["function"] == {"name": "get_employee",
                                               "arguments": '{"employee_id": 3}'}
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 3)


def test_text_reply_and_prompt_only_mode():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        return httpx.Response(200, json=completion({"content": "<tool_call>{}</tool_call>"}))

    reply = asyncio.run(model_with(handler, native_tools=False).complete(
        [{"role": "user", "content": "hi"}], TOOLS))
    assert "tools" not in seen and reply.content == "<tool_call>{}</tool_call>"
    assert reply.tool_calls == []


def test_unreachable_endpoint_is_a_clear_error():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(ModelUnavailable, match="cannot reach the model at http://server.test"):
        asyncio.run(model_with(handler).complete([{"role": "user", "content": "x"}], []))


def test_endpoint_from_environment(monkeypatch):
    for var in ("ROUTINE_BASE_URL", "ROUTINE_MODEL", "ROUTINE_API_KEY", "OPENAI_BASE_URL",
                "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert endpoint_from_env() == (None, None, None)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    monkeypatch.setenv("ROUTINE_MODEL", "m")
    assert endpoint_from_env() == ("http://a/v1", "m", "k1")
    monkeypatch.setenv("ROUTINE_BASE_URL", "http://b/v1")
    assert endpoint_from_env() == ("http://b/v1", "m", "k1")
    assert endpoint_from_env("http://c/v1", "x", "y") == ("http://c/v1", "x", "y")


# ---------------------------------------------------------------- endpoint faults
def _faulty(response: httpx.Response) -> OpenAIModel:
    client = openai.AsyncOpenAI(
        base_url="http://server.test/v1", api_key="k", max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: response)))
    return OpenAIModel("qwen", base_url="http://server.test/v1", client=client)


FAULTS = {
    "http 500": (httpx.Response(500, json={"error": {"message": "boom"}}), "ModelServerError",
                 "HTTP 500"),
    "http 503": (httpx.Response(503, text="unavailable"), "ModelServerError", "HTTP 503"),
    "html 200": (httpx.Response(200, text="<html>gateway</html>",
                                headers={"content-type": "text/html"}), "ModelServerError",
                 "not a chat completion"),
    "malformed json": (httpx.Response(200, content=b'{"choices": [',
                                      headers={"content-type": "application/json"}),
                       "ModelServerError", "not a chat completion"),
    "no choices": (httpx.Response(200, json={"id": "x", "object": "chat.completion",
                                             "created": 0, "model": "q", "choices": []}),
                   "ModelServerError", "not a chat completion"),
    "http 400": (httpx.Response(400, json={"error": {"message": "context too long"}}),
                 "ModelRequestError", "HTTP 400"),
    "http 401": (httpx.Response(401, json={"error": {"message": "bad key"}}),
                 "ModelUnavailable", "refused the API key"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_endpoint_fault_is_one_routine_error(fault):
    from routine.errors import RoutineError

    response, kind, words = FAULTS[fault]
    with pytest.raises(RoutineError) as caught:
        asyncio.run(_faulty(response).complete([{"role": "user", "content": "hi"}], TOOLS))
    assert type(caught.value).__name__ == kind and words in str(caught.value)


@pytest.mark.parametrize("fault", ["http 500", "html 200", "malformed json", "no choices",
                                   "http 400"])
def test_a_run_ends_as_a_failed_trace_on_an_endpoint_fault(fault, hr_tools):
    from routine import Agent, RunFailed, load_routine

    from .conftest import ROUTINES

    agent = Agent(load_routine(ROUTINES / "hr" / "leave_balance.yaml"), hr_tools,
                  _faulty(FAULTS[fault][0]))
    trace = agent.run("How many annual leave days does Arjun Garcia have left?")
    assert trace.outcome == "failed" and trace.failure.startswith("model request failed")
    assert trace.failure_kind == ("request_refused" if fault == "http 400" else "endpoint")
    assert [t.kind for t in trace.turns] == ["failed"]
    with pytest.raises(RunFailed) as caught:
        trace.raise_for_outcome()
    assert caught.value.trace is trace


@pytest.mark.parametrize("url, said", [
    ("http://localhost:99999/v1", "port 99999 is not one"),
    ("http://[::1/v1", "Invalid port"),
    ("localhost:8000/v1", "does not start with http:// or https://"),
    ("http://exa mple.com/v1", "'exa mple.com' is not a host name"),
    ("http:///v1", "names no host"),
])
def test_a_base_url_no_request_can_reach_is_one_error_where_it_is_given(url, said, capsys):
    """A port past 65535 or an unclosed IPv6 bracket raised out of `Agent.run` at the first
    request (an ExceptionGroup, an InvalidURL: no trace); `localhost:8000/v1` (no scheme)
    and a space in the host failed only when the run began. One error, when the model is
    made, naming the URL and what was expected."""
    from routine.cli.commands import main
    from routine.errors import RoutineError
    from routine.models.client import OpenAIModel

    with pytest.raises(RoutineError, match=re.escape(said)):
        OpenAIModel("m", url, "k")
    code = main(["run", "routines/hr/leave_balance.yaml", "how many days do I have left?",
                 "--base-url", url, "--model", "m"])
    err = capsys.readouterr().err.replace("\n", "")
    assert code == 1 and said in err and "Traceback" not in err
    for fine in ("http://127.0.0.1:8000/v1", "https://api.openai.com/v1",
                 "http://[::1]:8000/v1", None):
        assert OpenAIModel("m", fine, "k").base_url == fine
