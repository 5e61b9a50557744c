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
        payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", **message}}],
                   "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
                    '{"name": "Wei Tanaka"}}\n</tool_call>'},
        {"content": '<tool_call>\n{"name": "get_employee", "arguments": '
                    '{"employee_id": 3}}\n</tool_call>'},
        {"content": None, "tool_calls": [{"id": "f", "type": "function", "function": {
            "name": "finish", "arguments": '{"answer": "No manager: Wei heads Finance."}'}}]},
    ]
    code = main(["run", str(ROUTINES / "hr" / "manager_lookup.yaml"), "Who manages Wei Tanaka?",
                 "--base-url", scripted_server, "--model", "test-model",
                 "--trace-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "find_employee" in out and "Answer:" in out and "No manager" in out
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
    assert 'pip install -e ".[local,finetune,dev]"' in readme
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
        assert code == 1
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
        {"content": '{"name": "find_employee", "arguments": {"name": "Wei Tanaka"}}'},
        {"content": '{"name": "get_employee", "arguments": {"employee_id": 3}}'},
        {"content": '{"name": "finish", "arguments": {"answer": "Wei heads Finance."}}'},
    ]
    code = main(["run", str(ROUTINES / "hr" / "manager_lookup.yaml"), "Who manages Wei Tanaka?",
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
