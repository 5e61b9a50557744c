"""Fourteenth hostile round (d): an airline's rebooking and baggage desk in an async web service —
flights, bookings, seats, bags and claims in a real SQLite file behind a toolset that opens
a connection per run (sync and async tools, one slow, one that times out, one that raises),
routines that rebook a cancelled flight after a confirmation, report a delayed bag asking
for its tag and file a claim that needs approval over an amount — driven as a service
drives it: many runs and conversations at once on one Agent, a conversation per customer
saved to JSON between HTTP requests and resumed in a fresh Agent, requests cancelled
mid-run, per-run timeouts, a setup that fails for one run, async callbacks, and the blocking
API called from inside a running loop. Scripted doubles, no model. The first five tests
failed on the code before their fix (an async on_turn never awaited; a yes whose approver
hangs past timeout_s; a cancelled lookup told as a confirmed call; a retried yes refused
as "not signed"; a connection closed under a sync tool still running — a segfault)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.errors import RoutineError
from routine.models.testing import FunctionModel, ScriptedModel, call
from routine.run.conversation import Conversation
from routine.run.trace import RunTrace

SCHEMA = """
CREATE TABLE flights (id TEXT PRIMARY KEY, origin TEXT, dest TEXT, status TEXT);
CREATE TABLE bookings (id TEXT PRIMARY KEY, passenger TEXT, flight TEXT);
CREATE TABLE seats (flight TEXT, seat TEXT, booking TEXT, PRIMARY KEY (flight, seat));
CREATE TABLE bags (tag TEXT PRIMARY KEY, booking TEXT, status TEXT);
CREATE TABLE claims (id INTEGER PRIMARY KEY, tag TEXT, amount REAL, note TEXT);
CREATE TABLE rebookings (id INTEGER PRIMARY KEY, booking TEXT, old TEXT, new TEXT);
INSERT INTO flights VALUES ('LH100', 'FRA', 'JFK', 'cancelled'), ('LH102', 'FRA', 'JFK',
  'scheduled'), ('LH104', 'FRA', 'JFK', 'scheduled');
INSERT INTO bookings VALUES ('BK1', 'Ana Lima', 'LH100'), ('BK2', 'Ben Okafor', 'LH100'),
  ('BK3', 'Chen Wu', 'LH100');
INSERT INTO seats VALUES ('LH102', '12A', NULL), ('LH102', '12B', NULL),
  ('LH104', '3C', NULL);
INSERT INTO bags VALUES ('TAG1', 'BK1', 'delayed'), ('TAG2', 'BK2', 'loaded');
"""


class Desk:
    """One run's connection to the airline's database file."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.conn.close()


class World:
    """What the tests set per test: the database file, delays, failures."""

    def __init__(self) -> None:
        self.path = Path()
        self.opened: list[Desk] = []
        self.lock = threading.Lock()
        self.setups = 0
        self.fail_setup_at = 0  # the n-th setup (from 1) cannot open the database
        self.calls: list[tuple[str, str]] = []  # (run id, what) as the write tools saw them
        self.trace_delay = 0.0
        self.trace_started = threading.Event()
        self.release = threading.Event()


WORLD = World()


@contextlib.contextmanager
def _open_desk() -> Iterator[Desk]:
    with WORLD.lock:  # (sync setups are entered on threads of their own)
        WORLD.setups += 1
        if WORLD.setups == WORLD.fail_setup_at:
            raise sqlite3.OperationalError("unable to open database file")
        desk = Desk(WORLD.path)
        WORLD.opened.append(desk)
    try:
        yield desk
    finally:
        desk.close()


airline = Toolset("airline", setup=_open_desk)


@airline.tool
def find_booking(ctx: RunContext[Desk], booking: str) -> dict:
    """Look a booking up by its reference.

    Args:
        booking: the booking reference (BK1).
    """
    row = ctx.deps.conn.execute("SELECT b.id, b.passenger, b.flight, f.status FROM bookings b "
                                "JOIN flights f ON f.id = b.flight WHERE b.id = ?",
                                (booking,)).fetchone()
    if row is None:
        raise LookupError(f"no booking {booking}")
    return {"booking": row["id"], "passenger": row["passenger"], "flight": row["flight"],
            "status": row["status"]}


@airline.tool
async def free_seat(ctx: RunContext[Desk], flight: str) -> dict:
    """Find a free seat on a flight.

    Args:
        flight: the flight number.
    """
    await asyncio.sleep(0)
    row = ctx.deps.conn.execute("SELECT seat FROM seats WHERE flight = ? AND booking IS NULL "
                                "ORDER BY seat", (flight,)).fetchone()
    if row is None:
        raise LookupError(f"no free seat on {flight}")
    return {"flight": flight, "seat": row["seat"]}


@airline.tool
def rebook(ctx: RunContext[Desk], booking: str, flight: str, seat: str) -> dict:
    """Move a booking to another flight and seat.

    Args:
        booking: the booking reference.
        flight: the new flight.
        seat: the seat on it.
    """
    WORLD.calls.append((ctx.run_id, booking))
    conn = ctx.deps.conn
    taken = conn.execute("SELECT booking FROM seats WHERE flight = ? AND seat = ?",
                         (flight, seat)).fetchone()
    if taken is None or taken["booking"] is not None:
        raise ValueError(f"seat {seat} on {flight} is not free")
    old = conn.execute("SELECT flight FROM bookings WHERE id = ?", (booking,)).fetchone()
    with conn:
        conn.execute("UPDATE seats SET booking = ? WHERE flight = ? AND seat = ?",
                     (booking, flight, seat))
        conn.execute("UPDATE bookings SET flight = ? WHERE id = ?", (flight, booking))
        cur = conn.execute("INSERT INTO rebookings (booking, old, new) VALUES (?, ?, ?)",
                           (booking, old["flight"], flight))
    return {"rebooking_id": cur.lastrowid, "flight": flight, "seat": seat}


@airline.tool
def trace_bag(ctx: RunContext[Desk], tag: str) -> dict:
    """Ask the baggage tracing system where a bag is (slow).

    Args:
        tag: the bag tag number.
    """
    WORLD.trace_started.set()
    if WORLD.trace_delay:
        WORLD.release.wait(WORLD.trace_delay)
    row = ctx.deps.conn.execute("SELECT status FROM bags WHERE tag = ?", (tag,)).fetchone()
    if row is None:
        raise LookupError(f"no bag with tag {tag}")
    return {"tag": tag, "status": row["status"]}


@airline.tool
def report_delay(ctx: RunContext[Desk], tag: str) -> dict:
    """Report a bag as delayed and open a trace file.

    Args:
        tag: the bag tag number.
    """
    with ctx.deps.conn as conn:
        conn.execute("UPDATE bags SET status = 'reported' WHERE tag = ?", (tag,))
    return {"tag": tag, "file": f"FRA-{tag}"}


@airline.tool
async def file_claim(ctx: RunContext[Desk], tag: str, amount: float, note: str = "") -> dict:
    """File a baggage claim for a bag.

    Args:
        tag: the bag tag number.
        amount: the amount claimed, in EUR.
        note: what the claim is for.
    """
    WORLD.calls.append((ctx.run_id, f"{tag} {amount:g}"))
    if amount <= 0:
        raise ValueError("a claim is for an amount over 0 EUR")
    with ctx.deps.conn as conn:
        cur = conn.execute("INSERT INTO claims (tag, amount, note) VALUES (?, ?, ?)",
                           (tag, amount, note))
    return {"claim_id": cur.lastrowid, "amount": amount}


REBOOK = """
name: rebook_cancelled
description: Rebook a passenger whose flight was cancelled onto another flight.
version: "{version}"
toolsets: [airline]
inputs:
  booking: {{type: string, description: the booking reference}}
  flight: {{type: string, description: the flight to rebook onto}}
steps:
  - id: find
    name: Find the booking
    description: Look the booking up.
    tool: find_booking
    args: {{booking: "${{inputs.booking}}"}}
    output: booking
  - id: seat
    name: Find a seat
    description: Find a free seat on the new flight.
    tool: free_seat
    args: {{flight: "${{inputs.flight}}"}}
    output: seat
  - id: move
    name: Rebook
    description: Move the booking to the new flight and seat.
    tool: rebook
    args: {{booking: "${{inputs.booking}}", flight: "${{inputs.flight}}",
           seat: "${{vars.seat.seat}}"}}
    confirm: "Move {{{{ vars.booking.passenger }}}} to {{{{ inputs.flight }}}}, seat
      {{{{ vars.seat.seat }}}}?"
  - {{id: done, name: Done, description: Say it is done., finish: true,
     message: "You are on {{{{ inputs.flight }}}}, seat {{{{ vars.seat.seat }}}}."}}
"""

DELAYED_BAG = """
name: delayed_bag
description: Report a delayed bag, asking for its tag number.
toolsets: [airline]
inputs:
  tag: {type: string, description: the bag tag number}
steps:
  - id: ask
    name: Ask for the tag
    description: Ask for the bag tag number.
    ask: "What is the number on your bag tag?"
    fills: [tag]
  - {id: where, name: Trace the bag, description: Ask tracing where it is., tool: trace_bag,
     args: {tag: "${inputs.tag}"}}
  - {id: report, name: Report it, description: Report the delay., tool: report_delay,
     args: {tag: "${inputs.tag}"}, output: report}
  - {id: done, name: Done, description: Give the file number., finish: true,
     message: "Your file is {{ vars.report.file }}."}
"""

CLAIM = """
name: baggage_claim
description: File a claim for a damaged or lost bag; over 500 EUR a supervisor approves.
toolsets: [airline]
inputs:
  tag: {type: string, description: the bag tag number}
  amount: {type: number, description: the amount claimed in EUR}
steps:
  - id: size
    name: How large
    description: Claims over 500 EUR need a supervisor.
    branch:
      - condition: over 500 EUR
        when: inputs.amount > 500
        steps:
          - {id: big, name: File a large claim, description: File it., tool: file_claim,
             args: {tag: "${inputs.tag}", amount: "${inputs.amount}"}, approval: required,
             confirm: "File a claim of {{ inputs.amount }} EUR for bag {{ inputs.tag }}?"}
      - condition: otherwise
        when: inputs.amount <= 500
        steps:
          - {id: small, name: File the claim, description: File it., tool: file_claim,
             args: {tag: "${inputs.tag}", amount: "${inputs.amount}"}}
  - {id: done, name: Done, description: Say it is filed., finish: true,
     message: "Your claim is filed."}
"""


@pytest.fixture(autouse=True)
def _world(tmp_path):
    WORLD.__init__()
    WORLD.path = tmp_path / "airline.db"
    conn = sqlite3.connect(WORLD.path)
    conn.executescript(SCHEMA)
    conn.commit()
    conn.close()
    yield
    WORLD.release.set()


def _rows(sql: str, *params: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(WORLD.path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def _rebook_agent(model: Any, version: str = "1", **options: Any) -> Agent:
    return Agent(load_routine_text(REBOOK.format(version=version), "rebook.yaml"), [airline],
                 model, **options)


REBOOK_BK1 = [call("find_booking", booking="BK1"), call("free_seat", flight="LH102"),
              call("rebook", booking="BK1", flight="LH102", seat="12A")]



def _follow(request: Any) -> Any:
    """A model double that does what the routine's current step says, with the values it
    knows; asked for inputs, it reads a bag tag from what the customer said."""
    guide = request.guide
    if guide is not None and guide.label == "inputs":
        said = " ".join(str(m.content) for m in request.messages if m.role == "user")
        tags = [w.strip(".,") for w in said.split() if w.startswith("TAG")]
        return json.dumps({"tag": tags[-1] if tags else None})
    if guide is None or guide.tools == ("finish",):
        return "Done."
    tool = next(t for t in guide.tools if t != "finish")
    return call(tool, **guide.arguments.get(tool, {}))


def _bag_agent(**options: Any) -> Agent:
    return Agent(load_routine_text(DELAYED_BAG, "delayed_bag.yaml"), [airline],
                 FunctionModel(_follow), **options)


def _claim_agent(**options: Any) -> Agent:
    return Agent(load_routine_text(CLAIM, "baggage_claim.yaml"), [airline],
                 FunctionModel(_follow), **options)


async def _until(event: threading.Event) -> None:
    for _ in range(3000):  # (30 s at most: a loaded machine is slow, not this slow)
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the tool never started")


# --- the bugs ------------------------------------------------------------------------------
def test_an_async_on_turn_and_on_end_are_awaited_in_runs_and_conversations():
    seen: list[tuple[str, int]] = []
    rows: list[Any] = []

    async def push(turn):  # a websocket, a queue: what an async service writes
        await asyncio.sleep(0)
        seen.append(("run", turn.index))

    async def read_back(contexts):
        rows.extend(contexts["airline"].deps.conn.execute(
            "SELECT flight FROM bookings WHERE id = 'BK1'").fetchall())

    async def pushed(turn):
        seen.append(("chat", turn.index))

    async def go() -> RunTrace:
        trace = await _rebook_agent(FunctionModel(_follow), approver=lambda r: True).arun(
            inputs={"booking": "BK3", "flight": "LH104"}, on_turn=push, on_end=read_back)
        async with Conversation(_rebook_agent(ScriptedModel(REBOOK_BK1)),
                                on_turn=pushed) as chat:
            await chat.asend("Rebook BK1 onto LH102")
            await chat.asend("yes")
        return trace

    trace = asyncio.run(go())
    assert trace.outcome == "answered"
    assert [i for k, i in seen if k == "run"] == [t.index for t in trace.turns]  # none before
    assert [k for k, _ in seen].count("chat") >= 4 and [tuple(r) for r in rows] == [("LH100",)]


def test_a_yes_whose_approver_never_answers_ends_at_the_time_limit_writing_nothing():
    never = asyncio.Event()

    async def supervisor(request):  # the approvals service hangs
        await never.wait()
        return True

    async def go():
        async with Conversation(_claim_agent(approver=supervisor, timeout_s=2),
                                inputs={"tag": "TAG1", "amount": 700}) as chat:
            first = await chat.asend("My bag TAG1 is lost, I claim 700 EUR")
            assert first.waiting_for == "confirmation", first.text
            return await asyncio.wait_for(chat.asend("yes"), 30)  # (hung here before)

    reply = asyncio.run(go())
    assert reply.status == "failed" and reply.trace.failure_kind == "timeout"
    assert "timed out after 2 s" in reply.text and reply.trace.waiting is None
    assert _rows("SELECT * FROM claims") == []


def test_a_message_cancelled_during_a_lookup_says_so_not_that_a_confirmed_call_ran():
    WORLD.trace_delay = 60

    async def go() -> RunTrace:
        chat = Conversation(_bag_agent())
        task = asyncio.ensure_future(chat.asend("My bag TAG1 did not arrive in JFK"))
        await _until(WORLD.trace_started)
        task.cancel()  # the customer closed the tab
        with contextlib.suppress(asyncio.CancelledError):
            await task
        WORLD.release.set()
        await chat.aclose()
        return chat.trace

    trace = asyncio.run(go())
    assert trace.outcome == "failed" and trace.waiting is None
    assert "confirmed" not in trace.failure and "trace_bag" in trace.failure  # said before:
    running = trace.turns[-1].calls[0]  # "whether the confirmed call went through..."
    assert running.name == "trace_bag" and "cancelled" in running.error
    assert "time limit" not in running.error
    assert _rows("SELECT status FROM bags WHERE tag = 'TAG1'") == [{"status": "delayed"}]


def test_with_a_signing_key_a_yes_cut_off_before_anything_ran_can_be_sent_again(monkeypatch):
    monkeypatch.setenv("ROUTINE_TRACE_KEY", "a-deployment-secret-of-32-bytes!")
    gate, asked = asyncio.Event(), []

    async def supervisor(request):
        asked.append(request.arguments["amount"])
        await gate.wait()
        return True

    async def go():
        async with Conversation(_claim_agent(approver=supervisor),
                                inputs={"tag": "TAG1", "amount": 700}) as chat:
            await chat.asend("I claim 700 EUR for TAG1")
            task = asyncio.ensure_future(chat.asend("yes"))
            while not asked:
                await asyncio.sleep(0.01)
            task.cancel()  # the client went away while the supervisor looked at it
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert chat.trace.outcome == "waiting"  # nothing ran: it waits as before
            gate.set()
            return await chat.asend("yes")  # the retry: "not signed" before

    reply = asyncio.run(go())
    assert reply.status == "answered" and reply.text == "Your claim is filed."
    assert [r["amount"] for r in _rows("SELECT amount FROM claims")] == [700.0]
    assert reply.trace.tool_calls[-1].approval.by == "user"



def test_a_connection_is_not_closed_under_a_sync_tool_that_outlived_its_time_limit():
    WORLD.trace_delay = 60  # the tracing system hangs; closing SQLite under a query that
    agent = Agent(load_routine_text(DELAYED_BAG, "delayed_bag.yaml"), [airline],  # still
                  ScriptedModel([call("trace_bag", tag="TAG1"),  # runs crashes the process
                                 "Tracing does not answer; we will call you back."],
                                inputs={"tag": "TAG1"}), tool_timeout_s=0.5)

    trace = asyncio.run(agent.arun("My bag TAG1 did not arrive"))
    assert trace.outcome == "answered" and trace.tool_calls[-1].error_kind == "timeout"
    assert not WORLD.opened[0].closed  # closed here before, trace_bag still running on it
    WORLD.release.set()  # its query runs now, then the setup's exit closes the connection
    for _ in range(3000):
        if WORLD.opened[0].closed:
            break
        threading.Event().wait(0.01)
    assert WORLD.opened[0].closed
    assert _rows("SELECT status FROM bags WHERE tag = 'TAG1'") == [{"status": "delayed"}]

# --- what holds, kept ----------------------------------------------------------------------
def test_rebookings_claims_and_bag_reports_at_once_keep_to_their_own_run():
    rebooking = _rebook_agent(FunctionModel(_follow), approver=lambda r: True)
    claims = _claim_agent(approver=lambda r: r.arguments["amount"] < 900)
    bags = _bag_agent()

    async def customer(first: str, tag: str) -> list[Any]:
        async with Conversation(bags) as chat:
            return [await chat.asend(first), await chat.asend(f"It is {tag}.")]

    async def go() -> list[Any]:
        return await asyncio.gather(
            rebooking.arun(inputs={"booking": "BK1", "flight": "LH102"}),
            rebooking.arun(inputs={"booking": "BK3", "flight": "LH104"}),
            *(claims.arun(inputs={"tag": "TAG1", "amount": a}) for a in (100, 700, 950)),
            customer("My bag did not arrive", "TAG1"), customer("Where is my bag?", "TAG2"))

    *runs, (ana, ana_tag), (ben, ben_tag) = asyncio.run(go())
    assert [t.answer for t in runs] == [
        "You are on LH102, seat 12A.", "You are on LH104, seat 3C.", "Your claim is filed.",
        "Your claim is filed.",
        "Nothing was changed: file a large claim was not approved (approver: refused)."]
    by_run = dict(WORLD.calls)
    for trace, done in zip(runs, ["BK1", "BK3", "TAG1 100", "TAG1 700", None], strict=True):
        assert by_run.get(trace.run_id) == done  # each write saw its own run (none: refused)
    assert ana.status == ben.status == "waiting" and ana_tag.text == "Your file is FRA-TAG1."
    assert ben_tag.text == "Your file is FRA-TAG2."
    assert _rows("SELECT seat, booking FROM seats WHERE booking IS NOT NULL") == [
        {"seat": "12A", "booking": "BK1"}, {"seat": "3C", "booking": "BK3"}]
    assert sorted(r["amount"] for r in _rows("SELECT amount FROM claims")) == [100.0, 700.0]
    assert len(WORLD.opened) == 7 and all(d.closed for d in WORLD.opened)  # one each, closed


def test_a_customer_s_conversation_resumes_from_json_in_a_fresh_agent_and_rebooks_once():
    async def first_request() -> str:
        async with Conversation(_rebook_agent(ScriptedModel(REBOOK_BK1))) as chat:
            reply = await chat.asend("My flight LH100 was cancelled, rebook BK1 onto LH102")
            assert reply.text == "Move Ana Lima to LH102, seat 12A?"
            return json.dumps(json.loads(reply.trace.model_dump_json()))  # into the session

    saved = asyncio.run(first_request())
    assert _rows("SELECT * FROM rebookings") == []  # nothing before the yes

    async def second_request(version: str) -> Any:  # another worker, a fresh Agent
        trace = RunTrace.model_validate_json(saved)
        async with Conversation(_rebook_agent(ScriptedModel([]), version=version),
                                trace=trace) as chat:
            return await chat.asend("yes please")

    with pytest.raises(RoutineError, match="has changed since this trace was saved"):
        asyncio.run(second_request("2"))  # deployed a new version meanwhile
    reply = asyncio.run(second_request("1"))
    assert reply.status == "answered" and reply.text == "You are on LH102, seat 12A."
    assert _rows("SELECT booking, old, new FROM rebookings") == [
        {"booking": "BK1", "old": "LH100", "new": "LH102"}]
    moved = reply.trace.tool_calls[-1]
    assert moved.ok and moved.approval.by == "user" and moved.approval.reason == "yes please"
    with pytest.raises(RoutineError, match="only a waiting run resumes"), \
            Conversation(_rebook_agent(ScriptedModel([])), trace=reply.trace) as again:
        again.send("yes")
    assert len(_rows("SELECT * FROM rebookings")) == 1


def test_a_setup_that_fails_for_one_run_leaves_the_others_their_answers():
    WORLD.fail_setup_at = 2
    agent = _claim_agent()

    async def go() -> list[Any]:
        return await asyncio.gather(*(agent.arun(inputs={"tag": "TAG1", "amount": a})
                                      for a in (10, 20, 30)), return_exceptions=True)

    results = asyncio.run(go())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and "unable to open database file" in str(failed[0])
    assert [r.outcome for r in results if isinstance(r, RunTrace)] == ["answered"] * 2
    assert len(_rows("SELECT * FROM claims")) == 2


def test_the_blocking_run_from_inside_a_running_loop_answers_and_closes_its_connection():
    async def sync_endpoint_called_on_the_loop() -> RunTrace:  # a notebook cell, say
        return _rebook_agent(FunctionModel(_follow), approver=lambda r: True).run(
            inputs={"booking": "BK2", "flight": "LH102"})

    trace = asyncio.run(sync_endpoint_called_on_the_loop())
    assert trace.outcome == "answered" and trace.answer == "You are on LH102, seat 12A."
    assert WORLD.opened[0].closed
