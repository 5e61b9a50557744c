"""Hostile review, round 12 part D: conversations in a domain of one's own (a pharmacy
that refills prescriptions and delivers them), as a demanding user holds them through
`routine chat` and the Python Conversation API — a yes that answers one question read as
the answer to another, a hand-off resumed from its trace, a confirmed call that fails, text
that is not UTF-8 from the command line or a strict terminal, a message that is not text.
Scripted model doubles and a scripted HTTP endpoint, no model."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.cli.commands import main
from routine.models.testing import FunctionModel, Request, ScriptedModel, call
from routine.run.conversation import Conversation
from routine.run.trace import load_traces

from .test_cli import ScriptedServer, _calls, scripted_server  # noqa: F401 - the fixture


@dataclass
class Pharmacy:
    """One run's pharmacy: its prescriptions and what was done."""

    refills_left: dict[int, int] = field(default_factory=lambda: {12: 2, 13: 0})
    done: list[tuple] = field(default_factory=list)
    down: int = 0  # refills that fail (the pharmacy system is down) before one goes through


STORES: list[Pharmacy] = []


@contextlib.contextmanager
def _pharmacy():
    store = Pharmacy(down=DOWN[0])
    STORES.append(store)
    yield store


DOWN = [0]
PHARMACY = Toolset("pharmacy", setup=_pharmacy)


class Fill(BaseModel):
    fill_id: int
    rx_id: int
    qty: int


@PHARMACY.tool
def refill(ctx: RunContext[Pharmacy], rx_id: int, qty: int) -> Fill:
    """Refill a prescription.

    Args:
        rx_id: the prescription number.
        qty: how many tablets.
    """
    store = ctx.deps
    if store.down:
        store.down -= 1
        raise ValueError("the pharmacy system is down, try again in a minute")
    if store.refills_left.get(rx_id, 0) < 1:
        raise LookupError(f"prescription {rx_id} has no refills left")
    store.refills_left[rx_id] -= 1
    store.done.append(("refill", rx_id, qty))
    return Fill(fill_id=len(store.done), rx_id=rx_id, qty=qty)


@PHARMACY.tool
def schedule_delivery(ctx: RunContext[Pharmacy], rx_id: int) -> str:
    """Deliver a prescription to the patient's home.

    Args:
        rx_id: the prescription number.
    """
    ctx.deps.done.append(("deliver", rx_id))
    return f"prescription {rx_id} will be delivered tomorrow"


REFILL = """
name: refill
description: Refill a prescription once the patient confirms.
toolsets: [pharmacy]
inputs:
  rx_id: {type: integer, description: the prescription number}
  qty: {type: integer, description: how many tablets}
steps:
  - {id: ask, name: Ask, description: Ask which prescription and how many tablets.,
     ask: "Which prescription, and how many tablets?", fills: [rx_id, qty]}
  - {id: fill, name: Refill, description: Refill it., tool: refill,
     args: {rx_id: "${inputs.rx_id}", qty: "${inputs.qty}"},
     confirm: "Refill {{ inputs.qty }} tablets of prescription {{ inputs.rx_id }}?"}
  - {id: done, name: Done, description: Say it is on its way., finish: true,
     message: "Refill {{ steps.fill.output.fill_id }} is on its way."}
"""

THEN_DELIVERY = REFILL.replace("""  - {id: done, name: Done, description: Say it is on its way., finish: true,
     message: "Refill {{ steps.fill.output.fill_id }} is on its way."}
""", """  - {id: go, name: Delivery, description: Pass on to the delivery desk., handoff: delivery}
""")

ASK_DELIVERY = """
name: delivery
description: Ask whether to deliver the refill home.
toolsets: [pharmacy]
inputs:
  rx_id: {type: integer, description: the prescription number}
  home: {type: boolean, description: whether the patient wants it delivered home}
steps:
  - {id: ask, name: Ask, description: Ask whether to deliver it.,
     ask: "Shall we deliver it to your home?", fills: [home]}
  - {id: done, name: Done, description: Say what happens., finish: true,
     message: "Home delivery: {{ inputs.home }}."}
"""

CONFIRM_DELIVERY = """
name: delivery
description: Deliver the refill home once the patient confirms.
toolsets: [pharmacy]
inputs:
  rx_id: {type: integer, description: the prescription number}
steps:
  - {id: ship, name: Ship, description: Deliver it., tool: schedule_delivery,
     args: {rx_id: "${inputs.rx_id}"}, confirm: "Deliver prescription {{ inputs.rx_id }} home?"}
  - {id: done, name: Done, description: Say so., finish: true, message: "Delivery booked."}
"""


def _routine(text: str, name: str = "refill.yaml"):
    return load_routine_text(text, name)


# ---------------------------------------------------------------- a yes is one answer
def test_a_yes_to_a_confirmation_is_not_read_after_a_hand_off_as_the_next_routines_answer():
    """After a hand-off, the patient's "yes" to "Refill 30 tablets?" was read by the next
    routine as the answer to "Shall we deliver it to your home?" — a question never asked:
    delivery was set to true and the question skipped."""
    read: list[str] = []
    model = FunctionModel(lambda r: _read_delivery(r, read))
    chat = Conversation(Agent(_routine(THEN_DELIVERY), [PHARMACY], model),
                        routines={"delivery": _routine(ASK_DELIVERY, "delivery.yaml")})
    with chat:
        assert chat.send("Refill prescription 12, 30 tablets").waiting_for == "confirmation"
        reply = chat.send("yes")
    assert (reply.status, reply.routine) == ("waiting", "delivery"), reply.text
    assert reply.text == "Shall we deliver it to your home?"
    assert all("yes" not in text for text in read[1:]), read


def _read_delivery(request: Request, read: list[str]):
    if request.guide is not None and request.guide.label == "inputs":
        text = [m.content for m in request.messages if m.role == "user"][-1]
        read.append(text)
        wanted = request.guide.schema["properties"]
        known = {"rx_id": 12 if "12" in text else None, "qty": 30 if "30" in text else None,
                 "home": True if "yes" in text.lower() else None}
        return json.dumps({n: known.get(n) for n in wanted})
    return call("refill", rx_id=12, qty=30)


BRANCH_ON_DELIVERY = """
name: refill
description: Refill a prescription, and deliver it when the patient asked for that.
toolsets: [pharmacy]
inputs:
  rx_id: {type: integer, description: the prescription number}
  qty: {type: integer, description: how many tablets}
  home: {type: boolean, description: whether the patient asked for home delivery,
         required: false, default: false}
steps:
  - {id: ask, name: Ask, description: Ask which prescription and how many tablets.,
     ask: "Which prescription, and how many tablets?", fills: [rx_id, qty]}
  - {id: fill, name: Refill, description: Refill it., tool: refill,
     args: {rx_id: "${inputs.rx_id}", qty: "${inputs.qty}"},
     confirm: "Refill {{ inputs.qty }} tablets of prescription {{ inputs.rx_id }}?"}
  - id: how
    name: Delivery
    description: Deliver it when the patient asked for home delivery.
    branch:
      - condition: the patient asked for home delivery
        when: inputs.home
        steps:
          - {id: ship, name: Ship, description: Deliver it., tool: schedule_delivery,
             args: {rx_id: "${inputs.rx_id}"}}
      - condition: otherwise
        steps: []
  - {id: done, name: Done, description: Say it is done., finish: true,
     message: "Refill {{ steps.fill.output.fill_id }} is on its way."}
"""


def test_a_yes_to_a_confirmation_is_not_read_as_an_input_a_later_branch_needs():
    """The "yes" to "Refill 30 tablets of prescription 12?" was read, with the first message,
    as the patient asking for home delivery (`when: inputs.home`): a delivery was scheduled
    that nobody asked for, a write without a yes."""
    STORES.clear()
    read: list[str] = []

    def calls(request: Request):
        if any(m.role == "tool" and "fill_id" in str(m.content) for m in request.messages):
            return call("schedule_delivery", rx_id=12)
        return call("refill", rx_id=12, qty=30)

    model = FunctionModel(lambda r: _yes_reader(r, read, calls))  # reads "yes" as a yes
    with Conversation(Agent(_routine(BRANCH_ON_DELIVERY), [PHARMACY], model)) as chat:
        assert chat.send("Refill prescription 12, 30 tablets").waiting_for == "confirmation"
        reply = chat.send("yes")
    assert reply.status == "answered", reply.text
    assert STORES[-1].done == [("refill", 12, 30)]  # before: and ("deliver", 12)
    assert all(text.strip() != "yes" and not text.endswith("\nyes") for text in read), read


def _yes_reader(request: Request, read: list[str], calls):
    if request.guide is not None and request.guide.label == "inputs":
        text = [m.content for m in request.messages if m.role == "user"][-1]
        read.append(text)
        wanted = request.guide.schema["properties"]
        said_yes = "yes" in text.lower().split()
        known = {"rx_id": 12 if "12" in text else None, "qty": 30 if "30" in text else None,
                 "home": True if said_yes else None, "pickup": "yes" if said_yes else None}
        return json.dumps({n: known.get(n) for n in wanted})
    return calls(request)


PICKUP = REFILL.replace("""  qty: {type: integer, description: how many tablets}
""", """  qty: {type: integer, description: how many tablets}
  pickup: {type: string, description: where the patient collects it, required: false,
           default: at the counter}
""").replace("}} is on its way.", "}} is ready {{ inputs.pickup }}.")


def test_a_final_message_takes_an_optional_inputs_default_not_a_yes_or_the_models_words():
    """A finish `message` naming an optional input the patient never stated ("Refill 1 is
    ready {{ inputs.pickup }}.", default "at the counter") read the "yes" to the refill as
    its value ("Refill 1 is ready yes."); and with nothing read, the routine's exact message
    was dropped for the model's own words, the input's default unused."""
    read: list[str] = []
    model = FunctionModel(lambda r: _yes_reader(r, read, lambda _: call("refill", rx_id=12,
                                                                        qty=30)))
    with Conversation(Agent(_routine(PICKUP), [PHARMACY], model)) as chat:
        chat.send("Refill prescription 12, 30 tablets")
        assert chat.send("yes").text == "Refill 1 is ready at the counter."
    quiet = ScriptedModel([call("refill", rx_id=12, qty=30)], inputs={"rx_id": 12, "qty": 30})
    with Conversation(Agent(_routine(PICKUP), [PHARMACY], quiet)) as chat:
        chat.send("Refill prescription 12, 30 tablets")
        assert chat.send("yes").text == "Refill 1 is ready at the counter."


# ---------------------------------------------------------------- hand-offs, resumed
def test_a_conversation_resumed_after_a_hand_off_still_says_what_ran_before_it():
    """Saved after the refill ran and the conversation passed to the delivery routine, then
    resumed: a no to the delivery said "Nothing was changed", though the refill had gone
    through (without the resume it said so)."""
    STORES.clear()
    first = Agent(_routine(THEN_DELIVERY), [PHARMACY],
                  ScriptedModel([call("refill", rx_id=12, qty=30),
                                 call("schedule_delivery", rx_id=12)],
                                inputs={"rx_id": 12, "qty": 30}))
    delivery = {"delivery": _routine(CONFIRM_DELIVERY, "delivery.yaml")}
    with Conversation(first, routines=delivery) as chat:
        chat.send("Refill prescription 12, 30 tablets")
        saved = chat.send("yes").trace
    assert (saved.routine, saved.outcome) == ("delivery", "waiting")
    saved = type(saved).model_validate_json(saved.model_dump_json())  # as read from a file
    later = Agent(_routine(THEN_DELIVERY), [PHARMACY], ScriptedModel([]))
    with Conversation(later, routines=delivery, trace=saved) as chat:
        reply = chat.send("no thanks, I'll pick it up")
    assert reply.status == "answered"
    assert "Nothing was changed" not in reply.text, reply.text
    assert "refill(rx_id=12, qty=30)" in reply.text, reply.text


# ---------------------------------------------------------------- a yes, then a failure
def test_a_confirmation_asked_again_after_the_confirmed_call_failed_says_that_it_failed():
    """The patient said yes, the refill failed (the pharmacy system was down) and the model
    tried again: the patient was asked the very same "Refill 30 tablets …?" with no word
    that the first try had failed (and may have written), as if the yes was not heard."""
    STORES.clear()
    DOWN[0] = 1
    try:
        model = ScriptedModel([call("refill", rx_id=12, qty=30), call("refill", rx_id=12, qty=30)],
                              inputs={"rx_id": 12, "qty": 30})
        with Conversation(Agent(_routine(REFILL), [PHARMACY], model)) as chat:
            asked = chat.send("Refill prescription 12, 30 tablets")
            again = chat.send("yes")
            assert again.waiting_for == "confirmation"
            assert again.text != asked.text
            assert "the pharmacy system is down" in again.text and asked.text in again.text
            done = chat.send("yes")
    finally:
        DOWN[0] = 0
    assert done.text == "Refill 1 is on its way." and STORES[-1].done == [("refill", 12, 30)]


# ---------------------------------------------------------------- text that is not text
def test_a_message_with_a_lone_surrogate_is_answered_and_its_trace_written(tmp_path):
    """A message holding a lone surrogate (a Latin-1 byte from the command line, read with
    surrogateescape; half an emoji pair cut off by a web client) raised UnicodeEncodeError
    from the model client, and the trace could not be written at all."""
    from routine.run.trace import dump_traces

    model = ScriptedModel([call("refill", rx_id=12, qty=30)], inputs={"rx_id": 12, "qty": 30})
    with Conversation(Agent(_routine(REFILL), [PHARMACY], model)) as chat:
        first = chat.send("Refill prescription 12, 30 tablets, caf\udce9 \ud83d")
        assert first.waiting_for == "confirmation", first.text
        done = chat.send("yes \ude00")
    assert done.status == "answered", done.text
    dump_traces(chat.traces, tmp_path / "t.jsonl")
    (trace,) = load_traces(tmp_path / "t.jsonl")
    assert trace.said[0].endswith("caf\ufffd \ufffd") and trace.outcome == "answered"
    once = Agent(_routine(REFILL), [PHARMACY], ScriptedModel([], inputs={}))  # `routine run`
    dump_traces([once.run("Refill caf\udce9")], tmp_path / "run.jsonl")
    assert next(load_traces(tmp_path / "run.jsonl")).query == "Refill caf\ufffd"


def test_a_message_that_is_not_text_is_refused_before_the_conversation_changes():
    """`chat.send(request.body)` (bytes) raised a TypeError from a regular expression after
    the bytes were kept as what the user said; the error now says what was wrong, and the
    conversation still waits for its yes as before."""
    STORES.clear()
    model = ScriptedModel([call("refill", rx_id=12, qty=30)], inputs={"rx_id": 12, "qty": 30})
    with Conversation(Agent(_routine(REFILL), [PHARMACY], model)) as chat:
        chat.send("Refill prescription 12, 30 tablets")
        for wrong in (b"yes", None):
            with pytest.raises(TypeError, match="message must be text"):
                chat.send(wrong)  # type: ignore[arg-type]
        assert chat.trace.said == ["Refill prescription 12, 30 tablets"]
        assert chat.send("yes").status == "answered"
    assert STORES[-1].done == [("refill", 12, 30)]


@pytest.fixture
def pharmacy_project(tmp_path):
    (tmp_path / "routine.toml").write_text(
        '[toolsets]\npharmacy = "tests.test_hostile12_d:PHARMACY"\n')
    (tmp_path / "refill.yaml").write_text(REFILL)
    return tmp_path


def _chat(url: str, folder, *more: str) -> list[str]:
    return ["--project", str(folder / "routine.toml"), "chat", str(folder / "refill.yaml"),
            "--base-url", url, "--model", "m", "--trace-dir", str(folder / "t"), *more]


@pytest.mark.timeout(60)
def test_chat_with_a_latin1_byte_in_its_first_message_answers_and_keeps_the_trace(
        scripted_server, pharmacy_project, capsys, monkeypatch):  # noqa: F811
    """`routine chat refill "Refill prescription 12, 30 tablets, caf<0xE9>"` in a Latin-1
    terminal ended with "PydanticSerializationError … not expected" and the conversation's
    trace file was left empty."""
    STORES.clear()
    ScriptedServer.script = [{"content": '{"rx_id": 12, "qty": 30}'},
                             _calls("refill", rx_id=12, qty=30)]
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    code = main(_chat(scripted_server, pharmacy_project,
                      "Refill prescription 12, 30 tablets, caf\udce9"))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Refill 1 is on its way." in out and "not expected" not in err
    (trace,) = load_traces(pharmacy_project / "t" / "traces.jsonl")
    assert trace.said == ["Refill prescription 12, 30 tablets, caf\ufffd", "yes"]


@pytest.mark.timeout(60)
def test_chat_reads_a_byte_that_is_not_utf8_from_a_strict_terminal(
        scripted_server, pharmacy_project, capsys, monkeypatch):  # noqa: F811
    """On a UTF-8 locale Python reads stdin strictly: a Latin-1 "é" typed as the answer to
    the question ended the chat with "UnicodeDecodeError … not expected" (the fix for
    non-UTF-8 stdin only held where stdin already used surrogateescape)."""
    STORES.clear()
    ScriptedServer.script = [{"content": '{"rx_id": null, "qty": null}'},
                             {"content": '{"rx_id": 12, "qty": 30}'},
                             _calls("refill", rx_id=12, qty=30)]
    strict = io.TextIOWrapper(io.BytesIO(b"prescription 12, 30 tablets, merci caf\xe9\nyes\n"),
                              encoding="utf-8", errors="strict")
    monkeypatch.setattr("sys.stdin", strict)
    code = main(_chat(scripted_server, pharmacy_project, "I need a refill"))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Refill 1 is on its way." in out and "not expected" not in err
    (trace,) = load_traces(pharmacy_project / "t" / "traces.jsonl")
    assert trace.said[1] == "prescription 12, 30 tablets, merci caf\ufffd"


@pytest.mark.timeout(60)
def test_chat_takes_an_approver_for_a_step_that_needs_approval_besides_the_yes(
        scripted_server, pharmacy_project, capsys, monkeypatch):  # noqa: F811
    """`routine chat` had no approver and no --approve: a refill step with `approval:
    required` asked the patient "Refill 30 tablets …?", took the yes, then always ended
    "Nothing was changed: … not approved (no approver …)" — no chat could ever write."""
    (pharmacy_project / "refill.yaml").write_text(
        REFILL.replace('confirm: "Refill', 'approval: required, confirm: "Refill'))
    for approve, said in (("all", "Refill 1 is on its way."),
                          ("none", "not approved (--approve none: refused by policy)")):
        STORES.clear()
        ScriptedServer.requests = []
        ScriptedServer.script = [{"content": '{"rx_id": 12, "qty": 30}'},
                                 _calls("refill", rx_id=12, qty=30)]
        monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
        code = main(_chat(scripted_server, pharmacy_project,
                          "Refill prescription 12, 30 tablets", "--approve", approve))
        out, err = capsys.readouterr()
        assert code == 0 and said in out, out + err
        assert STORES[-1].done == ([("refill", 12, 30)] if approve == "all" else [])


# ---------------------------------------------------------------- left by the helper, mended
def test_never_mind_to_an_ask_step_stops_the_process_instead_of_asking_again():
    """"never mind" to "Which prescription, and how many tablets?" was read for values,
    asked again up to three times, and the run failed ("asked 3 times and still missing")."""
    def reader(request: Request):
        if request.guide is not None and request.guide.label == "inputs":
            return json.dumps({n: None for n in request.guide.schema["properties"]})
        return call("refill", rx_id=12, qty=30)

    STORES.clear()
    chat = Conversation(Agent(_routine(REFILL), [PHARMACY], FunctionModel(reader)))
    with chat:
        first = chat.send("I need a refill")
        assert first.waiting_for == "inputs", first.text
        reply = chat.send("Oh, never mind then.")
    assert reply.status == "answered" and reply.text.startswith("Stopped at your word")
    assert "Nothing was changed" in reply.text
    assert [store.done for store in STORES] == [[]] and not chat.trace.tool_calls
    # an answer that names a value is still read as one: "cancel" inside it is no stop
    chat = Conversation(Agent(_routine(REFILL), [PHARMACY], FunctionModel(reader)))
    with chat:
        chat.send("I need a refill")
        assert chat.send("cancel the old one, refill 12").status == "waiting"


def test_chat_at_end_of_input_before_a_word_says_so_and_exits_zero(
        pharmacy_project, capsys, monkeypatch):
    """Ctrl-D (or an empty pipe) at chat's first prompt exited 1 and printed nothing."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(_chat("http://127.0.0.1:9/v1", pharmacy_project))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "nothing was said: no conversation began" in err
    written = pharmacy_project / "t" / "traces.jsonl"
    assert not written.exists() or not written.read_text()
