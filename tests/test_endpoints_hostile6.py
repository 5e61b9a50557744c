"""Bugs found by the sixth hostile-input round's endpoint probe (a freight dispatch desk on
its own servers: Qwen3 on vLLM, OpenAI's reasoning models, proxies): the real HTTP client
(OpenAIModel over an httpx transport) and the run loop. Each test fails on the code before
its fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from routine import Agent, OpenAIModel, RunContext, Toolset, load_routine_text
from routine.errors import ModelRequestError, ModelServerError, ModelUnavailable
from routine.models.base import TurnGuide, set_model_requests_allowed
from routine.models.parsing import parse_reply, split_reasoning


@pytest.fixture(autouse=True)
def _allow():
    set_model_requests_allowed(True)  # the transport is in-process: nothing leaves it
    yield
    set_model_requests_allowed(False)


WRITES: list[tuple[Any, ...]] = []  # every write of the last run, in order


@contextlib.contextmanager
def _ledger():
    WRITES.clear()
    yield WRITES


freight = Toolset("freight", setup=_ledger)


@freight.tool
def find_shipment(ctx: RunContext[list], ref: str) -> dict:
    """Find a shipment by its reference."""
    return {"ref": ref, "status": "held at customs", "pickup": "2026-03-08"}


@freight.tool
def rebook_pickup(ctx: RunContext[list], ref: str, date: str) -> str:
    """Rebook a shipment's pickup for a date (YYYY-MM-DD)."""
    ctx.deps.append(("rebook_pickup", ref, date))
    return f"pickup of {ref} rebooked for {date}"


REBOOK = """
name: rebook
description: Rebook a shipment's pickup.
inputs:
  ref: {type: string, description: the shipment reference}
  date: {type: string, description: the new pickup date}
steps:
  - id: find
    name: Find the shipment
    description: Look the shipment up.
    tool: find_shipment
    args: {ref: "${inputs.ref}"}
  - id: rebook
    name: Rebook the pickup
    description: Move the pickup to the new date.
    tool: rebook_pickup
    args: {ref: "${inputs.ref}", date: "${inputs.date}"}
  - id: answer
    name: Answer
    description: Tell the customer the new pickup date.
    finish: true
"""

Reply = dict[str, Any]


def completion(content: Any = None, tool_calls: Any = None, finish_reason: str = "stop",
               **message: Any) -> Reply:
    msg = {"role": "assistant", "content": content, **message}
    if tool_calls is not None:
        msg["tool_calls"] = tool_calls
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "qwen3",
            "choices": [{"index": 0, "message": msg, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def wire_call(name: str, call_id: str | None = None, **arguments: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function",
                           "function": {"name": name, "arguments": json.dumps(arguments)}}
    if call_id is not None:
        out["id"] = call_id
    return out


def endpoint(script: Callable[[dict[str, Any], int], httpx.Response | Reply],
             api_key: str = "k", **kwargs: Any) -> tuple[OpenAIModel, list[dict[str, Any]]]:
    """An OpenAIModel whose server answers ``script(body, n)``; the bodies it was sent."""
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        out = script(body, len(seen) - 1)
        return out if isinstance(out, httpx.Response) else httpx.Response(200, json=out)

    client = openai.AsyncOpenAI(base_url="http://freight.test/v1", api_key=api_key,
                                max_retries=0, http_client=httpx.AsyncClient(
                                    transport=httpx.MockTransport(handler)))
    return OpenAIModel("qwen3", "http://freight.test/v1", api_key, client=client,
                       **kwargs), seen


def run(script: Callable[[dict[str, Any], int], httpx.Response | Reply], query: str,
        **settings: Any):
    model, seen = endpoint(script)
    agent = Agent(load_routine_text(REBOOK, "rebook.yaml"), [freight], model, **settings)
    trace = agent.run(query, inputs={"ref": "FRT-1", "date": "2026-03-10"})
    return trace, list(WRITES), seen


def in_order(*replies: Reply) -> Callable[[dict[str, Any], int], Reply]:
    return lambda body, n: replies[min(n, len(replies) - 1)]


# --- a reasoning model's thinking ---------------------------------------------------------

def test_a_call_considered_inside_think_is_never_run():
    thinking = ('<think>I could do <tool_call>{"name": "rebook_pickup", "arguments": '
                '{"ref": "FRT-1", "date": "2026-03-09"}}</tool_call> but the user said the '
                '10th</think>')
    trace, ledger, _ = run(in_order(
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(thinking + '<tool_call>{"name": "rebook_pickup", "arguments": '
                   '{"ref": "FRT-1", "date": "2026-03-10"}}</tool_call>'),
        completion("Rebooked for 10 March.")), "Rebook FRT-1 for the 10th")
    assert ledger == [("rebook_pickup", "FRT-1", "2026-03-10")]
    assert trace.outcome == "answered"
    assert "user said the 10th" in trace.turns[1].reasoning
    assert "<think>" not in trace.turns[1].model_text


def test_a_record_inside_think_does_not_hide_the_real_call():
    reply = parse_reply('<think>{"name": "Müller GmbH", "city": "Hamburg"}</think>\n'
                        '{"name": "find_shipment", "arguments": {"ref": "FRT-1"}}')
    assert [c.name for c in reply.calls] == ["find_shipment"]


def test_thinking_is_not_the_answer_and_is_kept_in_the_trace():
    trace, _, seen = run(in_order(
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "b", ref="FRT-1", date="2026-03-10")]),
        completion("<think>\nInternal: customer on credit hold, do not mention.\n</think>\n\n"
                   "FRT-1's pickup is now 10 March.")), "Rebook FRT-1 for the 10th")
    assert trace.answer == "FRT-1's pickup is now 10 March."
    assert "credit hold" in trace.turns[-1].reasoning
    assert all("credit hold" not in json.dumps(body["messages"]) for body in seen)


def test_reasoning_fields_and_a_lone_closing_tag():
    assert split_reasoning("step by step...</think>\n\nIt is held.") == ("step by step...",
                                                                        "It is held.")
    assert split_reasoning("<think>cut off while thinking") == ("cut off while thinking", "")
    model, _ = endpoint(lambda body, n: completion(
        None, [wire_call("find_shipment", "a", ref="FRT-1")], reasoning_content="look it up"))
    reply = asyncio.run(model.complete([], []))
    assert reply.reasoning == "look it up" and reply.content == ""


def test_thinking_before_the_inputs_json_still_reads_the_inputs():
    routine = REBOOK.replace("  date: {type: string", "  date: {type: string, required: true")
    replies = iter([
        completion('<think>The user wants {ref} and {date}.</think>\n'
                   '{"ref": "FRT-1", "date": "2026-03-10"}'),
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "b", ref="FRT-1", date="2026-03-10")]),
        completion("Rebooked.")])
    model, _ = endpoint(lambda body, n: next(replies))
    agent = Agent(load_routine_text(routine, "rebook.yaml"), [freight], model,
                  inputs_first=True)
    trace = agent.run("Please move the pickup of FRT-1 to 2026-03-10")
    assert trace.inputs == {"ref": "FRT-1", "date": "2026-03-10"}
    assert WRITES == [("rebook_pickup", "FRT-1", "2026-03-10")]


# --- answers that quote JSON ----------------------------------------------------------------

def test_an_answer_quoting_a_record_is_an_answer():
    tools = [{"type": "function", "function": {"name": "find_shipment", "parameters": {}}}]
    for text in ('The consignee is {"name": "Müller GmbH", "city": "Hamburg"}.',
                 'Consignee ("name": Müller GmbH) in Hamburg.',
                 '```json\n{"name": "Müller GmbH"}\n```'):
        reply = parse_reply(text, None, tools)
        assert reply.calls == [] and reply.text
    # shaped like a call, or naming an offered tool: still a call
    assert parse_reply('{"name": "nope", "arguments": {}}', None, tools).calls[0].name == "nope"
    assert parse_reply('{"name": "find_shipment"}', None, tools).calls[0].name == "find_shipment"


# --- replies the endpoint cut off -------------------------------------------------------------

def test_a_truncated_answer_is_not_the_answer():
    trace, _, seen = run(in_order(
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "b", ref="FRT-1", date="2026-03-10")]),
        completion("FRT-1 is held at cus", finish_reason="length"),
        completion("FRT-1's pickup is now 10 March.")), "Rebook FRT-1")
    assert trace.answer == "FRT-1's pickup is now 10 March."
    assert trace.turns[2].finish_reason == "length" and "cut off" in trace.turns[2].feedback
    assert "max_tokens=512" in trace.turns[2].feedback


def test_a_truncated_call_says_it_was_cut_off():
    trace, _, _ = run(in_order(
        completion('{"name": "find_shipment", "arguments": {"ref": "FRT', finish_reason="length"),
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "b", ref="FRT-1", date="2026-03-10")]),
        completion("Done.")), "Rebook FRT-1")
    assert trace.outcome == "answered" and "cut off at the token limit" in trace.turns[0].feedback


def test_an_empty_reply_at_the_answer_step_is_told_to_answer():
    trace, _, _ = run(in_order(
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "b", ref="FRT-1", date="2026-03-10")]),
        completion(None, reasoning_content="done, now answer"),
        completion("Done.")), "Rebook FRT-1")
    assert trace.turns[2].feedback == "Your reply was empty: answer the user."
    assert "tool call" not in trace.turns[2].feedback


# --- what endpoints refuse ------------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 404, 415, 422, 501])
def test_a_refused_constraint_falls_back_whatever_the_status(status):
    def script(body: dict[str, Any], n: int) -> httpx.Response | Reply:
        if "response_format" in body:
            return httpx.Response(status, json={"detail": "unknown variant 'json_schema'"})
        return completion('{"name": "finish", "arguments": {"answer": "ok"}}')

    model, seen = endpoint(script)
    guide = TurnGuide("a", "3", ("finish",), constrain=True)
    reply = asyncio.run(model.complete([], [], guide=guide))
    assert reply.decoding == "free" and f"HTTP {status}" in reply.note
    assert "unknown variant" in model.refusal


def test_one_refused_schema_does_not_turn_guided_decoding_off_for_good():
    def script(body: dict[str, Any], n: int) -> httpx.Response | Reply:
        schema = json.dumps(body.get("response_format"))
        if "rebook_pickup" in schema:
            return httpx.Response(400, json={"error": {"message": "xgrammar: unsupported"}})
        return completion('{"name": "finish", "arguments": {"answer": "ok"}}')

    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("rebook_pickup", "finish")]
    model, seen = endpoint(script)
    refused = asyncio.run(model.complete([], tools, guide=TurnGuide(
        "r", "2", ("rebook_pickup",), constrain=True)))
    taken = asyncio.run(model.complete([], tools, guide=TurnGuide(
        "a", "3", ("finish",), constrain=True)))
    assert refused.decoding == "free" and taken.decoding == "json_schema"
    again = asyncio.run(model.complete([], tools, guide=TurnGuide(
        "r", "2", ("rebook_pickup",), constrain=True)))
    assert again.decoding == "free" and "sent free" in again.note
    assert len(seen) == 4  # the refused schema was not sent again


def test_an_endpoint_without_any_structured_output_is_asked_free_after_three_refusals():
    def script(body: dict[str, Any], n: int) -> httpx.Response | Reply:
        if "response_format" in body:
            return httpx.Response(400, json={"error": {"message": "no response_format"}})
        return completion("ok")

    model, seen = endpoint(script)
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in "abcd"]
    for step in "abcd":
        asyncio.run(model.complete([], tools, guide=TurnGuide(step, "1", (step,),
                                                              constrain=True)))
    assert model.structured == "off" and len(seen) == 7  # 3 refused + 3 free, then 1 free


def test_reasoning_models_parameters_are_adapted():
    def script(body: dict[str, Any], n: int) -> httpx.Response | Reply:
        if "max_tokens" in body:
            return httpx.Response(400, json={"error": {
                "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                           "model. Use 'max_completion_tokens' instead."}})
        if "temperature" in body:
            return httpx.Response(400, json={"error": {
                "message": "Unsupported value: 'temperature' does not support 0 with this "
                           "model. Only the default (1) value is supported."}})
        return completion("ok")

    model, seen = endpoint(script)
    reply = asyncio.run(model.complete([], [], temperature=0, max_tokens=64, seed=0))
    assert reply.content == "ok" and seen[-1]["max_completion_tokens"] == 64
    assert "temperature" not in seen[-1] and "max_completion_tokens" in reply.note
    later = asyncio.run(model.complete([], [], temperature=0, max_tokens=64))
    assert later.content == "ok" and len(seen) == 4  # learnt: the next request goes through


def test_settings_set_to_none_are_not_sent():
    model, seen = endpoint(lambda body, n: completion("ok"))
    asyncio.run(model.complete([], [], temperature=None, max_tokens=None))
    assert "temperature" not in seen[0] and "max_tokens" not in seen[0]
    from routine import RunSettings
    assert RunSettings(temperature=None, max_tokens=None, seed=None).sampling() == {}


def test_an_api_key_the_server_echoes_is_masked():
    key = "sk-SECRET-KEY-123"
    model, _ = endpoint(lambda body, n: httpx.Response(401, json={"error": {
        "message": f"Incorrect API key provided: {key}"}}), api_key=key)
    with pytest.raises(ModelUnavailable) as caught:
        asyncio.run(model.complete([], []))
    assert key not in str(caught.value) and "***" in str(caught.value)


def test_duplicate_or_missing_call_ids_are_made_unique():
    trace, ledger, seen = run(in_order(
        completion(tool_calls=[wire_call("find_shipment", "call_0", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "call_0", ref="FRT-1",
                                         date="2026-03-10")]),
        completion("Done.")), "Rebook FRT-1")
    ids = [c.call_id for c in trace.tool_calls]
    assert len(set(ids)) == 2 and ledger
    tool_ids = [m["tool_call_id"] for m in seen[-1]["messages"] if m["role"] == "tool"]
    assert len(set(tool_ids)) == 2


def test_a_body_that_is_not_json_names_what_came_back():
    model, _ = endpoint(lambda body, n: httpx.Response(
        200, text="data: {}\n\n", headers={"content-type": "text/event-stream"}))
    with pytest.raises(ModelServerError, match="stream"):
        asyncio.run(model.complete([], []))
    html, _ = endpoint(lambda body, n: httpx.Response(
        200, text="<html>Proxy login</html>", headers={"content-type": "text/html"}))
    with pytest.raises(ModelServerError, match="text/html.*Proxy login"):
        asyncio.run(html.complete([], []))
    missing, _ = endpoint(lambda body, n: httpx.Response(404, text=""))
    with pytest.raises(ModelRequestError, match="/v1"):
        asyncio.run(missing.complete([], []))


def test_odd_reply_shapes_are_read_or_fed_back():
    parts, _ = endpoint(lambda body, n: completion([{"type": "text", "text": "Held "},
                                                    {"type": "text", "text": "at customs."}]))
    assert asyncio.run(parts.complete([], [])).content == "Held at customs."
    single, _ = endpoint(lambda body, n: completion(None, wire_call("find_shipment", "a",
                                                                    ref="FRT-1")))
    assert asyncio.run(single.complete([], [])).tool_calls[0]["function"]["name"] == \
        "find_shipment"
    trace, _, _ = run(in_order(
        completion(None, [{"id": "a", "type": "function",
                           "function": {"name": "find_shipment", "arguments": 7}}]),
        completion(tool_calls=[wire_call("find_shipment", "a", ref="FRT-1")]),
        completion(tool_calls=[wire_call("rebook_pickup", "b", ref="FRT-1", date="2026-03-10")]),
        completion("Done.")), "Rebook FRT-1")
    assert trace.outcome == "answered" and "must be a JSON object" in trace.turns[0].feedback


def test_the_project_file_sets_the_endpoints_options(tmp_path, monkeypatch):
    from routine.cli import commands
    from routine.spec.project import Project

    (tmp_path / "routine.toml").write_text(
        '[model]\nname = "qwen3-14b"\nbase_url = "http://vllm.test/v1"\nstructured = "tool_choice"\n'
        'extra_body = { chat_template_kwargs = { enable_thinking = false } }\n')
    monkeypatch.chdir(tmp_path)
    for name in ("ROUTINE_BASE_URL", "OPENAI_BASE_URL", "ROUTINE_MODEL", "OPENAI_MODEL",
                 "ROUTINE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    assert Project.discover().model.extra_body == {
        "chat_template_kwargs": {"enable_thinking": False}}
    with commands._model(None, None, None, None, 30.0) as model:
        assert model.structured == "tool_choice"
        assert model.default_settings["extra_body"]["chat_template_kwargs"] == {
            "enable_thinking": False}
    (tmp_path / "routine.toml").write_text('[model]\nstructured = "grammar"\n')
    with pytest.raises(Exception, match="structured"):
        Project.discover()


def test_an_endpoint_that_refuses_a_parameter_after_its_adaptation_is_one_clear_error():
    model, seen = endpoint(lambda body, n: httpx.Response(400, json={"error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                   "Use 'max_completion_tokens' instead."}}))  # (a proxy that says it always)
    with pytest.raises(ModelRequestError, match="max_tokens"):
        asyncio.run(model.complete([], [], max_tokens=64))
    assert len(seen) == 2  # once as sent, once renamed: then the refusal stands
