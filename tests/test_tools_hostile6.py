"""Bugs found by the sixth hostile-input round's tools probe (a warehouse writing its own
receiving, picking and counting processes): tools with bugs, results that are not data,
money beyond a float, YAML 1.1's numbers, loops past the call budget. Each test fails on
the code before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sqlite3
import time
from decimal import Decimal

import pytest

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.cli import commands
from routine.cli.commands import main
from routine.errors import RoutineWarning, SpecError, ToolsetSetupError
from routine.models.testing import ScriptedModel, call
from routine.spec.validate import check_routine
from routine.tools.core import ToolRegistry, to_jsonable


@contextlib.contextmanager
def _stock():
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER)")
    conn.execute("INSERT INTO stock VALUES ('A-100', 10), ('B-200', 4)")
    conn.row_factory = sqlite3.Row
    STOCK.append(conn)
    yield conn


STOCK: list[sqlite3.Connection] = []  # each run's database, to read its end state
warehouse = Toolset("warehouse", setup=_stock)


@warehouse.tool
def put_away(ctx: RunContext[sqlite3.Connection], sku: str, qty: int):  # noqa: ANN201
    """Put stock away (returns the row: a slip users make)."""
    ctx.deps.execute("UPDATE stock SET qty = qty + ? WHERE sku = ?", (qty, sku))
    return ctx.deps.execute("SELECT * FROM stock WHERE sku = ?", (sku,)).fetchone()


@warehouse.tool
def lookup_sku(ctx: RunContext[sqlite3.Connection], sku: str) -> dict:
    """Look a SKU up (with a misspelt column: a bug)."""
    row = ctx.deps.execute("SELECT skuu FROM stock WHERE sku = ?", (sku,)).fetchone()
    if row is None:
        raise LookupError(f"unknown SKU {sku}")
    return dict(row)


@warehouse.tool
def find_sku(ctx: RunContext[sqlite3.Connection], sku: str) -> dict:
    """Find a SKU."""
    row = ctx.deps.execute("SELECT * FROM stock WHERE sku = ?", (sku,)).fetchone()
    if row is None:
        raise LookupError(f"unknown SKU {sku}")
    return dict(row)


@warehouse.tool
def flag_unknown(ctx: RunContext[sqlite3.Connection], sku: str) -> str:
    """Write a discrepancy for an unknown SKU."""
    FLAGGED.append(sku)
    return f"flagged {sku}"


@warehouse.tool
async def post_pick(ctx: RunContext[sqlite3.Connection], order: str) -> str:
    """Post a pick (slow)."""
    await asyncio.sleep(5)
    return "posted"


@warehouse.tool
def requeue(ctx: RunContext[sqlite3.Connection], order: str) -> str:
    """Put an order back in the queue."""
    FLAGGED.append(f"requeued {order}")
    return "requeued"


FLAGGED: list[str] = []


def _agent(text: str, replies: list, **settings) -> tuple[Agent, ScriptedModel]:
    FLAGGED.clear()
    model = ScriptedModel(replies)
    return Agent(load_routine_text(text, "wh.yaml"), [warehouse], model, **settings), model


PUT_AWAY = """
name: put_away
description: Put received stock away.
inputs:
  sku: {type: string, description: the SKU}
steps:
  - {id: put, name: Put away, description: Put it away., tool: put_away,
     args: {sku: "${inputs.sku}", qty: 5}}
  - {id: answer, name: Answer, description: Say what was done., finish: true}
"""


def test_a_result_that_is_not_data_after_a_write_ends_the_run_and_is_not_sent_again():
    agent, _ = _agent(PUT_AWAY, [call("put_away", sku="A-100", qty=5),
                                 call("put_away", sku="A-100", qty=5), "Done."])
    trace = agent.run("put away A-100", inputs={"sku": "A-100"})
    qty = STOCK[-1].execute("SELECT qty FROM stock WHERE sku = 'A-100'").fetchone()[0]
    assert qty == 15  # once: the model was never told "error" and sent it again (20 before)
    assert trace.outcome == "failed" and trace.failure_kind == "tool_bug"
    assert "put_away ran" in trace.failure and "sqlite3.Row" in trace.failure


CHECK = """
name: check
description: Check a SKU, flag it when unknown.
inputs:
  sku: {type: string, description: the SKU}
steps:
  - id: look
    name: Look it up
    description: Look the SKU up.
    tool: lookup_sku
    args: {sku: "${inputs.sku}"}
    on_error: flag
  - {id: ok, name: Known, description: Say it is known., finish: true}
  - {id: flag, name: Flag, description: Flag it., tool: flag_unknown,
     args: {sku: "${inputs.sku}"}}
  - {id: flagged, name: Flagged, description: Say it was flagged., finish: true}
"""


def test_a_bug_in_a_tool_is_not_an_on_error_path_nor_the_model_s_to_fix():
    agent, _ = _agent(CHECK, [call("lookup_sku", sku="A-100"), call("flag_unknown", sku="A-100"),
                              "Flagged."])
    trace = agent.run("check A-100", inputs={"sku": "A-100"})
    assert FLAGGED == []  # it went down the "unknown SKU" path and wrote a false discrepancy
    assert trace.failure_kind == "tool_bug" and "no such column: skuu" in trace.failure
    assert "test_tools_hostile6.py" in trace.tool_calls[0].error  # where the bug is


def test_an_answer_about_the_request_still_takes_the_on_error_path():
    text = CHECK.replace("lookup_sku", "find_sku")
    agent, _ = _agent(text, [call("find_sku", sku="Z-9"), call("flag_unknown", sku="Z-9"),
                             "Flagged Z-9."])
    trace = agent.run("check Z-9", inputs={"sku": "Z-9"})
    assert trace.outcome == "answered" and FLAGGED == ["Z-9"]


PICK = """
name: pick
description: Post a pick; requeue the order when it fails.
inputs:
  order: {type: string, description: the order}
steps:
  - {id: post, name: Post, description: Post the pick., tool: post_pick,
     args: {order: "${inputs.order}"}, on_error: back}
  - {id: done, name: Done, description: Say it is posted., finish: true}
  - {id: back, name: Requeue, description: Requeue the order., tool: requeue,
     args: {order: "${inputs.order}"}}
  - {id: requeued, name: Requeued, description: Say it was requeued., finish: true}
"""


def test_a_write_that_timed_out_does_not_take_the_recovery_path():
    agent, _ = _agent(PICK, [call("post_pick", order="O1"), call("requeue", order="O1")]
                      + ["It is unknown whether the pick went through."] * 6,
                      tool_timeout_s=0.2)
    trace = agent.run("post O1", inputs={"order": "O1"})
    assert FLAGGED == []  # posted (maybe) and requeued: both, before
    assert trace.tool_calls[0].error_kind == "timeout"


def test_money_beyond_a_float_keeps_its_digits():
    assert to_jsonable({"cost": Decimal("12345678901234567.89")}) == {
        "cost": "12345678901234567.89"}
    assert to_jsonable({"cost": Decimal("12.50"), "n": Decimal("3")}) == {"cost": 12.5, "n": 3}


@pytest.mark.parametrize("written, read", [("010", 8), ("1:30", 90)])
def test_yaml_1_1_numbers_that_change_what_was_written_are_problems(written, read):
    text = PUT_AWAY.replace("qty: 5", f"qty: {written}")
    loaded = load_routine_text(text, "wh.yaml")
    registry = ToolRegistry()
    registry.add(warehouse)
    problems = check_routine(loaded, registry)
    assert any(f"{written} reads as the number {read}" in p.message and p.line == 8
               for p in problems)
    quoted = load_routine_text(PUT_AWAY.replace("qty: 5", "qty: 10"), "wh.yaml")
    assert not quoted.problems


def test_two_keys_yaml_reads_as_one_boolean_are_named_both():
    text = PUT_AWAY.replace("inputs:\n", "constants: {on: 1, yes: 2}\ninputs:\n")
    with pytest.raises(SpecError) as caught:
        load_routine_text(text, "wh.yaml")
    assert "keys 'on' and 'yes' are both read as True" in str(caught.value)
    assert "duplicate key True" not in str(caught.value)


def test_one_mistake_inside_on_error_is_one_error_and_a_bad_id_says_what_an_id_is():
    text = CHECK.replace("    on_error: flag\n", "    on_error:\n      - {id: f, name: F, "
                         "description: d, tool: flag_unknown, args: {sku: x}, next: ok}\n")
    with pytest.raises(SpecError) as caught:
        load_routine_text(text, "wh.yaml")
    assert len(caught.value.problems) == 1 and "unknown key 'next'" in str(caught.value)
    with pytest.raises(SpecError) as bad_id:
        load_routine_text(PUT_AWAY.replace("id: put,", "id: prüfe,"), "wh.yaml")
    assert "lowercase ASCII name" in str(bad_id.value) and "'prüfe'" in str(bad_id.value)


def test_an_unset_variable_named_twice_is_one_problem():
    text = CHECK.replace("finish: true}\n  - {id: flag", "finish: true}\n  - {id: flag", 1) \
        .replace("description: Say it is known., finish: true}",
                 "description: Say it is known., finish: true, message: "
                 "\"{{ vars.unknown }} {{ vars.unknown }}\"}")
    registry = ToolRegistry()
    registry.add(warehouse)
    problems = check_routine(load_routine_text(text, "wh.yaml"), registry)
    texts = [str(p) for p in problems]
    assert texts and len(texts) == len(set(texts))


class Scanner:
    def scan(self, code: str, **extra: str) -> str:
        """Scan a code."""
        return code

    def ping(self) -> str:
        """Ping."""
        return "pong"


class NeedsDb:
    def __init__(self, path: str):
        self.path = path

    def count(self, bin: str) -> int:
        """Count a bin."""
        return 0


def test_a_typed_method_a_toolkit_leaves_out_is_named():
    with pytest.warns(RoutineWarning, match=r"scan \(.*\*\*kwargs"):
        toolset = Toolset.from_object("scanner", Scanner)
    assert list(toolset.tools) == ["ping"]


def test_a_toolkit_that_needs_arguments_says_to_give_a_factory():
    toolset = Toolset.from_object("bins", NeedsDb)
    model = ScriptedModel([call("count", bin="R1"), "ok"])
    with pytest.raises(ToolsetSetupError, match="factory=lambda: NeedsDb"):
        Agent(None, [toolset], model, validate=False).run("count R1")


LOOP = """
name: receive
description: Receive every line.
inputs:
  skus: {type: array, description: the SKUs}
steps:
  - id: each
    name: Each line
    description: Each SKU.
    for_each: "${inputs.skus}"
    as: sku
    steps:
      - {id: find, name: Find, description: Find it., tool: find_sku, args: {sku: "${sku}"}}
  - {id: answer, name: Answer, description: Say what was done., finish: true}
"""


def test_a_run_out_of_calls_says_what_ran_and_where_it_stood():
    replies = [call("find_sku", sku=s) for s in ["A-100", "B-200", "A-100"]]
    agent, _ = _agent(LOOP, replies, max_steps=2)
    trace = agent.run("receive", inputs={"skus": ["A-100", "B-200", "A-100"]})
    assert trace.failure_kind == "max_steps"
    assert "find_sku ×2" in trace.failure and "item 3 of 3" in trace.failure


async def _blocking(order: str) -> str:
    time.sleep(0.5)  # blocking code in an async tool: the loop cannot stop it
    return "posted"


def test_an_async_tool_that_blocks_past_its_limit_is_named(caplog):
    from routine.tools.core import tool
    blocking = tool(_blocking, name="post_pick")
    registry = ToolRegistry()
    registry.add(blocking)
    model = ScriptedModel([call("post_pick", order="O1"), "ok"])
    with caplog.at_level(logging.WARNING):
        Agent(None, registry, model, validate=False, tool_timeout_s=0.1).run("post O1")
    assert any("held the event loop" in r.getMessage() and "post_pick" in r.getMessage()
               for r in caplog.records)


def test_run_json_keeps_stdout_for_the_json_when_a_tool_prints(tmp_path, monkeypatch, capsys):
    (tmp_path / "noisy.py").write_text(
        "from routine import tool\n\n@tool\ndef pack(order: str) -> str:\n"
        "    \"\"\"Pack an order.\"\"\"\n    print('PACKING', order)\n    return 'packed'\n")
    (tmp_path / "pack.yaml").write_text(
        "name: pack\ndescription: Pack an order.\ninputs:\n  order: {type: string, "
        "description: the order}\nsteps:\n  - {id: pack, name: Pack, description: Pack it., "
        "tool: pack, args: {order: \"${inputs.order}\"}}\n  - {id: answer, name: Answer, "
        "description: Say it., finish: true}\n")
    (tmp_path / "routine.toml").write_text('[toolsets]\nnoisy = "noisy"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTINE_PROJECT", raising=False)
    model = ScriptedModel([call("pack", order="O1"), "Packed."])
    monkeypatch.setattr(commands, "_model", lambda *a, **k: contextlib.nullcontext(model))
    buffer = io.StringIO()
    from rich.console import Console
    monkeypatch.setattr(commands, "out", Console(file=buffer, width=200))
    code = main(["run", "pack.yaml", "pack it", "-i", "order=O1", "--tools", "noisy",
                 "--json"])
    printed = capsys.readouterr()
    assert code == 0 and "PACKING" not in printed.out and "PACKING O1" in printed.err
    assert json.loads(buffer.getvalue())["answer"] == "Packed."
