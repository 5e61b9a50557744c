"""What the last hostile-input round noticed and left alone, now handled: the project's
toolsets listed by ``routine tools``, ``routine serve`` checking its port and printing the
embedded server's command line, German nouns kept by the routers."""

from __future__ import annotations

import contextlib
import json

import pytest
from pydantic import BaseModel

from routine import Agent
from routine.cli.commands import main
from routine.models.testing import ScriptedModel, call
from routine.routing import Library
from routine.routing.library import retrieval_text
from routine.spec.loader import load_routine_text

PROJECT = '[toolsets]\nshop = "tests.shop:shop"\n'


def test_routine_tools_lists_the_project_s_toolsets_and_one_toolset_s_tools(tmp_path, capsys):
    (tmp_path / "routine.toml").write_text(PROJECT)
    project = ["--project", str(tmp_path / "routine.toml")]
    assert main([*project, "tools"]) == 0
    out = capsys.readouterr().out
    assert "shop  tests.shop:shop" in out and "hr_tools" not in out  # the project's, only
    assert main([*project, "tools", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["toolsets"] == {"shop": "tests.shop:shop"}
    assert main([*project, "tools", "--toolset", "shop", "--json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert {"find_by_email", "get_order", "cancel_order", "refund"} <= names
    assert main([*project, "tools", "--toolset", "shoop"]) == 1
    assert "unknown toolset 'shoop'" in capsys.readouterr().err


def test_a_toolset_that_fails_to_import_is_one_error_not_a_traceback(tmp_path, capsys):
    (tmp_path / "routine.toml").write_text('[toolsets]\nbroken = "no_such_module_xyz"\n')
    code = main(["--project", str(tmp_path / "routine.toml"), "tools", "--toolset", "broken"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot load toolset" in err and "Traceback" not in err


@pytest.mark.parametrize("port", ["0", "99999", "-1"])
def test_serve_refuses_a_port_out_of_range(port, capsys):
    assert main(["serve", "--port", port]) == 2
    assert "port" in capsys.readouterr().err.lower()


def test_serve_print_command_prints_the_embedded_server_without_starting_it(capsys):
    pytest.importorskip("llama_cpp")
    from routine.models.embedded import LIGHT_MODEL, cache_state

    state = cache_state(LIGHT_MODEL)
    if not (state.assembled or state.parts_installed == state.parts_total):
        pytest.skip("the embedded 0.5B is not installed")
    assert main(["serve", "--model", LIGHT_MODEL, "--port", "8123", "--print-command"]) == 0
    command = capsys.readouterr().out.split()
    assert command[1:3] == ["-m", "routine.models.llama_server"]
    assert command[command.index("--port") + 1] == "8123"
    assert command[command.index("--model") + 1].endswith(".gguf")


GERMAN = """\
name: {name}
description: {description}
toolsets: [hr_tools]
steps:
  - {{id: done, name: Antwort, description: Antworten., finish: true}}
"""


def test_german_nouns_choose_the_routine_and_names_still_do_not():
    leave = load_routine_text(GERMAN.format(
        name="urlaub_beantragen", description="Beantragt Urlaub für einen Mitarbeiter."),
        "a.yaml")
    payslip = load_routine_text(GERMAN.format(
        name="gehaltsabrechnung", description="Zeigt die Gehaltsabrechnung eines Monats."),
        "b.yaml")
    from routine.routing import make_router

    router = make_router("lexical", Library.of([leave, payslip]))
    assert router.rank("Ich möchte Urlaub für nächste Woche beantragen")[0].name == \
        "urlaub_beantragen"
    assert router.rank("Bitte die Gehaltsabrechnung für Jonas schicken")[0].name == \
        "gehaltsabrechnung"
    terms = frozenset({"urlaub"})
    assert retrieval_text("Ich nehme nächste woche frei, also Urlaub, sagt Jonas", terms=terms) \
        == "Ich nehme nächste woche frei, also Urlaub, sagt"  # the noun stays, the name not


# ---------------------------------------------------------------- a setup that hangs
HANGING = """\
name: look_up
description: Look a thing up.
toolsets: [slow]
steps:
  - {id: find, name: Find, description: Find it., tool: find_thing}
  - {id: done, name: Answer, description: Say it., finish: true}
"""


def _slow_toolset(setup):
    import contextlib  # noqa: F401  (the setups below are context managers)

    from routine import Toolset

    slow = Toolset("slow", setup=setup)

    @slow.tool
    def find_thing() -> str:
        """Find the thing."""
        return "found"

    return slow


def test_a_sync_setup_that_never_returns_ends_the_run_within_its_time_limit():
    import contextlib
    import threading
    import time

    from routine import Agent, ToolsetSetupError
    from routine.models.testing import ScriptedModel, call

    release, exited = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def stuck():
        release.wait()  # a database that never answers
        try:
            yield "connection"
        finally:
            exited.set()

    routine = load_routine_text(HANGING, "look_up.yaml")
    agent = Agent(routine, [_slow_toolset(stuck)], ScriptedModel([call("find_thing")]),
                  timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ToolsetSetupError, match="'slow'.*0.5 s"):
        agent.run("look it up")
    assert time.monotonic() - started < 5
    release.set()  # it enters after all: nobody will use it, so it is exited at once
    assert exited.wait(5)


def test_an_async_setup_that_never_returns_is_bounded_too_and_a_quick_one_is_used():
    import asyncio
    import contextlib

    from routine import Agent, ToolsetSetupError
    from routine.models.testing import ScriptedModel, call

    @contextlib.asynccontextmanager
    async def stuck():
        await asyncio.Event().wait()
        yield None

    routine = load_routine_text(HANGING, "look_up.yaml")
    with pytest.raises(ToolsetSetupError):
        Agent(routine, [_slow_toolset(stuck)], ScriptedModel([call("find_thing")]),
              timeout_s=0.5).run("look it up")
    closed: list[str] = []

    @contextlib.contextmanager
    def quick():
        yield "db"
        closed.append("db")

    trace = Agent(routine, [_slow_toolset(quick)],
                  ScriptedModel([call("find_thing"), "It is found."]),
                  timeout_s=30).run("look it up")
    assert trace.outcome == "answered" and closed == ["db"]


# ---------------------------------------------------------------- validate's warnings
LOOKUP = """\
name: pay_customer
description: Pay a customer found by e-mail.
toolsets: [payments]
inputs: {email: {type: string, description: the customer's e-mail}}
steps:
  - {id: find, name: Find, description: Find the customer., tool: find_customer,
     args: {email: "${inputs.email}"}}
%s  - {id: pay, name: Pay, description: Pay them., tool: pay,
     args: {customer_id: "${steps.find.output.customer_id}",
            note: "${steps.find.output.note}"}}
  - {id: done, name: Answer, description: Say it., finish: true}
"""
GUARD = """\
  - id: check
    name: Check
    description: Stop when nobody is found.
    branch:
      - {condition: nobody found, when: "steps.find.output is none", next: done}
      - {condition: found, next: pay}
"""


class Customer(BaseModel):
    customer_id: int
    note: str | None = None


def _payments():
    from routine import Toolset

    payments = Toolset("payments")

    @payments.tool
    def find_customer(email: str) -> Customer | None:
        """Find a customer by e-mail; None when there is none."""
        return None

    @payments.tool
    def pay(customer_id: int, note: str | None = None) -> str:
        """Pay a customer."""
        return "paid"

    return payments


def test_validate_warns_where_an_optional_output_reaches_an_argument_that_takes_no_null():
    from routine.spec.validate import check_routine
    from routine.tools.core import ToolRegistry

    registry = ToolRegistry()
    registry.add(_payments())
    loaded = load_routine_text(LOOKUP % "", "pay.yaml")
    warnings: list = []
    assert check_routine(loaded, registry, warnings=warnings) == []  # it may still run
    (warning,) = warnings  # customer_id, not note (pay takes a null note)
    assert warning.severity == "warning" and warning.line == 9
    assert "steps.find.output.customer_id} may be null" in warning.message
    assert "'find_customer' returns Optional" in warning.message
    assert str(warning).startswith("pay.yaml:9:") and ": warning: " in str(warning)
    guarded: list = []
    assert check_routine(load_routine_text(LOOKUP % GUARD, "pay.yaml"), registry,
                         warnings=guarded) == []
    assert guarded == []  # the routine tests for "nobody found" first


def _payments_project(tmp_path, monkeypatch) -> None:
    """A project whose one routine (pay.yaml) draws validate's warning."""
    import sys
    import types

    module = types.ModuleType("payments_tools_for_test")
    module.payments = _payments()
    monkeypatch.setitem(sys.modules, "payments_tools_for_test", module)
    (tmp_path / "routine.toml").write_text(
        '[toolsets]\npayments = "payments_tools_for_test:payments"\n')
    (tmp_path / "pay.yaml").write_text(LOOKUP % "")


def test_routine_validate_prints_warnings_and_still_passes(tmp_path, capsys, monkeypatch):
    _payments_project(tmp_path, monkeypatch)
    code = main(["--project", str(tmp_path / "routine.toml"), "validate",
                 str(tmp_path / "pay.yaml")])
    captured = capsys.readouterr()
    assert code == 0
    assert "pay.yaml:9:" in captured.out and "warning: ${steps.find.output.customer_id}" \
        in captured.out
    assert "1 routine file checked: ok (1 warning)" in captured.err


def test_agent_emits_validate_s_warnings_and_keeps_them(recwarn):
    from routine import RoutineWarning
    from routine.tools.core import ToolRegistry

    registry = ToolRegistry()
    registry.add(_payments())
    agent = Agent(load_routine_text(LOOKUP % "", "pay.yaml"), registry, ScriptedModel([]))
    (kept,) = agent.warnings
    assert kept.severity == "warning" and kept.line == 9
    (emitted,) = [w for w in recwarn if issubclass(w.category, RoutineWarning)]
    assert str(emitted.message) == str(kept) and emitted.filename == __file__
    guarded = Agent(load_routine_text(LOOKUP % GUARD, "pay.yaml"), registry, ScriptedModel([]))
    assert guarded.warnings == []
    unchecked = Agent(load_routine_text(LOOKUP % "", "pay.yaml"), registry, ScriptedModel([]),
                      validate=False)
    assert unchecked.warnings == []


def test_routine_run_shows_the_warning_as_one_console_line(tmp_path, capsys, monkeypatch):
    from routine.cli import commands

    _payments_project(tmp_path, monkeypatch)
    script = ScriptedModel([call("find_customer", email="a@b.c")])

    @contextlib.contextmanager
    def scripted(*args, **kwargs):
        yield script

    monkeypatch.setattr(commands, "_model", scripted)
    code = main(["--project", str(tmp_path / "routine.toml"), "run", str(tmp_path / "pay.yaml"),
                 "pay a@b.c", "--approve", "none"])
    captured = capsys.readouterr()
    assert "warning: " in captured.err and "pay.yaml:9:" in captured.err
    assert "RoutineWarning" not in captured.err  # not Python's warning format
    assert code != 0  # the lookup found nobody: the run stops where the warning said


# ------------------------------------------------------------ chat's hand-off targets
def _clashing_toolsets():
    from routine import Toolset

    front, billing = Toolset("front"), Toolset("billing")

    @front.tool
    def lookup(name: str) -> str:
        """Find a customer."""
        return name

    @billing.tool(name="lookup")
    def billing_lookup(invoice: str) -> str:
        """Find an invoice."""
        return invoice

    return front, billing


def test_chat_says_when_a_hand_off_target_cannot_run_beside_its_tools(tmp_path, capsys,
                                                                       monkeypatch):
    import sys
    import types

    from routine.cli import commands

    module = types.ModuleType("clash_tools_for_test")
    module.front, module.billing = _clashing_toolsets()
    monkeypatch.setitem(sys.modules, "clash_tools_for_test", module)
    started: list[str] = []

    class Watched(types.ModuleType):  # a toolset that records being started (an MCP server)
        def __getattr__(self, name: str):
            started.append(name)
            raise AttributeError(name)

    monkeypatch.setitem(sys.modules, "watched_tools_for_test", Watched("watched_tools_for_test"))
    (tmp_path / "routine.toml").write_text(
        '[toolsets]\nfront = "clash_tools_for_test:front"\n'
        'billing = "clash_tools_for_test:billing"\n'
        'watched = "watched_tools_for_test:tools"\n')
    (tmp_path / "unrelated.yaml").write_text(  # no hand-off reaches it: never started
        "name: unrelated\ndescription: Something else.\ntoolsets: [watched]\nsteps:\n"
        "  - {id: done, name: Answer, description: Say it., finish: true}\n")
    (tmp_path / "triage.yaml").write_text(
        "name: triage\ndescription: Pass billing questions on.\ntoolsets: [front]\nsteps:\n"
        "  - {id: pass, name: Pass on, description: Hand over., handoff: invoices}\n")
    (tmp_path / "invoices.yaml").write_text(
        "name: invoices\ndescription: Answer about an invoice.\ntoolsets: [billing]\n"
        "steps:\n  - {id: find, name: Find, description: Find it., tool: lookup}\n"
        "  - {id: done, name: Answer, description: Say it., finish: true}\n")

    @contextlib.contextmanager
    def scripted(*args, **kwargs):
        yield ScriptedModel([])

    monkeypatch.setattr(commands, "_model", scripted)
    monkeypatch.chdir(tmp_path)
    main(["--project", str(tmp_path / "routine.toml"), "chat", str(tmp_path / "triage.yaml"),
          "my invoice is wrong"])
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert warning and "step pass hands off to 'invoices'" in warning[0]
    assert "invoices.yaml" in captured.err and "lookup" in captured.err
    assert started == []  # the unrelated routine's toolset was not started
