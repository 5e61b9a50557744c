"""OpenAIModel at the HTTP boundary (httpx MockTransport): what is sent, what is read."""

from __future__ import annotations

import asyncio
import json

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
