"""Thirteenth hostile round (c): a car-rental desk's own project, set up by following
docs/guide.md from `routine init` — its folder named with a space, its tools, routines and
gold data — then validated, evaluated against a scripted OpenAI-compatible endpoint and
routed, as a newcomer types the commands: folder names a shell or UTF-8 cannot take, a
results folder that is a file or the dataset itself, options given empty or twice, gold
hand-edited with numbers as text and misspelt keys, a terminal that is not UTF-8. Real HTTP
endpoints that play the gold (tests/servers), no model."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from routine.cli.commands import main
from tests.servers.gold import gold_endpoint

from .test_init import init_project

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh `routine init` project with its gold data built, as the working directory."""
    for folder in init_project(tmp_path, monkeypatch):
        assert main(["dataset", "build", "eval/helpdesk"]) == 0
        yield folder


def _eval(url: str, *more: str, out: str = "results") -> int:
    return main(["eval", "eval/helpdesk", "--out", out, "--base-url", url, "--model", "gold",
                 "--steps", "0", "--tasks", "0", *more])


def test_init_says_the_next_command_as_a_shell_reads_it(tmp_path, monkeypatch, capsys):
    """`routine init "car rental"` said `next: cd car rental && routine validate ...`: pasted,
    the shell ran `cd car` (and `cd -desk` is an option, `cd it's` an open quote)."""
    monkeypatch.chdir(tmp_path)
    for folder, said in (("car rental", "cd 'car rental' && "), ("-desk", "cd ./-desk && "),
                         ("it's $HOME", "cd 'it'\"'\"'s $HOME' && ")):
        assert main(["init", "--", folder]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(f"next: {said}routine validate"), line
        assert shlex.split(line.removeprefix("next: "))[1] in (folder, f"./{folder}")


def test_command_txt_is_the_command_a_shell_runs_again(project, monkeypatch):
    """command.txt (README: "each run writes the command that produced it") joined the
    arguments with spaces: `--out results dir` is three words, not the folder it named."""
    with gold_endpoint(Path("eval/helpdesk")) as (url, _):
        argv = ["eval", "eval/helpdesk", "--out", "car results", "--base-url", url, "--model",
                "gold", "--conditions", "nl+track", "--api-key", "sk-secret"]
        monkeypatch.setattr(sys, "argv", ["routine", *argv])
        assert main(argv) == 0
    said = Path("car results/command.txt").read_text(encoding="utf-8")
    assert shlex.split(said) == ["routine", *argv[:-1], "***"], said


def test_an_evaluation_in_a_locale_that_is_not_utf8_writes_and_shows_its_report(project):
    """Under a C (ASCII) locale, or a Windows pipe's code page, every sample ran and then
    report.md ("[86–100]", "→") was written in the locale's encoding: UnicodeEncodeError
    ('not expected'), exit 1, the report half-written; printing the table failed the same
    way on standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTINE_", "OPENAI_"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0",
               PYTHONIOENCODING="", PYTHONPATH=str(ROOT))
    with gold_endpoint(Path("eval/helpdesk")) as (url, _):
        done = subprocess.run(
            [sys.executable, "-m", "routine.cli", "eval", "eval/helpdesk", "--out", "results",
             "--base-url", url, "--model", "gold", "--conditions", "nl+track"],
            env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    report = Path("results/report.md").read_text(encoding="utf-8")
    assert "100.0% [" in report and "–100]" in report
    assert b"\\u2013100]" in done.stdout  # shown, escaped, not a crash
    assert json.loads(Path("results/summary.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("out", "said"), [
    ("notes.txt", "notes.txt is a file"),
    ("eval/helpdesk", "eval/helpdesk is the dataset's folder"),
    ("eval/../eval/helpdesk/", "is the dataset's folder"),
])
def test_a_results_folder_that_is_a_file_or_the_dataset_is_refused_first(project, capsys,
                                                                         out, said):
    """`--out notes.txt` ended in "error: notes.txt: File exists" (after loading the domain);
    `--out eval/helpdesk` wrote steps.jsonl, report.md, run.json... among the gold files.
    routine route-eval did both too."""
    Path("notes.txt").write_text("mine\n", encoding="utf-8")
    gold = sorted(p.name for p in Path("eval/helpdesk").iterdir())
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url, out=out) == 2
        assert requests == []
    assert said in capsys.readouterr().err
    assert main(["route-eval", "eval/helpdesk", "--routers", "lexical", "--out", out]) == 2
    assert said in capsys.readouterr().err
    assert sorted(p.name for p in Path("eval/helpdesk").iterdir()) == gold
    assert Path("notes.txt").read_text(encoding="utf-8") == "mine\n"


def test_a_results_folder_whose_name_is_not_utf8_is_refused_before_the_run(project, capsys):
    """A folder name holding a Latin-1 byte (a lone surrogate in sys.argv) ran every sample,
    then died writing summary.json: 'PydanticSerializationError ... surrogates not allowed
    (not expected ...)', exit 1 and no report."""
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url, out="r\udce9sultats") == 2
        assert requests == []
    err = capsys.readouterr().err
    assert "--out" in err and "not UTF-8" in err and "not expected" not in err, err


def test_a_condition_named_twice_runs_once_and_an_empty_list_is_a_usage_error(project,
                                                                             capsys):
    """`--conditions nl+track,nl+track` ran and recorded every sample twice, and the report
    counted both (n doubled, its interval narrowed); `--conditions ""`, `--protocols ""`
    and `--routines ""` ran nothing and exited 0 with an empty report ("nothing to run
    (every sample is recorded)"); an unknown condition exited 1, an unknown protocol 2."""
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url, "--conditions", "nl+track,nl+track") == 0
        steps = Path("results/steps.jsonl").read_text(encoding="utf-8").splitlines()
        ids = [json.loads(line)["sample_id"] for line in steps]
        assert len(ids) == len(set(ids)) == 15
        summary = json.loads(Path("results/summary.json").read_text(encoding="utf-8"))
        assert list(summary["conditions"]) == ["nl+track"]
        made = len(requests)
        for option, value in (("--conditions", ""), ("--conditions", ","),
                              ("--protocols", ""), ("--routines", " "),
                              ("--conditions", "NL+track")):
            assert _eval(url, option, value, out="other") == 2, (option, value)
            err = capsys.readouterr().err
            assert option in err and ("no " in err or "unknown condition" in err), err
        assert len(requests) == made and not Path("other").exists()


def test_route_eval_of_a_folder_that_is_not_there_says_so(project, capsys):
    """`routine route-eval eval/helpdsk` said '/tmp/.../routines/helpdsk:1:1: error: not a
    folder of routines' (a path of the repository's own layout, never typed); a router
    named twice was measured twice (every row twice), and `--routers ""` wrote an empty
    table with exit 0."""
    assert main(["route-eval", "eval/helpdsk", "--routers", "lexical", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert "eval/helpdsk is not a folder" in err and "routines/helpdsk" not in err, err
    assert main(["route-eval", "eval/helpdesk", "--routers", "", "--out", "r"]) == 2
    assert "no router given" in capsys.readouterr().err
    assert not Path("r").exists()
    assert main(["route-eval", "eval/helpdesk", "--routers", "lexical,lexical",
                 "--out", "r"]) == 0
    rows = json.loads(Path("r/scores.json").read_text(encoding="utf-8"))
    assert [(r["router"], r["split"]) for r in rows] == [("lexical", "dev"), ("lexical", "test")]


def test_a_gold_argument_in_another_type_than_the_tools_is_a_dataset_error(project, capsys):
    """Gold converted from a spreadsheet gave `"user_id": "1"` for an integer: routine eval
    ran, and every model that sent the 1 the schema asks for was scored wrong ("argument
    'user_id': 1 is not one of ['1']"): the step accuracy measured the gold's mistake."""
    test = Path("eval/helpdesk/test.jsonl")
    lines = test.read_text(encoding="utf-8").splitlines()
    example = json.loads(lines[2])
    example["calls"][1]["arguments"]["user_id"] = str(example["calls"][1]["arguments"]["user_id"])
    lines[2] = json.dumps(example)
    test.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url, "--conditions", "nl+track") == 1
        assert requests == []
    err = capsys.readouterr().err
    assert f"{example['id']}: gold call 2 (open_ticket) gives user_id '" in err, err
    assert "(text) for an integer" in err and "not expected" not in err


@pytest.mark.parametrize(("edit", "said"), [
    (lambda e: e.update(users={"confirms": False}), "unknown key 'users'"),
    (lambda e: e["calls"][0].update(step="find_user"), "unknown key 'calls.0.step'"),
    (lambda e: e.update(user={"confirm": False}), "unknown key 'user.confirm'"),
])
def test_a_gold_line_with_a_misspelt_key_is_refused_at_its_line(project, capsys, edit, said):
    """A hand-edited gold line's unknown key was dropped without a word: `"users"` for
    `"user"` made a conversation an ordinary task, `"confirm": false` a user who says yes."""
    test = Path("eval/helpdesk/test.jsonl")
    lines = test.read_text(encoding="utf-8").splitlines()
    example = json.loads(lines[3])
    edit(example)
    lines[3] = json.dumps(example)
    test.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url, "--conditions", "nl+track") == 1
        assert requests == []
    err = capsys.readouterr().err
    assert f"test.jsonl:4: not a gold example ({said})" in err, err


def test_a_project_file_with_a_bom_or_a_missing_routines_folder_is_said(tmp_path, monkeypatch,
                                                                        capsys):
    """A routine.toml saved with a byte-order mark (a Windows editor) failed as "TOML:
    Invalid statement"; `routines = ["nope"]` made validate read the folder as a routine
    file ("nope:1:1: cannot read the file ... 1 routine file checked")."""
    from routine.cli.commands import main as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTINE_PROJECT", raising=False)
    (tmp_path / "routine.toml").write_bytes('\ufeffroutines = ["nope"]\n'.encode("utf-8"))
    assert cli(["validate"]) == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert "TOML" not in err and "cannot read the file" not in err
    assert "routines names" in err and "nope" in err and "not a folder" in err


def test_route_eval_rows_without_an_id_or_query_are_said_at_their_line(tmp_path):
    """A gold row of a routing dataset without "id" or "query" (or a line that is a JSON
    list) raised a KeyError/AttributeError out of `routine route-eval`."""
    from routine.errors import SpecError
    from routine.routing.measure import load_cases

    (tmp_path / "test.jsonl").write_text(
        '{"id": "a", "kind": "routine", "routine": "r", "query": "hi"}\n'
        '{"kind": "routine", "routine": "r", "query": "no id"}\n')
    with pytest.raises(SpecError, match=r"test.jsonl:2:1: error: a request needs a string"):
        load_cases(tmp_path, "test")
    (tmp_path / "test.jsonl").write_text('["a", "list"]\n')
    with pytest.raises(SpecError, match=r"test.jsonl:1:1: error: a JSON list, not an object"):
        load_cases(tmp_path, "test")
