"""Hostile tools, third round: what a result becomes as data (aliases, computed fields,
Decimals), MCP results and servers that fail at start, toolkit classes, odd callables."""

from __future__ import annotations

import asyncio
import functools
import shutil
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from pydantic import BaseModel, ConfigDict, Field, computed_field

from routine import Agent, RunContext, ToolRegistry, Toolset, check_routine, load_routine_text, tool
from routine.errors import ToolDefinitionError
from routine.models.testing import ScriptedModel, call
from routine.spec.project import Project
from routine.spec.validate import schema_at
from routine.tools.core import to_jsonable
from routine.tools.mcp import McpServer, McpToolError, _result_value, mcp_toolset

DATA = Path(__file__).resolve().parent / "data" / "tools_hostile3"
LEDGER = McpServer(command=sys.executable, args=[str(DATA / "ledger_mcp.py")], name="ledger")


def _routine(text: str) -> Any:
    return load_routine_text(textwrap.dedent(text), "r.yaml")


# ---------------------------------------------------------------- results as data (2, 5)
class Account(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    account_id: int = Field(alias="accountId")


class Loan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: Decimal
    rate: Decimal
    secret: str = Field(exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def monthly(self) -> Decimal:
        return self.principal * self.rate / 12


class Balance(BaseModel):
    balance: Decimal


core = Toolset("core")


@core.tool
def get_account(iban: str) -> Account:
    """Get an account.

    Args:
        iban: the IBAN.
    """
    return Account(accountId=42)


@core.tool
def freeze(account_id: int) -> str:
    """Freeze an account.

    Args:
        account_id: the account id.
    """
    return f"frozen {account_id}"


@core.tool
def get_loan(loan_id: int) -> Loan:
    """Get a loan.

    Args:
        loan_id: the loan.
    """
    return Loan(principal=Decimal("1200"), rate=Decimal("0.05"), secret="s")


def test_result_data_and_output_schema_agree_on_aliases_computed_and_excluded_fields():
    assert list(get_account.output_schema["properties"]) == ["accountId"]
    assert to_jsonable(Account(accountId=42)) == {"accountId": 42}
    data = to_jsonable(get_loan.function(1))
    assert data == {"principal": 1200, "rate": 0.05, "monthly": 5}
    assert set(get_loan.output_schema["properties"]) == set(data)
    assert schema_at(get_loan.output_schema, ("monthly",))[1] == ""
    assert "no field 'secret'" in schema_at(get_loan.output_schema, ("secret",))[1]
    # extra='forbid' with a computed field, a required excluded field: the data is fine
    assert get_loan.result_problem(data) == ""
    assert "principal" in get_loan.result_problem({"rate": 1})


def test_a_reference_by_alias_resolves_in_a_run():
    loaded = _routine("""
        name: freeze
        description: Freeze an account.
        toolsets: [core]
        inputs:
          iban: {type: string, description: the IBAN}
        steps:
          - id: acct
            name: Account
            description: Get the account.
            tool: get_account
            args: {iban: "${inputs.iban}"}
          - id: freeze
            name: Freeze
            description: Freeze it.
            tool: freeze
            args: {account_id: "${steps.acct.output.accountId}"}
          - id: answer
            name: Answer
            description: Say it.
            finish: true
    """)
    registry = ToolRegistry(core)
    assert check_routine(loaded, registry) == []
    model = ScriptedModel([call("get_account", iban="DE12"), call("freeze", account_id=42),
                           "Frozen."])
    trace = Agent(loaded, registry, model).run("freeze DE12")
    assert [c.result for c in trace.tool_calls] == [{"accountId": 42}, "frozen 42"]
    assert '{"account_id": 42}' in model.requests[1].messages[-1].content


def test_decimals_are_numbers_in_data_schema_and_when_conditions():
    assert to_jsonable({"a": Decimal("20.00"), "b": [Decimal("0.5")], "c": Decimal("NaN")}) \
        == {"a": 20, "b": [0.5], "c": "NaN"}
    assert type(to_jsonable(Decimal("20.00"))) is int
    assert get_loan.output_schema["properties"]["principal"]["type"] == "number"
    bank = Toolset("bank")
    @bank.tool
    def get_balance(iban: str) -> Balance:
        """Get a balance.

        Args:
            iban: the IBAN.
        """
        return Balance(balance=Decimal("20.00"))

    @bank.tool
    def transfer(amount: int) -> str:
        """Transfer money.

        Args:
            amount: how much.
        """
        return "sent"

    loaded = _routine("""
        name: pay
        description: Pay 100 if the balance covers it.
        toolsets: [bank]
        inputs:
          iban: {type: string, description: the IBAN}
        steps:
          - id: acct
            name: Account
            description: Get the balance.
            tool: get_balance
            args: {iban: "${inputs.iban}"}
          - id: decide
            name: Decide
            description: Pay only if the balance covers 100.
            branch:
              - condition: the balance covers 100
                when: steps.acct.output.balance >= 100
                steps:
                  - id: pay
                    name: Pay
                    description: Transfer 100.
                    tool: transfer
                    args: {amount: 100}
              - condition: otherwise
                steps:
                  - id: refuse
                    name: Refuse
                    description: Say the balance is too low.
                    finish: true
          - id: answer
            name: Answer
            description: Say it is paid.
            finish: true
    """)
    registry = ToolRegistry(bank)
    assert check_routine(loaded, registry) == []
    model = ScriptedModel([call("get_balance", iban="DE12"), "The balance is too low."])
    trace = Agent(loaded, registry, model).run("pay 100 from DE12")
    assert trace.branch_errors == {}
    assert [c.name for c in trace.tool_calls] == ["get_balance"]
    assert trace.tool_calls[0].result == {"balance": 20}


def test_a_nan_result_is_said_to_be_null_and_undecodable_bytes_say_what_to_return():
    @tool
    def ratio() -> float:
        """A ratio."""
        return float("nan")

    data = to_jsonable(ratio.function())
    assert data is None and "NaN or infinite float is null" in ratio.result_problem(data)
    with pytest.raises(ValueError, match="bytes value that is not UTF-8 text.*base64"):
        to_jsonable(b"\x00\xffPDF")


# ---------------------------------------------------------------- MCP results (4)
def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def test_mcp_result_values():
    assert _result_value(types.CallToolResult(content=[_text('{"a": 1}')])) == {"a": 1}
    assert _result_value(types.CallToolResult(content=[_text("[1, 2]")])) == [1, 2]
    assert _result_value(types.CallToolResult(content=[_text("{not json")])) == "{not json"
    assert _result_value(types.CallToolResult(content=[_text("42")])) == "42"
    blob = types.BlobResourceContents(uri="file:///a.pdf", mime_type="application/pdf",
                                      blob="AAAA")
    image = types.ImageContent(type="image", data="AAAA", mime_type="image/png")
    shown = _result_value(types.CallToolResult(content=[
        types.EmbeddedResource(type="resource", resource=blob), image]))
    assert "file:///a.pdf" in shown and "image/png" in shown
    with pytest.raises(McpToolError, match='"code": "X"'):
        _result_value(types.CallToolResult(content=[], is_error=True,
                                           structured_content={"code": "X"}))


def test_mcp_json_text_resources_and_error_details_reach_the_run():
    ledger = mcp_toolset(LEDGER)
    loaded = _routine("""
        name: tx
        description: List an account's transactions.
        toolsets: [ledger]
        inputs:
          iban: {type: string, description: the IBAN}
        steps:
          - id: acct
            name: Account
            description: Get the account.
            tool: get_account
            args: {iban: "${inputs.iban}"}
          - id: tx
            name: Transactions
            description: List the transactions of the account found.
            tool: list_tx
            args: {iban: "${steps.acct.output.iban}"}
          - id: answer
            name: Answer
            description: Say it.
            finish: true
    """)
    registry = ToolRegistry(ledger)
    model = ScriptedModel([call("get_account", iban="DE12"), call("list_tx", iban="DE12"),
                           "None."])
    trace = Agent(loaded, registry, model).run("transactions of DE12")
    assert trace.tool_calls[0].result == {"iban": "DE12", "owner": "Ada"}
    assert '{"iban": "DE12"}' in model.requests[1].messages[-1].content
    model = ScriptedModel([call("statement", iban="DE12"), call("block_card", iban="DE12"),
                           "Done."])
    statement, block = Agent(None, registry, model).run("statement, then block").tool_calls
    assert statement.result_text == "date,amount\n2026-01-01,-12.50"
    assert "refused" in block.error and "ALREADY_BLOCKED" in block.error


# ---------------------------------------------------------------- MCP servers at start (10)
def test_a_project_server_runs_in_the_project_root(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    shutil.copy(DATA / "ledger_mcp.py", tmp_path / "ledger_mcp.py")
    (tmp_path / "routine.toml").write_text(
        f'[toolsets]\nledger = {{ mcp = {{ command = {str(sys.executable)!r}, '
        'args = ["ledger_mcp.py"] } }\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    [toolset] = Project.load(tmp_path / "routine.toml").resolve("ledger")
    assert "get_account" in toolset.tools


def test_a_server_that_exits_at_start_is_one_clear_error():
    server = McpServer(command=sys.executable, args=["-c", "import sys; sys.exit(3)"])
    with pytest.raises(RuntimeError, match=r"MCP server `.*sys.exit\(3\)` exited before it "
                                             r"answered \(exit status 3\)"):
        mcp_toolset(server)
    missing = McpServer(command="no-such-mcp-server-here")
    with pytest.raises(RuntimeError, match="cannot start MCP server `no-such-mcp-server-here`: "
                                           "No such file"):
        mcp_toolset(missing)


def test_a_server_that_never_answers_times_out():
    server = McpServer(command=sys.executable, args=["-c", "import time; time.sleep(60)"])
    with pytest.raises(RuntimeError, match="did not answer within 1 s"):
        mcp_toolset(server, timeout_s=1)


# ---------------------------------------------------------------- Toolset.from_object (8, 9)
class Accounts:
    def balance(self, iban: str) -> float:
        """Get a balance.

        Args:
            iban: the IBAN.
        """
        return 10.0


class Payments(Accounts):
    def pay(self, iban: str, amount: float) -> str:
        """Pay.

        Args:
            iban: the IBAN.
            amount: how much.
        """
        return f"paid {amount}"

    @staticmethod
    def convert(amount: float, rate: float) -> float:
        """Convert.

        Args:
            amount: the amount.
            rate: the rate.
        """
        return amount * rate

    @classmethod
    def bank_code(cls, country: str) -> str:
        """A bank code.

        Args:
            country: ISO country.
        """
        return cls.__name__ + country

    def note(self, ctx: str, text: str) -> str:
        """Note something.

        Args:
            ctx: the business context.
            text: the note.
        """
        return f"{ctx}: {text}"

    def whoami(self, run: RunContext[Any], text: str) -> str:
        """Who runs.

        Args:
            text: a note.
        """
        return f"{run.run_id} {text} {type(run.deps).__name__}"


def test_from_object_takes_inherited_static_and_class_methods_and_a_ctx_parameter():
    payments = Toolset.from_object("payments", Payments)
    assert set(payments.tools) == {"pay", "convert", "bank_code", "note", "whoami", "balance"}
    assert list(payments.tools["convert"].parameters["properties"]) == ["amount", "rate"]
    assert list(payments.tools["note"].parameters["properties"]) == ["ctx", "text"]
    assert list(payments.tools["whoami"].parameters["properties"]) == ["text"]
    model = ScriptedModel([call("convert", amount=2.0, rate=3.0), call("bank_code", country="DE"),
                           call("note", ctx="kyc", text="ok"), call("whoami", text="hi"),
                           call("balance", iban="DE1"), "Done."])
    trace = Agent(None, ToolRegistry(payments), model).run("all of them")
    assert [c.result for c in trace.tool_calls][:3] == [6.0, "PaymentsDE", "kyc: ok"]
    assert trace.tool_calls[3].result.endswith("hi Payments")
    assert trace.tool_calls[4].result == 10.0


class Ledger:
    entered = 0

    def __enter__(self) -> None:  # returns None, as many __enter__ do
        Ledger.entered += 1

    def __exit__(self, *exc: object) -> None:
        pass

    def post(self, amount: float) -> str:
        """Post an entry.

        Args:
            amount: the amount.
        """
        return f"posted {amount}"


def test_from_object_calls_the_object_when_enter_returns_none():
    ledger = Toolset.from_object("ledger", Ledger)
    model = ScriptedModel([call("post", amount=1.0), "Done."])
    trace = Agent(None, ToolRegistry(ledger), model).run("post")
    assert trace.tool_calls[0].result == "posted 1.0" and Ledger.entered == 1


def test_from_object_approval_must_name_a_tool():
    with pytest.raises(ToolDefinitionError, match="approval names 'pays'.*its tools: pay"):
        Toolset.from_object("payments", Payments, methods=["pay"], approval=("pays",))
    payments = Toolset.from_object("payments", Payments, methods=["pay", "convert"],
                                   approval="pay")  # type: ignore[arg-type]
    assert payments.tools["pay"].approval and not payments.tools["convert"].approval


# ---------------------------------------------------------------- odd callables (12)
def fx(amount: float, rate: float) -> float:
    """Convert an amount.

    Args:
        amount: the amount.
        rate: the rate.
    """
    return amount * rate


class RiskScorer:
    def __call__(self, customer_id: int) -> int:
        """Score a customer's risk.

        Args:
            customer_id: the customer.
        """
        return customer_id * 2


def test_partials_and_callable_objects_are_tools():
    to_eur = tool(functools.partial(fx, rate=2.0), name="to_eur")
    assert list(to_eur.parameters["properties"]) == ["amount"]  # the bound rate is not asked
    assert asyncio.run(to_eur.invoke({"amount": 3.0}, None)) == 6.0
    assert tool(functools.partial(fx, rate=2.0)).name == "fx"
    score = tool(RiskScorer(), name="risk_score")
    assert score.description == "Score a customer's risk."
    assert asyncio.run(score.invoke({"customer_id": 4}, None)) == 8
    with pytest.raises(ToolDefinitionError, match="no name of its own.*name="):
        tool(RiskScorer())
    with pytest.raises(ToolDefinitionError, match="not callable"):
        tool(42)


def test_parameters_named_like_pydantic_internals_stay_parameters():
    def deploy(model_config: str, json: int, _tag: str = "x") -> str:
        """Deploy.

        Args:
            model_config: which config.
            json: how many.
            _tag: a tag.
        """
        return f"{model_config} {json} {_tag}"

    deployed = tool(deploy)
    assert list(deployed.parameters["properties"]) == ["model_config", "json", "_tag"]
    assert deployed.parameters["required"] == ["model_config", "json"]
    assert deployed.parameters["properties"]["model_config"]["description"] == "which config."
    arguments = {"model_config": "big", "json": 2}
    assert asyncio.run(deployed.invoke(arguments, None)) == "big 2 x"
    with pytest.raises(ValueError, match="unexpected argument 'argument_0'"):
        deployed.validate_arguments({**arguments, "argument_0": "x"})
