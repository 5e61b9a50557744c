"""Ninth hostile round, a platform engineer's MCP servers: a paged tool list is read
whole, the server inherits the environment, an error result's structured details survive
the cut of a long error text, and two tools of one name say which toolsets they are in."""

from __future__ import annotations

import sys
from typing import Literal

import pytest
from pydantic import BaseModel

pytest.importorskip("mcp")

from routine import Agent, ToolRegistry, Toolset, tool  # noqa: E402
from routine.errors import ToolDefinitionError  # noqa: E402
from routine.models.testing import ScriptedModel, call  # noqa: E402
from routine.tools.mcp import McpServer, mcp_toolset  # noqa: E402

from .conftest import ROOT  # noqa: E402

SERVER = McpServer(command=sys.executable, name="paged",
                   args=[str(ROOT / "tests" / "servers" / "paged_mcp.py")])


def test_a_paged_tool_list_is_read_whole_and_the_server_inherits_the_environment(
        monkeypatch):
    monkeypatch.setenv("PAGED_MCP_TOKEN", "s3cret")  # exported in the shell, as users do
    toolset = mcp_toolset(SERVER)
    assert len(toolset.tools) == 9  # before: the first page, 3 tools, without a word
    model = ScriptedModel([call("whose_token"), call("deadlock"), call("finish", answer="x")])
    trace = Agent(None, ToolRegistry(toolset), model).run("go")
    # before: the SDK passed PATH, HOME and a few more only; env was no "extra"
    assert trace.tool_calls[0].result == "s3cret"
    error = trace.tool_calls[1].error or ""
    # before: the details came after 4.9 KB of text and were cut off with its end
    assert '{"code": "DEADLOCK", "retryable": true}' in error[:200]


def test_two_tools_of_one_name_say_which_toolsets_they_are_in():
    first, second = Toolset("crm"), Toolset("ticketing")

    @first.tool
    def create_ticket(subject: str) -> str:
        """Open a CRM ticket."""
        return "crm"

    @tool(name="create_ticket")
    def other(subject: str) -> str:
        """Open a helpdesk ticket."""
        return "helpdesk"

    second.add(other)
    with pytest.raises(ToolDefinitionError, match=r"\(toolset 'crm' and toolset 'ticketing'\)"):
        ToolRegistry(first, second)


class Address(BaseModel):
    city: str
    country: Literal["DE", "FR", "US"]


def test_a_literal_beside_a_reference_in_a_mapping_is_checked_against_its_enum():
    from routine import load_routine_text
    from routine.errors import SpecError

    @tool
    def update_address(customer: int, address: Address) -> str:
        """Update an address."""
        return "ok"

    text = """
name: move
description: Move a customer.
inputs: {city: {type: string, description: the city}}
steps:
  - {id: move, name: Move, description: Move., tool: update_address,
     args: {customer: 1, address: {city: "${inputs.city}", country: UK}}}
  - {id: done, name: Done, description: Done., finish: true}
"""
    # before: valid, and every run failed as the model's mistakes (it cannot change UK)
    with pytest.raises(SpecError, match=r"move.yaml:7:\d+: error: literal 'UK' is not an "
                                        "allowed value"):
        Agent(load_routine_text(text, "move.yaml"), ToolRegistry(update_address),
              ScriptedModel([]))


def test_a_server_s_own_start_timeout_holds(tmp_path):
    import time

    silent = McpServer(command=sys.executable, args=["-c", "import time; time.sleep(20)"],
                       name="silent", timeout_s=0.5)  # before: unknown key in routine.toml
    started = time.perf_counter()
    with pytest.raises(Exception, match=r"0\.5 s"):
        mcp_toolset(silent)
    assert time.perf_counter() - started < 10


def test_after_a_tool_times_out_the_model_may_say_so_at_once():
    import time as clock

    from routine import load_routine_text

    @tool
    def slow_sync(order: int) -> str:
        """Sync an order with the warehouse."""
        clock.sleep(2)
        return "synced"

    text = """
name: sync
description: Sync an order.
inputs: {order: {type: integer, description: the order}}
steps:
  - {id: sync, name: Sync, description: Sync it., tool: slow_sync, args: {order: "${inputs.order}"}}
  - {id: done, name: Done, description: Done., finish: true}
"""
    said = "I could not tell whether the sync went through."
    model = ScriptedModel([call("slow_sync", order=7), said])
    trace = Agent(load_routine_text(text, "sync.yaml"), ToolRegistry(slow_sync), model,
                  tool_timeout_s=0.2).run("sync order 7", {"order": 7})
    # before: refused ("call slow_sync"), then the repeat was refused as not sent twice
    assert (trace.outcome, trace.answer) == ("answered", said)
    assert "Do not repeat it; tell the user" in trace.tool_calls[0].error
