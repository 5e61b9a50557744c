"""Fourteenth hostile round (a): a water utility's customer desk — accounts, meters, meter
readings, bills, disputes and payment plans in a real SQLite database behind its tools —
with the routines its back office writes (a for_each over the account's meters, a dispute
decided on a computed over-estimate, a payment plan that asks for its length, confirms
before it writes and sends a notice only when wanted, a search for a leak that stops with
`until`), run with scripted models that misbehave as real ones do, and `routine validate`
on the mistakes its authors make. Tests that name a bug fail on the code before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from routine import Agent, RunContext, ToolRegistry, Toolset, load_routine_text
from routine.errors import RoutineWarning, SpecError
from routine.models.testing import ScriptedModel, call
from routine.run.approval import policy
from routine.spec.validate import check_routine
from routine.tools.sqlite import SeededSqlite, snapshot


def _build(conn: sqlite3.Connection) -> None:
    conn.executescript("""
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, holder TEXT, email TEXT, status TEXT);
        CREATE TABLE meters (id INTEGER PRIMARY KEY, account_id INTEGER, serial TEXT,
                             location TEXT);
        CREATE TABLE readings (id INTEGER PRIMARY KEY, meter_id INTEGER, period TEXT,
                               estimated REAL, actual REAL);
        CREATE TABLE bills (id INTEGER PRIMARY KEY, account_id INTEGER, period TEXT,
                            amount REAL, status TEXT);
        CREATE TABLE disputes (id INTEGER PRIMARY KEY, bill_id INTEGER, reason TEXT,
                               status TEXT);
        CREATE TABLE payment_plans (id INTEGER PRIMARY KEY, account_id INTEGER,
                                    months INTEGER, frequency TEXT, instalment REAL);
        CREATE TABLE notices (id INTEGER PRIMARY KEY, account_id INTEGER, channel TEXT);
        INSERT INTO accounts VALUES (1, 'Rosa Marsh', 'rosa@example.com', 'active'),
                                    (2, 'Tom Brook', 'tom@example.com', 'active');
        INSERT INTO meters VALUES (10, 1, 'WM-1001', 'kitchen'), (11, 1, 'WM-1002', 'garden'),
                                  (12, 1, 'WM-1003', 'cellar'), (20, 2, 'WM-2001', 'street');
        INSERT INTO readings VALUES (1, 10, '2026-02', 150, 100), (2, 11, '2026-02', 40, 65),
                                    (3, 12, '2026-02', 12, NULL), (4, 20, '2026-02', 90, 88);
        INSERT INTO bills VALUES (100, 1, '2026-02', 412.5, 'open'),
                                 (200, 2, '2026-02', 120.0, 'open');
    """)


SEEDED = SeededSqlite(_build)


@contextlib.contextmanager
def _fresh_database():
    with SEEDED.connect() as conn:
        yield conn


WATER = Toolset("water", setup=_fresh_database)


class Account(BaseModel):
    account_id: int
    holder: str
    status: str


@dataclasses.dataclass
class Meter:
    meter_id: int
    serial: str
    location: str


class Reading(BaseModel):
    meter_id: int
    period: str
    estimated: float
    actual: float | None


class Bill(BaseModel):
    bill_id: int
    period: str
    amount: float
    status: str


class Dispute(BaseModel):
    dispute_id: int
    bill_id: int
    status: str


class Plan(BaseModel):
    plan_id: int
    months: int
    frequency: str
    instalment: float


@WATER.tool
def find_account(ctx: RunContext[sqlite3.Connection], email: str) -> Account:
    """Look a customer's account up by their email address.

    Args:
        email: the account holder's email address.
    """
    row = ctx.deps.execute("SELECT id, holder, status FROM accounts WHERE email = ?",
                           (email,)).fetchone()
    if row is None:
        raise LookupError(f"no account with the email {email!r}")
    return Account(account_id=row["id"], holder=row["holder"], status=row["status"])


@WATER.tool
def list_meters(ctx: RunContext[sqlite3.Connection], account_id: int) -> list[Meter]:
    """The meters of an account.

    Args:
        account_id: the account.
    """
    rows = ctx.deps.execute("SELECT id, serial, location FROM meters WHERE account_id = ? "
                            "ORDER BY id", (account_id,)).fetchall()
    return [Meter(r["id"], r["serial"], r["location"]) for r in rows]


@WATER.tool
def read_meter(ctx: RunContext[sqlite3.Connection], meter_id: int, period: str) -> Reading:
    """A meter's estimated and actual reading for a billing period (actual: None when no
    one has read the meter yet).

    Args:
        meter_id: the meter.
        period: the billing period, YYYY-MM.
    """
    row = ctx.deps.execute("SELECT estimated, actual FROM readings WHERE meter_id = ? AND "
                           "period = ?", (meter_id, period)).fetchone()
    if row is None:
        raise LookupError(f"no reading of meter {meter_id} for {period}")
    return Reading(meter_id=meter_id, period=period, estimated=row["estimated"],
                   actual=row["actual"])


@WATER.tool
def find_bill(ctx: RunContext[sqlite3.Connection], account_id: int, period: str
              ) -> Bill | None:
    """An account's bill for a period (None: no bill for it).

    Args:
        account_id: the account.
        period: the billing period, YYYY-MM.
    """
    row = ctx.deps.execute("SELECT id, period, amount, status FROM bills WHERE account_id = ? "
                           "AND period = ?", (account_id, period)).fetchone()
    if row is None:
        return None
    return Bill(bill_id=row["id"], period=row["period"], amount=row["amount"],
                status=row["status"])


@WATER.tool
def open_dispute(ctx: RunContext[sqlite3.Connection], bill_id: int, reason: str) -> Dispute:
    """Open a dispute on a bill; the bill is put on hold.

    Args:
        bill_id: the bill.
        reason: why it is disputed.
    """
    cur = ctx.deps.execute("INSERT INTO disputes (bill_id, reason, status) VALUES (?, ?, "
                           "'open')", (bill_id, reason))
    ctx.deps.execute("UPDATE bills SET status = 'on hold' WHERE id = ?", (bill_id,))
    return Dispute(dispute_id=cur.lastrowid, bill_id=bill_id, status="open")


@WATER.tool
def set_up_plan(ctx: RunContext[sqlite3.Connection], account_id: int, months: int,
                frequency: Literal["monthly", "quarterly"], amount: float) -> Plan:
    """Spread an amount over a payment plan.

    Args:
        account_id: the account.
        months: how many months the plan runs.
        frequency: how often an instalment is due.
        amount: the amount to spread.
    """
    if not 1 <= months <= 24:
        raise ValueError("a plan runs 1 to 24 months")
    count = months if frequency == "monthly" else max(months // 3, 1)
    instalment = round(amount / count, 2)
    cur = ctx.deps.execute("INSERT INTO payment_plans (account_id, months, frequency, "
                           "instalment) VALUES (?, ?, ?, ?)",
                           (account_id, months, frequency, instalment))
    return Plan(plan_id=cur.lastrowid, months=months, frequency=frequency, instalment=instalment)


@WATER.tool
def send_notice(ctx: RunContext[sqlite3.Connection], account_id: int,
                channel: Literal["email", "letter"]) -> str:
    """Send the account holder a notice of what was done.

    Args:
        account_id: the account.
        channel: email or letter.
    """
    ctx.deps.execute("INSERT INTO notices (account_id, channel) VALUES (?, ?)",
                     (account_id, channel))
    return f"notice sent by {channel} to account {account_id}"


CHECK_METERS = """\
name: check_meters
description: Read every meter of a customer's account for a billing period.
toolsets: [water]
inputs:
  email: {type: string, description: "the account holder's email address"}
  period: {type: string, description: "the billing period, YYYY-MM", required: false,
           default: "2026-02"}
steps:
  - id: find
    name: Find the account
    description: Look the account up by email.
    tool: find_account
    args: {email: "${inputs.email}"}
  - id: meters
    name: List the meters
    description: List the account's meters.
    tool: list_meters
    args: {account_id: "${steps.find.output.account_id}"}
  - id: each
    name: Read each meter
    description: Read every meter for the period.
    for_each: ${steps.meters.output}
    as: meter
    steps:
      - id: read
        name: Read the meter
        description: Read this meter.
        tool: read_meter
        args: {meter_id: "${meter.meter_id}", period: "${inputs.period}"}
  - id: answer
    name: Answer
    description: Tell the customer the readings.
    finish: true
"""

DISPUTE = """\
name: dispute_bill
description: Dispute a bill whose estimated reading is far above the actual one.
toolsets: [water]
inputs:
  email: {type: string, description: "the account holder's email address"}
  meter_id: {type: integer, description: the meter the customer says was misread}
  period: {type: string, description: "the billing period, YYYY-MM"}
steps:
  - id: find
    name: Find the account
    description: Look the account up by email.
    tool: find_account
    args: {email: "${inputs.email}"}
  - id: bill
    name: Find the bill
    description: Find the bill of the period.
    tool: find_bill
    args: {account_id: "${steps.find.output.account_id}", period: "${inputs.period}"}
  - id: read
    name: Read the meter
    description: Read the meter for the period.
    tool: read_meter
    args: {meter_id: "${inputs.meter_id}", period: "${inputs.period}"}
  - id: ratio
    name: Compare
    description: How far the estimate is above the actual reading.
    compute:
      over: {expr: "steps.read.output.estimated / steps.read.output.actual", type: number}
  - id: decide
    name: Decide
    description: Dispute the bill when the estimate is more than 20% over.
    branch:
      - condition: the estimate is more than 20% over the actual reading
        when: vars.over > 1.2
        steps:
          - id: dispute
            name: Open a dispute
            description: Open a dispute on the bill.
            tool: open_dispute
            args: {bill_id: "${steps.bill.output.bill_id}", reason: "estimate over actual"}
            confirm: "Open a dispute on bill {{ steps.bill.output.bill_id }}?"
          - id: disputed
            name: Say it is disputed
            description: Tell the customer.
            finish: true
            message: "Dispute {{ steps.dispute.output.dispute_id }} is open."
      - condition: otherwise
        steps:
          - id: fine
            name: Say the bill stands
            description: Tell the customer the bill is right.
            finish: true
            message: "The estimate is within 20% of your reading: the bill stands."
"""

PLAN = """\
name: payment_plan
description: Put a customer's open bill on a payment plan.
toolsets: [water]
inputs:
  email: {type: string, description: "the account holder's email address"}
  months: {type: integer, description: how many months the plan runs}
  frequency: {type: string, description: how often an instalment is due, required: false,
              default: monthly, enum: [monthly, quarterly]}
  notify: {type: boolean, description: whether the customer wants a notice, required: false,
           default: false}
steps:
  - id: find
    name: Find the account
    description: Look the account up by email.
    tool: find_account
    args: {email: "${inputs.email}"}
  - id: bill
    name: Find the bill
    description: Find the open bill.
    tool: find_bill
    args: {account_id: "${steps.find.output.account_id}", period: "2026-02"}
  - id: ask
    name: Ask the length
    description: Ask how many months.
    ask: "Over how many months would you like to pay?"
    fills: [months]
  - id: plan
    name: Set the plan up
    description: Set up the plan.
    tool: set_up_plan
    args: {account_id: "${steps.find.output.account_id}", months: "${inputs.months}",
           frequency: "${inputs.frequency}", amount: "${steps.bill.output.amount}"}
    confirm: "Spread {{ steps.bill.output.amount }} over {{ inputs.months }} months?"
  - id: tell
    name: Notice
    description: Send a notice if the customer wants one.
    branch:
      - condition: the customer wants a notice
        when: inputs.notify
        steps:
          - id: notice
            name: Send the notice
            description: Send it by email.
            tool: send_notice
            args: {account_id: "${steps.find.output.account_id}", channel: email}
      - condition: otherwise
        steps: []
  - id: answer
    name: Answer
    description: Tell the customer the instalment.
    finish: true
    answer: "Plan {{ steps.plan.output.plan_id }}: {{ steps.plan.output.instalment }} each."
"""

LONG_PLAN = """\
name: long_plan
description: Put the open bill on a plan; a plan over a year is confirmed by letter.
toolsets: [water]
inputs:
  email: {type: string, description: "the account holder's email address"}
  months: {type: integer, description: how many months the plan runs}
steps:
  - id: find
    name: Find the account
    description: Look the account up by email.
    tool: find_account
    args: {email: "${inputs.email}"}
  - id: plan
    name: Set the plan up
    description: Spread the open bill over the months the customer asks for.
    tool: set_up_plan
    args: {account_id: "${steps.find.output.account_id}", months: "${inputs.months}",
           frequency: monthly, amount: 412.5}
  - id: long
    name: Over a year?
    description: A plan over a year is confirmed by letter.
    branch:
      - condition: the plan runs over a year
        when: inputs.months > 12
        steps:
          - id: letter
            name: Send a letter
            description: Confirm the plan by letter.
            tool: send_notice
            args: {account_id: "${steps.find.output.account_id}", channel: letter}
      - condition: otherwise
        steps: []
  - id: answer
    name: Answer
    description: Tell the customer the plan.
    finish: true
"""

LEAK = """\
name: find_leak
description: Read the account's meters until one reads far over its estimate (a leak).
toolsets: [water]
inputs:
  email: {type: string, description: "the account holder's email address"}
steps:
  - id: find
    name: Find the account
    description: Look the account up by email.
    tool: find_account
    args: {email: "${inputs.email}"}
  - id: meters
    name: List the meters
    description: List the account's meters.
    tool: list_meters
    args: {account_id: "${steps.find.output.account_id}"}
  - id: each
    name: Read until a leak
    description: Read the meters one by one until one reads far over its estimate.
    for_each: ${steps.meters.output}
    as: meter
    until: "steps.read.output.actual is not none
      and steps.read.output.actual > 1.2 * steps.read.output.estimated"
    steps:
      - id: read
        name: Read the meter
        description: Read this meter.
        tool: read_meter
        args: {meter_id: "${meter.meter_id}", period: "2026-02"}
  - id: answer
    name: Answer
    description: Say which meter leaks.
    finish: true
"""


def _play(text: str, replies: list[Any], query: str, inputs: dict[str, Any], **settings: Any):
    """Run a routine with a scripted model; the trace and the database it left."""
    left: dict[str, Any] = {}
    agent = Agent(load_routine_text(text, "desk.yaml"), [WATER], ScriptedModel(replies),
                  **settings)
    trace = asyncio.run(agent.arun(query, inputs, on_end=lambda contexts: left.update(
        snapshot(contexts["water"].deps))))
    return trace, left


def _problems(text: str) -> list[str]:
    try:
        loaded = load_routine_text(text, "desk.yaml")
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in check_routine(loaded, ToolRegistry([WATER]))]


ROSA = {"email": "rosa@example.com"}


def test_a_loop_over_the_meters_refuses_an_item_read_twice_an_early_finish_and_plain_text():
    """The model reads the kitchen meter again at the garden meter's turn, tries to finish
    with a meter left, then answers in text: each is refused with the step it is at, the
    meter id as text ("11") is the same meter, and the loop's output has one typed record
    per meter, the unread cellar meter's actual a None."""
    trace, _ = _play(CHECK_METERS, [
        call("find_account", email="rosa@example.com"), call("list_meters", account_id=1),
        call("read_meter", meter_id=10, period="2026-02"),
        call("read_meter", meter_id=10, period="2026-02"),
        call("read_meter", meter_id="11", period="2026-02"),
        call("finish", answer="All read."), "All three are read.",
        call("read_meter", meter_id=12, period="2026-02"),
        "Kitchen 100, garden 65, cellar not read yet."], "read my meters", ROSA)
    assert trace.outcome == "answered" and trace.early_answer is None
    refused = [(c.error_kind, c.error) for c in trace.tool_calls if not c.ok]
    assert refused[0] == ("off_routine", "not run: argument 'meter_id' must be 11 here (the "
                          "current meter.meter_id), not 10. You are at step 3-each_1 (Read the "
                          "meter): call read_meter.")
    assert refused[1][0] == "not_allowed" and "steps come first" in refused[1][1]
    assert "the answer comes at the routine's finish step" in trace.turns[6].feedback
    readings = [item["read"] for item in trace.loop_outputs["each"]]
    assert [(r["meter_id"], r["actual"]) for r in readings] == [(10, 100.0), (11, 65.0),
                                                                 (12, None)]


def test_an_altered_bill_id_is_refused_and_the_dispute_opens_on_the_real_bill():
    """Estimated 150 against an actual 100 is 1.5: the executor takes the dispute option
    itself; the model's bill id off by one is refused (nothing is written), the right one
    opens the dispute and puts the bill on hold, and the routine's own message answers."""
    with pytest.warns(RoutineWarning, match="may be null"):
        trace, db = _play(DISPUTE, [
            call("find_account", email="rosa@example.com"),
            call("find_bill", account_id=1, period="2026-02"),
            call("read_meter", meter_id=10, period="2026-02"),
            call("open_dispute", bill_id=101, reason="estimate over actual"),
            call("open_dispute", bill_id=100, reason="estimate over actual")],
            "dispute my February bill", {**ROSA, "meter_id": 10, "period": "2026-02"},
            approver=policy(True))
    assert trace.branches == {"decide": 0} and trace.answer == "Dispute 1 is open."
    assert trace.tool_calls[3].error.startswith("not run: argument 'bill_id' must be 100 here")
    assert db["disputes"] == {"1": {"id": 1, "bill_id": 100, "reason": "estimate over actual",
                                    "status": "open"}}
    assert db["bills"]["100"]["status"] == "on hold"


def test_a_meter_not_read_yet_stops_the_comparison_saying_which_value_was_missing():
    """The cellar meter has no actual reading (None): dividing by it cannot decide the
    dispute, and the run stops there, before any write, naming the step."""
    with pytest.warns(RoutineWarning):
        trace, db = _play(DISPUTE, [
            call("find_account", email="rosa@example.com"),
            call("find_bill", account_id=1, period="2026-02"),
            call("read_meter", meter_id=12, period="2026-02")],
            "dispute my bill", {**ROSA, "meter_id": 12, "period": "2026-02"})
    assert (trace.outcome, trace.failure_kind) == ("failed", "routine_limit")
    assert trace.failure.startswith("the routine cannot go on: step ratio: computing over "
                                    "failed: TypeError")
    assert db["disputes"] == {} and trace.steps_done == ["find", "bill", "read"]


def test_a_notice_the_customer_did_not_want_is_refused_after_the_confirmed_plan():
    """The plan asks for its length, shows the default frequency it adds, writes only after
    the yes; `notify` is false (its default), so the notice step is skipped, and the model's
    send_notice anyway is refused: the database has the plan and no notice."""
    model = ScriptedModel([
        call("find_account", email="rosa@example.com"),
        call("find_bill", account_id=1, period="2026-02"),
        json.dumps({"months": None}), json.dumps({"months": 6}),
        call("set_up_plan", account_id=1, months=6, frequency="monthly", amount=412.5),
        json.dumps({"notify": None}), call("send_notice", account_id=1, channel="email"),
        "Your plan is set up: 68.75 a month."])
    with pytest.warns(RoutineWarning):
        agent = Agent(load_routine_text(PLAN, "plan.yaml"), [WATER], model)
    with agent.conversation(inputs=ROSA) as chat:
        said = [chat.send(text).text for text in (
            "Please put my water bill on a payment plan, I'm rosa@example.com",
            "6 months please", "yes")]
        db = snapshot(chat.contexts["water"].deps)
        trace = chat.trace
    assert said[:2] == ["Over how many months would you like to pay?",
                        'Spread 412.5 over 6 months?\nAlso in this set_up_plan call: '
                        'frequency = "monthly".']
    notice = next(c for c in trace.tool_calls if c.name == "send_notice")
    assert notice.error_kind == "off_routine" and "the routine's steps are done" in notice.error
    assert trace.branches == {"tell": 1} and trace.outcome == "answered"
    assert list(db["payment_plans"].values()) == [
        {"id": 1, "account_id": 1, "months": 6, "frequency": "monthly", "instalment": 68.75}]
    assert db["notices"] == {}


def test_an_integer_input_the_model_fills_as_text_decides_the_branch_as_a_number():
    """"Spread it over 18 months": the model sends months "18" (text, which the tool takes as
    18). The input took the text as its value, so `inputs.months > 12` raised a TypeError,
    the branch was left to the model, which answered — and the plan over a year went without
    its letter. The value is the input's type now: the executor takes the letter step."""
    trace, db = _play(LONG_PLAN, [
        call("find_account", email="rosa@example.com"),
        call("set_up_plan", account_id=1, months="18", frequency="monthly", amount=412.5),
        "Your plan is set up.",
        call("send_notice", account_id=1, channel="letter"),
        "Your 18-month plan is set up; a letter confirms it."],
        "Spread my bill over 18 months please, rosa@example.com", ROSA)
    assert trace.branch_errors == {}  # before: "`inputs.months > 12`: TypeError: ..."
    assert trace.branches == {"long": 0}
    assert trace.tool_sequence == ["find_account", "set_up_plan", "send_notice"]
    assert list(db["notices"].values()) == [{"id": 1, "account_id": 1, "channel": "letter"}]


def test_an_until_that_reads_the_meter_just_read_validates_and_ends_the_loop_there():
    """`until` is checked after each item, so it reads what the body just did: "read until
    one leaks" is what it is for. validate refused it ("refers to step 'read', which does not
    run before step 'each'"), so the routine could not run at all. Now it runs: the garden
    meter leaks (65 against 40), the loop ends there, and the model's read of the cellar
    meter is refused; a misspelt field in the `until` is still one error at its line."""
    assert _problems(LEAK) == []
    trace, _ = _play(LEAK, [
        call("find_account", email="rosa@example.com"), call("list_meters", account_id=1),
        call("read_meter", meter_id=10, period="2026-02"),
        call("read_meter", meter_id=11, period="2026-02"),
        call("read_meter", meter_id=12, period="2026-02"),
        "The garden meter (WM-1002) reads 65 against 40 estimated: it may leak."],
        "I think I have a leak", ROSA)
    assert trace.outcome == "answered" and trace.branch_errors == {}
    assert [r["read"]["meter_id"] for r in trace.loop_outputs["each"]] == [10, 11]
    assert trace.tool_calls[-1].error_kind == "off_routine"
    misspelt = LEAK.replace("actual > 1.2", "actul > 1.2")
    assert _problems(misspelt) == [
        "desk.yaml:22:5: error: ${steps.read.output.actul}: the output has no field 'actul' "
        "(it has: meter_id, period, estimated, actual) (expected a field of 'read_meter''s "
        "output)"]


def test_a_compute_that_gives_a_boolean_where_a_number_is_declared_is_one_error_at_its_line():
    """`over: {expr: "estimated > 1.2 * actual", type: number}` (a comparison written where
    the ratio was meant) validated clean, and every run stopped after its three lookups:
    "over = True is not a number". A comparison is a boolean, `~` text and `/` a number
    whatever their operands: said at the compute's line."""
    text = DISPUTE.replace(
        '"steps.read.output.estimated / steps.read.output.actual", type: number',
        '"steps.read.output.estimated > 1.2 * steps.read.output.actual", type: number')
    assert _problems(text) == [
        "desk.yaml:28:7: error: over = steps.read.output.estimated > 1.2 * "
        "steps.read.output.actual is boolean, but its declared type is number: every run "
        "would stop here (expected an expression that gives a number)"]
    ratio_as_text = DISPUTE.replace("type: number}", "type: string}")
    assert [p.split(": error: ")[1].split(",")[0] for p in _problems(ratio_as_text)] == [
        "over = steps.read.output.estimated / steps.read.output.actual is number"]


def test_a_skipped_lookup_another_routines_tool_and_a_word_for_an_id_are_each_refused():
    """Reading a meter before listing them, opening a dispute in a meter check, and
    `account_id: "one"`: none runs, each says what the step calls or what the argument
    takes, and the run goes on once the model keeps to the routine."""
    trace, db = _play(CHECK_METERS, [
        call("find_account", email="rosa@example.com"),
        call("read_meter", meter_id=10, period="2026-02"),
        call("open_dispute", bill_id=100, reason="estimate over actual"),
        call("list_meters", account_id="one"), call("list_meters", account_id=1),
        *[call("read_meter", meter_id=m, period="2026-02") for m in (10, 11, 12)],
        "Kitchen 100, garden 65, cellar not read yet."], "read my meters", ROSA)
    assert [(c.error_kind, (c.error or "")[:60]) for c in trace.tool_calls[1:4]] == [
        ("off_routine", "not run: read_meter is not what the routine does now: step 2"),
        ("not_allowed", "tool 'open_dispute' is not part of this routine. Use one of:"),
        ("invalid_arguments", "invalid arguments for list_meters: argument 'account_id': In")]
    assert trace.outcome == "answered" and db["disputes"] == {}
    assert trace.steps_done == ["find", "meters", "read", "read", "read", "each", "answer"]


def test_an_until_that_reads_a_var_the_loop_body_computes_validates_and_ends_the_loop_there():
    """The round's left-over: an `until` over a value the body computes (`vars.over`, set
    by a compute step after each read) was refused as "may not be set before step 'each'",
    though it is set on every path through an item before `until` is read. A var set only
    on some paths through the body is still refused."""
    computed = LEAK.replace(
        '''    until: "steps.read.output.actual is not none
      and steps.read.output.actual > 1.2 * steps.read.output.estimated"''',
        '''    until: "vars.over > 1.2"''').replace(
        '''        args: {meter_id: "${meter.meter_id}", period: "2026-02"}''',
        '''        args: {meter_id: "${meter.meter_id}", period: "2026-02"}
      - id: ratio
        name: Compare
        description: How far the reading is over its estimate.
        compute:
          over: {expr: "(steps.read.output.actual or 0) / steps.read.output.estimated",
                 type: number}''')
    assert "vars.over" in computed and "id: ratio" in computed
    assert _problems(computed) == []
    trace, _ = _play(computed, [
        call("find_account", email="rosa@example.com"), call("list_meters", account_id=1),
        call("read_meter", meter_id=10, period="2026-02"),
        call("read_meter", meter_id=11, period="2026-02"),
        "The garden meter (WM-1002) reads 65 against 40 estimated: it may leak."],
        "I think I have a leak", ROSA)
    assert trace.outcome == "answered" and trace.branch_errors == {}
    assert [r["read"]["meter_id"] for r in trace.loop_outputs["each"]] == [10, 11]
    before = computed.replace('''    until: "vars.over > 1.2"''', '''    until: "vars.typo > 1.2"''')
    assert any("no step sets 'typo'" in p for p in _problems(before))
