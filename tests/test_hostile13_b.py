"""Thirteenth hostile round (b): a hospital's patient-scheduling desk on its own endpoint —
find a patient by record number, book a clinic slot with a note, list a patient's scan
files — attacked from three sides: a chat-completions server (real HTTP, on this machine)
that answers with replies of the wrong shape, too deep or too long; tools that raise what
is not an Exception, change what they are given or return file names that are not UTF-8;
and patients who type what looks like one of the routine's references. Each test fails on
the code before its fix."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from routine import Agent, OpenAIModel, RunContext, Toolset, load_routine_text, load_traces
from routine.models.base import ModelReply, set_model_requests_allowed
from routine.models.testing import FunctionModel, ScriptedModel, call

WRITES: list[tuple[Any, ...]] = []  # every booking of the last run, in order


@contextlib.contextmanager
def _ledger() -> Iterator[list[tuple[Any, ...]]]:
    WRITES.clear()
    yield WRITES


desk = Toolset("desk", setup=_ledger)


@desk.tool
def find_patient(ctx: RunContext[list], mrn: str) -> dict:
    """Find a patient by medical record number."""
    return {"patient_id": 17, "mrn": mrn, "name": "Ada Lovelace",
            "allergies": ["penicillin"]}


@desk.tool
def book_slot(ctx: RunContext[list], patient_id: int, clinic: str, note: str = "") -> dict:
    """Book the next slot at a clinic."""
    ctx.deps.append(("book_slot", patient_id, clinic, note))
    return {"booking": "B-1", "clinic": clinic}


BOOK = """
name: book_visit
description: Book a clinic visit for a patient.
toolsets: [desk]
inputs:
  mrn: {type: string, description: the medical record number}
  clinic: {type: string, description: the clinic}
  reason: {type: string, description: why the patient comes}
steps:
  - id: find
    name: Find the patient
    description: Look the patient up.
    tool: find_patient
    args: {mrn: "${inputs.mrn}"}
  - id: book
    name: Book
    description: Book the slot, noting the reason.
    tool: book_slot
    args: {patient_id: "${steps.find.output.patient_id}", clinic: "${inputs.clinic}",
           note: "Reason: ${inputs.reason} (${inputs.clinic})"}
  - id: answer
    name: Answer
    description: Tell the patient.
    finish: true
"""
INPUTS = {"mrn": "M1", "clinic": "cardio", "reason": "chest pain"}


def _agent(model: Any, **settings: Any) -> Agent:
    return Agent(load_routine_text(BOOK, "book.yaml"), [desk], model, **settings)


# --- a real chat-completions server on this machine -----------------------------------------

Answer = dict[str, Any] | tuple[int, str, bytes]


@contextlib.contextmanager
def _endpoint(script: Callable[[int], Answer]) -> Iterator[OpenAIModel]:
    """An OpenAIModel whose server (HTTP on 127.0.0.1) answers the n-th request with
    ``script(n)``: a completion as JSON, or (status, content type, body bytes)."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(1)
            out = script(len(seen) - 1)
            status, kind, data = (200, "application/json", json.dumps(out).encode()) \
                if isinstance(out, dict) else out
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    set_model_requests_allowed(True)  # (this machine's own server: nothing leaves it)
    try:
        yield OpenAIModel("scheduler", f"http://127.0.0.1:{server.server_address[1]}/v1",
                          "none", max_retries=0, timeout=10)
    finally:
        set_model_requests_allowed(False)
        server.shutdown()
        server.server_close()


def completion(content: str | None = None, calls: list[dict[str, Any]] | None = None,
               finish_reason: Any = "stop", usage: Any = None, **message: Any
               ) -> dict[str, Any]:
    msg = {"role": "assistant", "content": content, **message}
    if calls is not None:
        msg["tool_calls"] = calls
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "scheduler",
            "choices": [{"index": 0, "message": msg, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5} if usage is None else usage}


def wire_call(name: str, call_id: str, arguments: str | None = None, **values: Any
              ) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments or json.dumps(values)}}


FIND = completion(calls=[wire_call("find_patient", "a", mrn="M1")])
BOOKING = completion(calls=[wire_call("book_slot", "b", patient_id=17, clinic="cardio",
                                      note="Reason: chest pain (cardio)")])


def _served(*answers: Answer) -> Callable[[int], Answer]:
    return lambda n: answers[min(n, len(answers) - 1)]


# --- (1) the endpoint -------------------------------------------------------------------------

@pytest.mark.parametrize("odd", [
    completion(calls=[wire_call("find_patient", "a", mrn="M1")], finish_reason=5),
    completion(calls=[wire_call("find_patient", "a", mrn="M1")],
               finish_reason={"type": "stop"}),
    completion(calls=[wire_call("find_patient", "a", mrn="M1")],
               usage={"prompt_tokens": "ten", "completion_tokens": 5}),
    completion(calls=[wire_call("find_patient", "a", mrn="M1")],
               usage={"prompt_tokens": 10.5, "completion_tokens": 5}),
], ids=["finish-reason-number", "finish-reason-object", "tokens-text", "tokens-fraction"])
def test_a_reply_whose_finish_reason_or_token_counts_are_not_what_they_say_ends_in_a_trace(odd):
    """A proxy's finish_reason that is not text, or token counts that are not whole numbers,
    raised pydantic's ValidationError out of Agent.run (from Usage, or from TurnRecord after
    the call had run): the run and its trace were lost. Such a reply is not a chat
    completion: the run ends failed, kind endpoint, saying why."""
    with _endpoint(_served(odd)) as model:
        trace = _agent(model).run(None, inputs=INPUTS)
    assert trace.outcome == "failed" and trace.failure_kind == "endpoint"
    assert "not a chat completion" in trace.failure
    assert WRITES == []


def test_a_body_nested_past_python_s_limit_is_not_a_chat_completion():
    """A body of 100,000 nested brackets (a broken proxy, a hostile server) raised
    RecursionError out of response.json(), which caught only ValueError: Agent.run raised."""
    deep = b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with _endpoint(_served((200, "application/json", deep))) as model:
        trace = _agent(model).run(None, inputs=INPUTS)
    assert trace.outcome == "failed" and trace.failure_kind == "endpoint"
    assert "not a chat completion" in trace.failure


def test_a_reply_cut_at_the_clients_limit_is_never_the_answer():
    """A reply whose calls were dropped at max_reply_chars became the patient's answer as
    the client's own placeholder, "(tool calls longer than the reply limit were dropped)";
    a 150,000-character answer was taken cut at 100,000. Cut by the client, a reply is cut as
    one the endpoint stopped at max_tokens: the model is told and asked again."""
    flood = completion(calls=[wire_call("book_slot", "c", patient_id=17, clinic="x" * 200_000)])
    long = completion("Your visit is booked. " + "Details follow. " * 10_000)
    for cut in (flood, long):
        with _endpoint(_served(FIND, BOOKING, cut, completion("Booked: B-1."))) as model:
            trace = _agent(model).run(None, inputs=INPUTS)
        assert trace.outcome == "answered" and trace.answer == "Booked: B-1."
        last_but_one = trace.turns[-2]
        assert last_but_one.finish_reason == "length" and "max_reply_chars" in last_but_one.note
        assert "cut off" in last_but_one.feedback


def test_half_an_emoji_in_a_reply_or_a_tool_result_keeps_the_run_and_its_trace(tmp_path):
    """JSON's "\\ud83d" (half an emoji a server cut) in a call's arguments or an answer, or
    a tool that lists a scan file whose name is not UTF-8 (os.fsdecode), put a lone surrogate
    into the history: the next request raised UnicodeEncodeError out of the run, and a trace
    written with trace_dir raised PydanticSerializationError. Such text is U+FFFD."""
    scans = Toolset("scans")

    @scans.tool
    def list_scans(mrn: str) -> list:
        """List a patient's scan files."""
        return [os.fsdecode(b"chest-\xe9.dcm"), "knee.dcm"]

    routine = load_routine_text("""
name: scans
description: List a patient's scans.
toolsets: [scans]
inputs:
  mrn: {type: string, description: the medical record number}
steps:
  - {id: get, name: List, description: List the scans., tool: list_scans,
     args: {mrn: "${inputs.mrn}"}}
  - {id: answer, name: Answer, description: Tell the patient., finish: true}
""", "scans.yaml")
    half = '{"mrn": "M1\\ud83d"}'  # (as the server wrote it: an escape in the JSON text)
    with _endpoint(_served(completion(calls=[wire_call("list_scans", "a", half)]),
                           completion(calls=[wire_call("list_scans", "b", mrn="M1")]),
                           (200, "application/json",
                            json.dumps(completion("Two scans \ud83d")).encode()))) as model:
        trace = Agent(routine, [scans], model).run(None, inputs={"mrn": "M1"},
                                                   trace_dir=tmp_path)
    assert trace.outcome == "answered" and trace.answer == "Two scans \ufffd"
    assert trace.tool_calls[0].arguments == {"mrn": "M1\ufffd"}  # (refused: not the input)
    assert trace.tool_calls[1].result == ["chest-\ufffd.dcm", "knee.dcm"]
    (saved,) = load_traces(tmp_path / "traces.jsonl")
    assert saved.answer == trace.answer


def test_an_integer_past_pythons_digit_limit_in_a_call_is_fed_back():
    """A call with an integer of 5,000 digits (a model stuck repeating a digit) raised
    ValueError ("Exceeds the limit (4300 digits)") out of parse_reply and the run: it is a
    call that cannot be read, fed back to the model, structured or written as text; and read
    as an ask step's value, it is no value."""
    digits = "9" * 5000
    for first in (ModelReply(tool_calls=[wire_call("find_patient", "a",
                                                   '{"mrn": ' + digits + "}")]),
                  '<tool_call>{"name": "find_patient", "arguments": {"mrn": ' + digits
                  + "}}</tool_call>"):
        model = ScriptedModel([first, call("find_patient", mrn="M1"),
                               call("book_slot", patient_id=17, clinic="cardio",
                                    note="Reason: chest pain (cardio)"), "Booked."])
        trace = _agent(model).run(None, inputs=INPUTS)
        assert trace.outcome == "answered"
        assert "could not be read" in trace.turns[0].feedback
    asking = BOOK.replace("steps:\n", "steps:\n  - {id: ask, name: Ask, description: Ask., "
                          "ask: 'Which record number?', fills: [mrn]}\n", 1)

    def reader(request):
        if request.guide is not None and request.guide.label == "inputs":
            return '{"mrn": ' + digits + "}"
        return "Booked."

    agent = Agent(load_routine_text(asking, "book.yaml"), [desk], FunctionModel(reader))
    with agent.conversation(inputs={"clinic": "cardio", "reason": "pain"}) as chat:
        reply = chat.send("Book me in, record " + digits)
    assert reply.status == "waiting" and reply.waiting_for == "inputs"


# --- (2) the tools ----------------------------------------------------------------------------

def _one_tool_run(tool_function: Callable[..., Any]) -> Any:
    tools = Toolset("odd")
    tools.tool(tool_function)
    routine = load_routine_text(f"""
name: odd
description: Run one tool.
toolsets: [odd]
steps:
  - {{id: run, name: Run, description: Run it., tool: {tool_function.__name__}}}
  - {{id: answer, name: Answer, description: Tell the patient., finish: true}}
""", "odd.yaml")
    model = ScriptedModel([call(tool_function.__name__), "It did not go through.",
                           "It did not go through."])  # (told once to answer after it)
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(Agent(routine, [tools], model, timeout_s=5).run("go"))
        except BaseException as exc:  # noqa: BLE001 - what the run raised is the finding
            done.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()  # (a hang must fail, not block)
    return done.result(timeout=20)


class Paged(BaseException):
    """A pager library's own BaseException (not an Exception)."""


def test_an_async_tool_raising_cancelled_error_or_a_base_exception_is_its_error():
    """An async tool that raised CancelledError itself (an inner task of its HTTP client
    cancelled) left Agent.run waiting forever, past timeout_s; one that raised GeneratorExit
    or a BaseException of its own ended the run by raising it: the trace was lost. Nobody
    cancelled the run: it is the tool's error, data for the model."""
    async def reserve_theatre() -> str:
        """Reserve an operating theatre."""
        raise asyncio.CancelledError()

    async def page_surgeon() -> str:
        """Page the surgeon on call."""
        raise Paged("pager offline")

    async def close_list() -> str:
        """Close the day's list."""
        raise GeneratorExit()

    for tool_function, error in ((reserve_theatre, "CancelledError"),
                                 (page_surgeon, "Paged: pager offline"),
                                 (close_list, "GeneratorExit")):
        trace = _one_tool_run(tool_function)
        assert trace.outcome == "answered", tool_function.__name__
        assert (trace.tool_calls[0].error_kind, trace.tool_calls[0].error) == \
            ("tool_error", error)


def test_a_run_cancelled_from_inside_does_not_leave_run_waiting_forever():
    """A model client whose own inner task was cancelled (a CancelledError no caller asked
    for) ended the run's task cancelled, and run_blocking's future, already running, could
    not be cancelled: Agent.run waited forever. It raises now."""
    def cancelled(request):
        raise asyncio.CancelledError()

    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(_agent(FunctionModel(cancelled)).run(None, inputs=INPUTS))
        except BaseException as exc:  # noqa: BLE001
            done.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    with pytest.raises(concurrent.futures.CancelledError, match="cancelled from inside"):
        done.result(timeout=20)


def test_a_tool_that_changes_its_arguments_changes_no_earlier_output():
    """A tool whose parameter is typed Any got the earlier step's output itself: its
    `chart["mrn"] = ...` changed what find_patient returned in the trace, and the next
    step's ${steps.find.output.mrn} read the changed value. A tool gets its own copy."""
    charts = Toolset("charts")

    @charts.tool
    def get_chart(mrn: str) -> dict:
        """Get a patient's chart."""
        return {"mrn": mrn, "allergies": ["penicillin"]}

    @charts.tool
    def add_allergy(chart: Any, allergy: str) -> str:
        """Add an allergy to a chart (normalising the chart in place: a slip)."""
        chart["mrn"] = chart["mrn"].lower()
        chart["allergies"].append(allergy)
        return "added"

    @charts.tool
    def print_wristband(mrn: str) -> str:
        """Print a wristband."""
        return f"printed for {mrn}"

    routine = load_routine_text("""
name: allergy
description: Add an allergy and print a new wristband.
toolsets: [charts]
inputs:
  mrn: {type: string, description: the medical record number}
steps:
  - {id: get, name: Get, description: Get the chart., tool: get_chart,
     args: {mrn: "${inputs.mrn}"}}
  - {id: add, name: Add, description: Add latex., tool: add_allergy,
     args: {chart: "${steps.get.output}", allergy: latex}}
  - {id: band, name: Band, description: Print the wristband., tool: print_wristband,
     args: {mrn: "${steps.get.output.mrn}"}}
  - {id: answer, name: Answer, description: Tell the nurse., finish: true}
""", "allergy.yaml")

    def follow(request):
        guide = request.guide
        if guide is not None and guide.step_id in ("get", "add", "band"):
            tool = guide.tools[0]
            return call(tool, **guide.arguments[tool])
        return "Done."

    trace = Agent(routine, [charts], FunctionModel(follow)).run(None, inputs={"mrn": "MRN-7"})
    assert trace.outcome == "answered"
    assert trace.tool_calls[0].result == {"mrn": "MRN-7", "allergies": ["penicillin"]}
    assert trace.tool_calls[2].arguments == {"mrn": "MRN-7"}


# --- (3) the patient's words ------------------------------------------------------------------

def test_a_value_that_reads_like_a_reference_is_text_in_a_note_built_from_references():
    """A reason typed as "pain ${inputs.clinic}" was replaced in its turn when the note
    "Reason: ${inputs.reason} (${inputs.clinic})" was built: the model was told to write
    "Reason: pain cardio (cardio)", words the patient never said. References are filled in
    one pass: what a value says is text."""
    model = ScriptedModel([call("find_patient", mrn="M1"),
                           call("book_slot", patient_id=17, clinic="cardio", note="x"),
                           "Booked."])
    said = {**INPUTS, "reason": "pain ${inputs.clinic} {{ 7*7 }}"}
    trace = _agent(model).run(None, inputs=said)
    assert trace.outcome == "answered"
    told = model.requests[1].guide.arguments["book_slot"]["note"]
    assert told == "Reason: pain ${inputs.clinic} {{ 7*7 }} (cardio)"
