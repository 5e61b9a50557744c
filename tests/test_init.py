"""`routine init`: from an empty folder to a validated, run, built and evaluated project."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from routine.cli.commands import main
from routine.models.testing import set_model_requests_allowed
from routine.run.trace import load_traces
from tests.servers.gold import gold_endpoint


def init_project(tmp_path, monkeypatch):
    """A fresh project made by `routine init`, as the working directory (and its toolset
    module forgotten afterwards, so each test imports its own copy): a fixture's body."""
    for var in ("ROUTINE_PROJECT", "ROUTINE_BASE_URL", "ROUTINE_MODEL", "OPENAI_BASE_URL",
                "OPENAI_MODEL"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "helpdesk"
    assert main(["init", str(folder)]) == 0
    monkeypatch.chdir(folder)
    set_model_requests_allowed(True)  # only our own loopback endpoints are used
    yield folder
    sys.modules.pop("helpdesk_tools", None)
    sys.path[:] = [p for p in sys.path if p != str(folder.resolve())]


@pytest.fixture
def project(tmp_path, monkeypatch):
    yield from init_project(tmp_path, monkeypatch)


def test_init_writes_a_project_and_refuses_to_overwrite_it(tmp_path, capsys):
    folder = tmp_path / "p"
    assert main(["init", str(folder)]) == 0
    names = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert names == {"routine.toml", "helpdesk_tools.py", "routines/open_ticket.yaml",
                     "routines/routine.schema.json", "eval/helpdesk/domain.py", "README.md"}
    assert (folder / "README.md").read_text().startswith("# p\n")
    (folder / "routines/open_ticket.yaml").write_text("mine\n")
    capsys.readouterr()
    assert main(["init", str(folder)]) == 1
    assert "already has" in capsys.readouterr().err
    assert (folder / "routines/open_ticket.yaml").read_text() == "mine\n"  # nothing lost


def test_an_initialised_project_validates_runs_builds_and_evaluates(project, capsys):
    # validate: no path needed, the project says where its routines are; the toolset module
    # beside routine.toml imports without PYTHONPATH
    assert main(["validate"]) == 0, capsys.readouterr()
    # gold data
    assert main(["dataset", "build", "eval/helpdesk"]) == 0
    test = [json.loads(line) for line in Path("eval/helpdesk/test.jsonl").read_text().splitlines()]
    assert len(test) == 5 and all(e["inputs"]["priority"] == "high" for e in test)
    assert main(["dataset", "check", "eval/helpdesk"]) == 0
    capsys.readouterr()
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        # run: a routine by its name, over a real HTTP endpoint (one that plays the gold)
        query = test[0]["query"]
        assert main(["run", "open_ticket", query, "--base-url", url, "--model", "gold",
                     "--trace-dir", "traces"]) == 0, capsys.readouterr()
        (trace,) = load_traces(Path("traces/traces.jsonl"))
        assert trace.tool_sequence == ["find_user", "open_ticket"]
        assert trace.answer == test[0]["answer"]
        # eval: a perfect endpoint scores every step and task of the project's data
        assert main(["eval", "eval/helpdesk", "--out", "results", "--base-url", url,
                     "--model", "gold", "--conditions", "none,nl+track", "--steps", "0",
                     "--tasks", "0"]) == 0, capsys.readouterr()
    summary = json.loads(Path("results/summary.json").read_text())
    text = json.dumps(summary)
    assert Path("results/report.md").is_file()
    tasks = [json.loads(line) for line in Path("results/tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == 10 and all(t["success"] for t in tasks), text
    steps = [json.loads(line) for line in Path("results/steps.jsonl").read_text().splitlines()]
    assert len(steps) == 2 * 15 and all(s["correct"] for s in steps), text


def test_eval_on_a_one_routine_project_and_report_only_on_nothing(project, capsys, caplog):
    assert main(["dataset", "build", "eval/helpdesk"]) == 0
    # report-only on a folder with no records: said, not an empty report (exit 0 before)
    assert main(["eval", "eval/helpdesk", "--out", "results", "--report-only"]) != 0
    assert "holds no records" in capsys.readouterr().err
    with gold_endpoint(Path("eval/helpdesk")) as (url, _):
        # nl+distractor needs a second routine: left out with a warning (crashed before)
        assert main(["eval", "eval/helpdesk", "--out", "results", "--base-url", url,
                     "--model", "gold", "--conditions", "nl,nl+distractor", "--steps", "0",
                     "--tasks", "2"]) == 0, capsys.readouterr()
    assert "nl+distractor left out" in caplog.text
    tasks = Path("results/tasks.jsonl")
    assert {json.loads(line)["condition"] for line in tasks.read_text().splitlines()} == {"nl"}
    # report-only changes no record: a torn last line is left out of the report, not cut
    with tasks.open("a") as fh:
        fh.write('{"condition": "nl", "exam')
    before = tasks.read_bytes()
    assert main(["eval", "eval/helpdesk", "--out", "results", "--conditions", "nl",
                 "--steps", "0", "--tasks", "2", "--report-only"]) == 0
    assert tasks.read_bytes() == before  # truncated before


def test_the_project_file_names_the_default_model(project, monkeypatch):
    from routine.cli.commands import _endpoint

    assert _endpoint(None, None, None) == (None, "qwen2.5-coder-1.5b", None)
    toml = Path("routine.toml")
    toml.write_text(toml.read_text().replace(
        'name = "qwen2.5-coder-1.5b"', 'name = "gpt-x"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "HELPDESK_KEY"'))
    monkeypatch.setenv("HELPDESK_KEY", "k-123")
    assert _endpoint(None, None, None) == ("http://127.0.0.1:9/v1", "gpt-x", "k-123")
    # flags and ROUTINE_* win; an embedded model's name means the embedded model
    assert _endpoint("other", "http://h/v1", "k")[0:2] == ("http://h/v1", "other")
    monkeypatch.setenv("ROUTINE_MODEL", "env-model")
    assert _endpoint(None, None, None)[1] == "env-model"
    assert _endpoint("qwen2.5-coder-0.5b", None, None)[0] is None


def test_a_toolset_that_fails_to_load_is_one_problem_not_one_per_step(project, capsys):
    toml = Path("routine.toml")
    toml.write_text(toml.read_text().replace('"helpdesk_tools"', '"helpdesk_tool"'))
    assert main(["validate"]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "error:" in line]
    assert len(lines) == 1, lines
    assert "open_ticket.yaml:5:" in lines[0] and "no module named 'helpdesk_tool'" in lines[0]
    assert "Traceback" not in captured.out + captured.err


def test_a_toolset_module_that_exits_on_import_is_a_problem_not_a_mute_exit(project, capsys):
    Path("exits_tools.py").write_text("import sys\nsys.exit(7)\n")
    toml = Path("routine.toml")
    toml.write_text(toml.read_text().replace('"helpdesk_tools"', '"exits_tools"'))
    assert main(["validate"]) == 1  # exited 7 with no output before
    out = capsys.readouterr().out
    assert "the module exited while it was imported (SystemExit(7))" in out


def test_validate_checks_hand_off_targets_against_the_project(project, capsys):
    Path("routines/triage.yaml").write_text(
        "name: triage\ndescription: Pass it on.\nsteps:\n"
        "  - {id: pass, name: Pass, description: Pass it on., handoff: open_tiket}\n")
    assert main(["validate"]) == 1  # passed before; the run failed after its tools ran
    out = capsys.readouterr().out
    assert "triage.yaml:4:" in out and "'handoff' names no known routine: 'open_tiket'" in out
    assert "did you mean open_ticket?" in out
    Path("routines/triage.yaml").write_text(
        Path("routines/triage.yaml").read_text().replace("open_tiket", "open_ticket"))
    assert main(["validate"]) == 0


def test_a_pipe_is_refused_not_read_forever(tmp_path, capsys):
    import os

    fifo = tmp_path / "routine.yaml"
    os.mkfifo(fifo)
    assert main(["validate", str(fifo)]) == 1  # hung forever before
    assert "not a regular file" in capsys.readouterr().out


def test_a_broken_domain_is_one_clear_error(project, capsys):
    domain = Path("eval/helpdesk/domain.py")
    text = domain.read_text()
    domain.write_text(text.replace("DOMAIN = Domain(", "HELPDESK = Domain("))
    assert main(["dataset", "build", "eval/helpdesk"]) != 0
    err = capsys.readouterr().err
    assert "domain.py: DOMAIN is nothing" in err and "Traceback" not in err
    domain.write_text(text.replace("PROBLEMS = [", "PROBLEMS = 1 / 0\nX = ["))
    assert main(["dataset", "build", "eval/helpdesk"]) != 0
    err = capsys.readouterr().err
    line = text.splitlines().index('PROBLEMS = ["my laptop does not start", '
                                   '"the VPN keeps disconnecting",') + 1
    assert f"domain.py:{line}: importing the domain failed: ZeroDivisionError" in err


def test_a_misspelt_routine_name_gets_suggestions(project, capsys):
    assert main(["run", "open_tiket", "q", "--base-url", "http://127.0.0.1:9/v1",
                 "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert "no routine file or routine named 'open_tiket' (did you mean open_ticket?)" in err


def test_init_in_a_folder_it_cannot_write_names_it(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["init", str(blocker / "project")]) == 1
    err = capsys.readouterr().err
    assert f"cannot write the project in {blocker / 'project'}" in err and "Errno" not in err


def test_a_tool_module_in_the_working_directory_is_found_without_a_project(tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.delenv("ROUTINE_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "desk_tools.py").write_text(
        "from routine import tool\n\n\n@tool\ndef ping(host: str) -> str:\n"
        "    \"\"\"Ping a host.\n\n    Args:\n        host: the host name.\n    \"\"\"\n"
        "    return host\n")
    try:
        assert main(["tools", "--tools", "desk_tools"]) == 0
        assert "ping(host: string) -> str" in capsys.readouterr().out
        assert main(["tools", "--tools", "desk_toolz"]) == 1
        err = capsys.readouterr().err
        assert "no module named 'desk_toolz'" in err and str(tmp_path) in err
    finally:
        sys.modules.pop("desk_tools", None)
        sys.path[:] = [p for p in sys.path if p != str(tmp_path.resolve())]
