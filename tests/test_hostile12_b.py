"""Twelfth hostile round (b): a bank's KYC project of its own — typed tools with odd
signatures, routines that pass structures and enum inputs, a database with tables of every
kind — and what `routine validate`, a run and `routine eval` made of it."""

from __future__ import annotations

import asyncio
import enum
import json
import sqlite3
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from routine import Agent, ToolRegistry, tool
from routine.errors import DatasetError
from routine.eval.endstate import end_state, row_diffs, snapshot_of
from routine.eval.tasks import TaskResult
from routine.models.testing import FunctionModel, call
from routine.run.trace import ToolCallRecord
from routine.spec import load_routine_text
from routine.spec.validate import check_routine
from routine.tools.sqlite import snapshot


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


class Address(TypedDict):
    street: str
    city: str


class Customer(BaseModel):
    id: int
    name: str
    address: Address


@tool
def find_customer(name: Annotated[str, Field(description="the customer's full name")]
                  ) -> Customer:
    """Find a customer by name."""
    return Customer(id=7, name=name, address={"street": "Rua A 1", "city": "Lisboa"})


@tool
def set_tier(customer_id: int, *, tier: Tier, level: Literal[1, 2, 3] = 1) -> str:
    """Set a customer's tier."""
    return f"{customer_id} is {tier.value} at level {level}"


@tool
def register_address(customer_id: int, address: Address) -> str:
    """Register a customer's postal address."""
    return f"{customer_id}: {address['street']}, {address['city']}"


KYC = ToolRegistry(find_customer, set_tier, register_address)


def _problems(steps: str, inputs: str = "  name: {type: string, description: the name}\n"
              ) -> list[str]:
    text = (f"name: kyc\ndescription: know your customer\ninputs:\n{inputs}steps:\n{steps}"
            "  - id: answer\n    name: Answer\n    description: answer\n    finish: true\n")
    return [str(p) for p in check_routine(load_routine_text(text, "kyc.yaml"), KYC)]


_FIND = ("  - id: find\n    name: Find\n    description: find\n    tool: find_customer\n"
         "    args: {name: '${inputs.name}'}\n")


def test_an_annotated_parameter_keeps_its_description_for_the_model():
    """`Annotated[str, Field(description=...)]` reached the model with no description."""
    prop = find_customer.parameters["properties"]["name"]
    assert prop.get("description") == "the customer's full name", prop


def test_a_structure_built_around_references_is_checked_against_the_parameter():
    """A mapping with a reference in it passed validate with a required field left out, a
    field the tool does not have, or a reference of the wrong type: every run then failed."""
    step = ("  - id: register\n    name: Register\n    description: register\n"
            "    tool: register_address\n    args:\n"
            "      customer_id: ${steps.find.output.id}\n      address: {ADDRESS}\n")
    missing = _problems(_FIND + step.replace(
        "{ADDRESS}", "{street: Rua B 2, town: '${steps.find.output.address.city}'}"))
    assert any("lacks the required field 'city'" in p for p in missing), missing
    assert any("has no field 'town'" in p for p in missing), missing
    mistyped = _problems(_FIND + step.replace(
        "{ADDRESS}", "{street: Rua B 2, city: '${steps.find.output.id}'}"))
    assert any("type mismatch" in p and "address.city" in p for p in mistyped), mistyped
    right = _problems(_FIND + step.replace(
        "{ADDRESS}", "{street: 'Rua ${inputs.name}', city: '${steps.find.output.address.city}'}"))
    assert right == []


def test_an_input_whose_enum_the_tool_refuses_is_a_problem():
    """An input with enum [gold, silver, bronze] passed to a parameter that takes gold or
    silver validated clean; a request for bronze then failed at run time."""
    step = ("  - id: tier\n    name: Tier\n    description: tier\n    tool: set_tier\n"
            "    args: {customer_id: 7, tier: '${inputs.tier}', level: '${inputs.level}'}\n")
    problems = _problems(step, inputs=(
        "  tier: {type: string, description: the tier, enum: [gold, silver, bronze]}\n"
        "  level: {type: integer, description: the level, required: false, default: 5}\n"))
    assert any("'bronze'" in p and "'tier'" in p for p in problems), problems
    assert any("may be 5" in p and "'level'" in p for p in problems), problems
    fine = _problems(step, inputs=(
        "  tier: {type: string, description: the tier, enum: [gold, silver]}\n"
        "  level: {type: integer, description: the level, required: false, default: 2}\n"))
    assert fine == []


def test_a_snapshot_reads_tables_without_rowid_and_full_text_indexes():
    """A `WITHOUT ROWID` table or an FTS5 index in the domain's database crashed every end
    state ("no such column: rowid"), so no eval or dataset build could run."""
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE accounts (iban TEXT, branch INTEGER, owner TEXT,
                               PRIMARY KEY (branch, iban)) WITHOUT ROWID;
        INSERT INTO accounts VALUES ('PT50 0002', 2, 'Ana');
        CREATE VIRTUAL TABLE articles USING fts5(title, body);
        INSERT INTO articles VALUES ('VPN drops', 'restart the client');
    """)
    state = snapshot(conn)
    assert state == {"accounts": {"2|PT50 0002": {"iban": "PT50 0002", "branch": 2,
                                                   "owner": "Ana"}},
                     "articles": {"1": {"title": "VPN drops", "body": "restart the client"}}}


def test_a_blob_column_that_differs_from_gold_is_recorded_not_a_crash():
    """A run that left a BLOB column (a scanned document) unlike gold crashed writing its
    task record (bytes that are not UTF-8 are no JSON), ending the whole evaluation."""
    gold = {"docs": {"1": {"id": 1, "scan": b"\x89PNG\xff"}}}
    run = {"docs": {"1": {"id": 1, "scan": b"\x00\xfe"}}}
    rows = row_diffs(run, gold, gold, {}, {})
    assert len(rows) == 1 and rows[0].column == "scan"
    record = TaskResult(example_id="kyc-1", condition="nl", trial=0, scenario="kyc",
                        routine="kyc", success=False, state_ok=False, facts_ok=True,
                        tool_f1=1.0, outcome="answered", answer="done", failure=None,
                        state_rows=rows, tools=[], gold_tools=[], seconds=0.1,
                        prompt_tokens=0, completion_tokens=0)
    back = json.loads(record.model_dump_json())
    assert back["state_rows"][0]["got"] == repr(b"\x00\xfe")


def test_a_state_snapshot_of_ones_own_store_may_key_rows_by_int():
    """A deps' `state_snapshot()` over a store of its own, rows keyed by their int ids,
    crashed `end_state` with an AttributeError ('int' object has no attribute 'isdigit')."""
    class Ledger:
        def state_snapshot(self):
            return {"accounts": {7: {"owner": "Ana", "balance": 10}, 12: {"owner": "Rui"}}}

    state = snapshot_of(Ledger())
    assert list(state["accounts"]) == ["7", "12"]
    assert end_state(state, state, {}).digest
    with pytest.raises(DatasetError, match="not a mapping"):
        snapshot_of(type("Odd", (), {"state_snapshot": lambda self: {"accounts": [1, 2]}})())


def _check_run(raise_in_task: BaseException) -> ToolCallRecord:
    """One run of a one-step routine whose async tool gathers in a TaskGroup that raises."""
    @tool(name="screen")
    async def screen(name: str) -> str:
        """Screen a customer against the sanctions and PEP lists."""
        async def lookup() -> None:
            raise raise_in_task

        async with asyncio.TaskGroup() as group:
            group.create_task(lookup())
        return "clear"

    routine = load_routine_text(
        "name: screen\ndescription: screen a customer\ninputs:\n"
        "  name: {type: string, description: the name}\nsteps:\n"
        "  - id: screen\n    name: Screen\n    description: screen\n    tool: screen\n"
        "    args: {name: '${inputs.name}'}\n"
        "  - id: answer\n    name: Answer\n    description: answer\n    finish: true\n")
    script = [call("screen", name="Ana Lima")]
    model = FunctionModel(lambda request: script.pop(0) if script else "Screening failed.")
    trace = Agent(routine, ToolRegistry(screen), model).run("Screen Ana Lima")
    return trace.tool_calls[0], trace


def test_an_async_tools_task_group_error_reaches_the_model_with_its_words():
    """An async tool's TaskGroup that failed told the model only 'unhandled errors in a
    TaskGroup (1 sub-exception)', and a TypeError inside one was not a tool bug."""
    record, trace = _check_run(LookupError("account PT50 0002 is frozen"))
    assert record.error_kind == "tool_error" and "account PT50 0002 is frozen" in record.error
    record, trace = _check_run(TypeError("unsupported operand"))
    assert record.error_kind == "tool_bug" and trace.failure_kind == "tool_bug"
    assert "test_hostile12_b.py" in record.error  # where the bug is, not asyncio's file


# ---------------------------------------------------------------- left by the helper, mended
def test_a_generator_tool_is_refused_when_defined_not_when_called():
    """A tool that yielded its rows (sync or async generator) was accepted and failed at
    every call as a result that is "not data"."""
    from routine.errors import ToolDefinitionError

    def list_accounts(customer_id: int):
        """List a customer's accounts."""
        yield {"id": customer_id}

    async def stream_accounts(customer_id: int):
        """Stream a customer's accounts."""
        yield {"id": customer_id}

    for function in (list_accounts, stream_accounts):
        with pytest.raises(ToolDefinitionError, match="generator function .* return a list"):
            tool(function)


def test_routine_tools_shows_an_enum_parameters_values(tmp_path, capsys):
    """`routine tools` (and the tool list `routine draft` shows a model) named an Enum
    parameter by its class only, "tier: Tier", never its values."""
    from routine.cli.commands import main

    module = tmp_path / "kyc_tiers.py"
    module.write_text(
        "import enum\nfrom routine import tool\n\n"
        "class Tier(enum.Enum):\n    GOLD = 'gold'\n    SILVER = 'silver'\n\n"
        "@tool\ndef set_tier(customer_id: int, tier: Tier) -> str:\n"
        "    \"\"\"Set a customer's tier.\"\"\"\n    return tier.value\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["tools", "--tools", "kyc_tiers"]) == 0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("kyc_tiers", None)
    out = capsys.readouterr().out
    assert '"gold" | "silver"' in out and "Tier" not in out.split("set_tier", 1)[1].split("\n")[0]


def test_a_misspelt_column_read_from_a_database_row_is_a_tool_bug():
    """`row["kyc_statuss"]` on a sqlite3.Row raises IndexError, a LookupError: it went to the
    model as an answer about the request ("No item with that key"), which it cannot mend."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, kyc_status TEXT)")
    conn.execute("INSERT INTO customers VALUES (7, 'verified')")

    @tool
    def kyc_status(customer_id: int) -> str:
        """A customer's KYC status."""
        row = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            raise LookupError(f"no customer {customer_id}")
        return row["kyc_statuss"]

    text = """
name: kyc
description: Tell a customer's KYC status.
inputs:
  customer_id: {type: integer, description: the customer id}
steps:
  - {id: look, name: Look it up, description: Read the status., tool: kyc_status,
     args: {customer_id: "${inputs.customer_id}"}}
  - {id: answer, name: Answer, description: Say the status., finish: true}
"""
    script = [call("kyc_status", customer_id=7)]
    agent = Agent(load_routine_text(text, "kyc.yaml"), ToolRegistry(kyc_status), FunctionModel(
        lambda request: script.pop(0) if script else "It is verified."))
    trace = agent.run("KYC status of 7?", inputs={"customer_id": 7})
    assert trace.failure_kind == "tool_bug" and "No item with that key" in trace.failure
    assert "test_hostile12_b.py" in trace.tool_calls[0].error  # where the bug is
    # a row that is not there is still the model's to hear about
    script = [call("kyc_status", customer_id=8)]
    missing = Agent(load_routine_text(text, "kyc.yaml"), ToolRegistry(kyc_status), FunctionModel(
        lambda request: script.pop(0) if script else "There is no customer 8."))
    trace = missing.run("KYC status of 8?", inputs={"customer_id": 8})
    assert trace.tool_calls[0].error_kind == "tool_error" and trace.failure_kind != "tool_bug"
