"""Thirteenth hostile round (e): a pharmacy chain's inventory server and a ticketing server,
written by their own developers with the `mcp` package (MCPServer/FastMCP and the low-level
Server) and run over stdio — nested models, unions of models, nullable arguments, enums of
numbers, arrays of objects, results outside their own output schema, a server that exits at
start saying why — with routines validated against them; and the leftovers of the previous
round: inputs both required and defaulted, a tool registered twice, empty files and keys,
a Python file given to `routine validate`. Each test fails on the code before its fix."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from routine import Agent, ToolRegistry, check_routine, load_routine_text, tool
from routine.cli.commands import main
from routine.errors import SpecError, ToolDefinitionError
from routine.models.testing import ScriptedModel, call
from routine.tools.mcp import McpServer, mcp_toolset

from .conftest import ROOT

SERVERS = ROOT / "tests" / "servers"


def _pharmacy(**env: str) -> McpServer:
    return McpServer(command=sys.executable, args=[str(SERVERS / "pharmacy_mcp.py")],
                     name="pharmacy", env=env or None)


def _routine(steps: str, inputs: str = "") -> str:
    return ("name: stock\ndescription: Check a product's stock.\n"
            "inputs:\n  sku: {type: string, description: the product's SKU}\n" + inputs +
            "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ") +
            "  - id: answer\n    name: Answer\n    description: Say it.\n    finish: true\n")


# ---------------------------------------------------------------- leftovers of round 12/13
def test_an_input_both_required_and_with_a_default_is_a_problem():
    """`required: true` with a `default` validated clean: the run never asks for the input
    (the default is taken), so one of the two is a mistake the author should hear of."""
    text = _routine("""
        - id: check
          name: Check
          description: Check the stock.
          tool: count
          args: {sku: "${inputs.sku}", store: "${inputs.store}"}
        """, inputs="  store: {type: string, description: the store, required: true, "
                    "default: main}\n  region: {type: string, description: r, default: eu}\n")

    @tool
    def count(sku: str, store: str) -> int:
        """Count units.

        Args:
            sku: the SKU.
            store: the store.
        """
        return 1

    problems = check_routine(load_routine_text(text, "stock.yaml"), ToolRegistry(count))
    assert len(problems) == 1  # a default without `required:` is simply optional
    assert problems[0].line == 5 and "store" in problems[0].message
    assert "`required: true` and has a default" in problems[0].message
    assert "required: false" in problems[0].expected


def test_the_same_function_twice_is_one_tool_and_a_clash_names_both_functions():
    """`ToolRegistry(f, f)` said "two tools are named 'f' (a plain tool and a plain tool)"
    while the same Tool object twice was accepted: the same function twice is now one tool
    too, and two different functions of one name are named by their modules."""
    def check_stock(sku: str) -> int:
        """Count units.

        Args:
            sku: the SKU.
        """
        return 1

    assert ToolRegistry(check_stock, check_stock).names() == ["check_stock"]
    made = tool(check_stock)
    assert ToolRegistry(made, check_stock, made).names() == ["check_stock"]
    def stock(sku: str) -> int:
        """Count units elsewhere.

        Args:
            sku: the SKU.
        """
        return 2

    stock.__module__ = "crm_tools"
    other = tool(stock, name="check_stock")
    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry(check_stock, other)
    assert "a plain tool" not in str(caught.value)
    assert f"function {__name__}.test_the_same_function" in str(caught.value)
    assert "crm_tools." in str(caught.value)
    with pytest.raises(ToolDefinitionError, match="given twice with different settings"):
        ToolRegistry(check_stock, tool(check_stock, approval=True))


@pytest.mark.parametrize(("text", "said", "expected"), [
    ("", "the file is empty", "a routine"),
    ("# the stock routine, to be written\n", "the file is empty", "a routine"),
    ("name: stock\ndescription: d\nsteps:\n", "steps: the value is empty, and YAML reads an "
     "empty value as null", "a list under the key"),
    ("name: stock\ndescription: d\ninputs:\nsteps:\n  - id: a\n    name: A\n    description: "
     "a\n    finish: true\n", "inputs: the value is empty", "a mapping under the key"),
])
def test_an_empty_file_or_an_empty_key_says_what_yaml_read(text: str, said: str,
                                                          expected: str):
    """An empty file was "not a YAML mapping"; `steps:` with nothing after it was "Input
    should be a valid list", with no hint that YAML reads an empty value as null."""
    with pytest.raises(SpecError) as caught:
        load_routine_text(text, "stock.yaml")
    (problem,) = caught.value.problems
    assert said in problem.message and expected in problem.expected


def test_validate_given_a_python_file_says_what_files_it_takes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """`routine validate tools.py` read the Python file as YAML: "YAML syntax: mapping values
    are not allowed here" at some line of the code."""
    source = tmp_path / "pharmacy_tools.py"
    source.write_text("import os\n\ndef check_stock(sku: str) -> int:\n    return 1\n")
    assert main(["validate", str(source)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{source}:1:1: error: not a routine file")
    assert ".yaml or .yml" in out[0] and "YAML syntax" not in out[0]


# ---------------------------------------------------------------- the servers
def test_a_server_that_exits_at_start_says_why_in_its_error():
    """A server that exits at start was "exited before it answered (exit status 2); its
    error output, above, says why": in a notebook or a service nothing is above, and the
    server's own reason (a variable not set) was lost to the caller."""
    with pytest.raises(RuntimeError) as caught:
        mcp_toolset(_pharmacy(PHARMACY_MCP="fail"))
    message = str(caught.value)
    assert "exited before it answered (exit status 2)" in message
    assert "PHARMACY_DB_URL is not set" in message and "above" not in message


def test_a_mapping_for_a_union_of_models_is_checked_against_its_forms():
    """`query: {skus: ...}` for a `BySku | ByName` parameter (anyOf of two $refs) validated
    clean: a structure around a reference was checked only when the parameter had one
    form, and the routine fixes the whole structure, so every run sent what the server
    refuses."""
    registry = ToolRegistry(mcp_toolset(_pharmacy()))
    text = _routine("""
        - id: by_sku
          name: By SKU
          description: Find the product by its SKU.
          tool: find_product
          args: {query: {sku: "${inputs.sku}"}}
        - id: typo
          name: Typo
          description: Find it again.
          tool: find_product
          args: {query: {skus: "${inputs.sku}"}}
        - id: by_name
          name: By name
          description: Find it by name.
          tool: find_product
          args: {query: {name: "${inputs.sku}", strength_mg: "${inputs.sku}"}}
        """)
    problems = check_routine(load_routine_text(text, "stock.yaml"), registry)
    assert len(problems) == 2, problems
    assert problems[0].line == 16 and "is none of the forms it takes" in problems[0].message
    assert "sku | name, strength_mg" in problems[0].expected
    assert "strength_mg" in problems[1].message and "takes null/number" in \
        problems[1].message


def test_a_result_outside_the_server_s_output_schema_is_kept_not_a_failed_call():
    """A ticketing server whose result does not fit its own output schema (an id as text
    where it says integer; JSON text with no structured content): the SDK raised after the
    call had run, so the model heard "RuntimeError: Invalid structured content" for a
    ticket that was opened, and was free to open it again. The result is now kept, as a
    Python tool's is (a warning, once per tool)."""
    server = McpServer(command=sys.executable, args=[str(SERVERS / "ticketing_mcp.py")],
                       name="ticketing")
    model = ScriptedModel([call("open_ticket", summary="printer jam"),
                           call("get_ticket", ticket_id=7), call("finish", answer="T-7")])
    trace = Agent(None, ToolRegistry(mcp_toolset(server)), model).run("Open a ticket")
    opened, got = trace.tool_calls
    assert opened.error is None and opened.result == {"ticket_id": "T-7", "status": "open"}
    assert got.error is None and got.result == {"ticket_id": 7, "status": "open"}
    assert trace.outcome == "answered"
