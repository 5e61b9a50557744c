"""Hostile CLI, fourth round: MCP toolsets resolved inside a running event loop, route-eval
on a project's own layout, report-only against other records, save-invalid line numbers,
running a routine by name, duplicate names, non-ASCII names, repeated words, routines left
out of an evaluation, empty requests and hand-offs across clashing toolsets."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import click
import pytest

from routine.cli.commands import main, routine_path
from routine.drafting.draft import adraft
from routine.errors import EvalConfigError
from routine.eval.config import EvalConfig
from routine.eval.dataset import Domain, load_dataset
from routine.eval.runner import run_evaluation
from routine.models.testing import ScriptedModel
from routine.routing.library import Example, Library, retrieval_text
from routine.spec.project import Project

from .test_cli import ScriptedServer, scripted_server  # noqa: F401  (the endpoint fixture)
from .test_drafting import BAD
from .test_drafting import _args as _draft_args
from .test_evaluation import HR, gold_model

DATA = Path(__file__).resolve().parent / "data" / "tools_hostile3"


def _ledger_project(root: Path) -> Project:
    """A project whose toolset ``ledger`` is a stdio MCP server."""
    shutil.copy(DATA / "ledger_mcp.py", root / "ledger_mcp.py")
    (root / "routine.toml").write_text(
        f'[toolsets]\nledger = {{ mcp = {{ command = {str(sys.executable)!r}, '
        'args = ["ledger_mcp.py"] } }\n')
    return Project.load(root / "routine.toml")


# ---------------------------------------------------------------- 1: MCP inside a loop
def test_an_mcp_toolset_resolves_inside_a_running_event_loop(tmp_path: Path):
    """routine draft (adraft) and routine dataset build (Domain.registry inside _build)
    resolve a project's toolsets while an event loop runs: the blocking listing must not
    re-enter that loop ("Already running asyncio in this thread")."""
    project = _ledger_project(tmp_path)
    model = ScriptedModel(["no routine here"])

    async def both() -> tuple[object, object]:
        result = await adraft("Get the account.", ["ledger"], model, name="acct", rounds=0,
                              project=project)
        domain = Domain(name="d", toolsets=["ledger"], routines_dir="routines", templates=[],
                        root=tmp_path, project=project)
        return result, domain.registry()

    result, registry = asyncio.run(both())
    assert "get_account" in model.requests[0].messages[-1].content
    assert not result.ok
    assert "get_account" in registry.names()


def test_an_error_inside_an_mcp_session_comes_out_as_itself(tmp_path: Path):
    """The SDK's task groups wrap what the caller raised in a session (a dataset's own
    DatasetError became "ExceptionGroup: unhandled errors in a TaskGroup")."""
    [toolset] = _ledger_project(tmp_path).resolve("ledger")

    async def fail() -> None:
        assert toolset.setup is not None
        async with toolset.setup():
            raise ValueError("the caller's own error")

    with pytest.raises(ValueError, match="the caller's own error"):
        asyncio.run(fail())


# ---------------------------------------------------------------- 2: route-eval, any layout
@pytest.mark.skipif(importlib.util.find_spec("bm25s") is None, reason="needs bm25s")
def test_route_eval_finds_the_routines_of_an_init_project(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    """The domain's routines_dir, relative to the project, as routine eval reads it (it
    looked for <dataset>/../../../routines/<dataset name>, the repository's own layout)."""
    assert main(["init", str(tmp_path)]) == 0
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "eval" / "helpdesk"
    for split, query in [("train", "my laptop does not start"), ("dev", "the printer jams"),
                         ("test", "open a ticket: my screen flickers")]:
        row = {"id": f"{split}-1", "split": split, "kind": "routine", "routine": "open_ticket",
               "query": query}
        (data / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    assert main(["route-eval", "eval/helpdesk", "--routers", "lexical", "--out", "r"]) == 0
    scores = json.loads((tmp_path / "r" / "scores.json").read_text())
    assert [(s["split"], s["in_scope"], s["top1"]) for s in scores] == [("dev", 1, 1.0),
                                                                        ("test", 1, 1.0)]


# ---------------------------------------------------------------- 3: report-only checks gold
def _hr_config(tmp_path: Path, **kw: object) -> EvalConfig:
    base = dict(dataset=HR, out=tmp_path / "run", split="test", conditions=["nl+track"],
                protocols=["step"], step_limit=3, task_limit=0, seed=1, model="gold")
    return EvalConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_report_only_refuses_records_of_other_gold_and_never_empties_a_report(tmp_path: Path):
    asyncio.run(run_evaluation(_hr_config(tmp_path), gold_model()))
    report = tmp_path / "run" / "report.md"
    before = report.read_text()
    # another split's gold (another dataset reads the same): refused, as a resume is
    with pytest.raises(EvalConfigError, match="records made otherwise.*gold.*a report would"):
        asyncio.run(run_evaluation(_hr_config(tmp_path, split="dev", model="none",
                                              report_only=True), gold_model()))
    # the same gold, but nothing of these conditions recorded: no empty report over it
    with pytest.raises(EvalConfigError, match="nothing to report"):
        asyncio.run(run_evaluation(_hr_config(tmp_path, conditions=["nl"], model="none",
                                              report_only=True), gold_model()))
    assert report.read_text() == before
    # the records' own settings: reported, under the recorded model's name
    summary = asyncio.run(run_evaluation(_hr_config(tmp_path, model="none", report_only=True),
                                         gold_model()))
    assert summary.config["model"] == "gold"


# ---------------------------------------------------------------- 4: save-invalid lines
def test_save_invalid_names_the_lines_of_the_saved_file(scripted_server, tmp_path: Path,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]):
    """The INVALID header above the YAML pushed every line down: the problems it lists (and
    the ones printed about that file) named lines 1 + (number of problems) too low."""
    ScriptedServer.script = [{"content": BAD}]
    out = tmp_path / "track_order.yaml"
    assert main(_draft_args(tmp_path, "--base-url", scripted_server, "-o", str(out),
                            "--rounds", "0", "--save-invalid")) == 1
    printed = {line.strip() for line in capsys.readouterr().err.splitlines()
               if line.strip().startswith(f"{out}:")}
    header = {line.removeprefix("#").strip() for line in out.read_text().splitlines()
              if line.startswith(f"#   {out}:")}
    assert main(["--project", _draft_args(tmp_path)[1], "validate", str(out)]) == 1
    validated = {line.strip() for line in capsys.readouterr().out.splitlines()
                 if line.startswith(f"{out}:") and ": error:" in line}
    assert printed and header == printed == validated


# ---------------------------------------------------------------- 5, 6: routines by name
def test_run_finds_a_routine_by_name_in_subfolders_and_under_another_file_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert main(["init", str(tmp_path)]) == 0
    monkeypatch.chdir(tmp_path)
    routines = tmp_path / "routines"
    (routines / "tickets").mkdir()
    (routines / "open_ticket.yaml").rename(routines / "tickets" / "open_ticket.yaml")
    # in a subfolder (validate checks it, and the hint named it, yet run did not find it)
    assert routine_path(Path("open_ticket")).resolve() == \
        (routines / "tickets" / "open_ticket.yaml").resolve()
    # a file named otherwise: found by its routine's name, and by its own name
    (routines / "tickets" / "open_ticket.yaml").rename(routines / "ticket.yaml")
    assert routine_path(Path("open_ticket")).resolve() == (routines / "ticket.yaml").resolve()
    assert routine_path(Path("ticket")).resolve() == (routines / "ticket.yaml").resolve()
    with pytest.raises(click.BadParameter, match="did you mean open_ticket"):
        routine_path(Path("open_tickt"))
    # two routines of one name: neither is chosen, and the hint does not offer that name
    shutil.copy(routines / "ticket.yaml", routines / "ticket_copy.yaml")
    with pytest.raises(click.BadParameter, match="more than one routine file"):
        routine_path(Path("open_ticket"))
    with pytest.raises(click.BadParameter) as refused:
        routine_path(Path("nothing_like_it"))
    assert "ticket, ticket_copy)" in str(refused.value)


def test_validate_refuses_two_routines_of_one_name(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]):
    assert main(["init", str(tmp_path)]) == 0
    monkeypatch.chdir(tmp_path)
    routines = tmp_path / "routines"
    shutil.copy(routines / "open_ticket.yaml", routines / "ticket_copy.yaml")
    assert main(["validate"]) == 1
    captured = capsys.readouterr()
    line = next(n for n, text in enumerate((routines / "open_ticket.yaml").read_text()
                                           .splitlines(), 1) if text.startswith("name:"))
    problems = [p for p in captured.out.splitlines() if "routine name 'open_ticket'" in p]
    assert len(problems) == 2
    assert any(p.startswith(f"{routines / 'open_ticket.yaml'}:{line}:1: error: ") and
               "ticket_copy.yaml" in p and "(expected unique routine names" in p
               for p in problems)
    assert "2 routine files checked: 2 problems" in captured.err


# ---------------------------------------------------------------- 7: names in any script
@pytest.mark.parametrize("name", ["Ana Lima", "Jörg Weiß", "Łukasz Żak", "Åsa Öberg",
                                  "Chloé Dubois", "Émile Zola", "Jean-Luc Picard"])
def test_names_are_dropped_in_any_script(name: str):
    kept = retrieval_text(f"please cancel the order raised for {name} yesterday")
    assert kept == "please cancel the order raised for yesterday"


def test_capitals_that_are_not_names_stay():
    assert retrieval_text("ask IT to reset my laptop") == "ask IT to reset my laptop"
    assert retrieval_text("Ich möchte Überstunden und Urlaub eintragen",
                          terms=frozenset({"überstunden", "urlaub"})) == \
        "Ich möchte Überstunden und Urlaub eintragen"


# ---------------------------------------------------------------- 8: repeated words
@pytest.mark.skipif(importlib.util.find_spec("bm25s") is None, reason="needs bm25s")
def test_a_repeated_word_counts_once_in_the_lexical_router():
    from routine.routing import make_router
    from routine.spec.loader import load_routine_text

    def routine(name: str, description: str) -> object:
        return load_routine_text(f"name: {name}\ndescription: {description}\nsteps:\n"
                                 "  - {id: a, name: Answer, description: d, finish: true}\n",
                                 f"{name}.yaml").routine

    library = Library.of([routine("check_budget", "Check the budget left on a cost centre."),
                          routine("create_requisition", "Raise a purchase requisition.")]
                         ).with_examples([Example("Please raise a requisition",
                                                  "create_requisition")])
    router = make_router("lexical", library, examples=True)
    plain = router.route("please check the budget of cost centre CC-100")
    padded = router.route("please " * 40 + "check the budget of cost centre CC-100")
    assert plain.best == padded.best == "check_budget"
    assert [round(c.score, 6) for c in padded.candidates] == \
        [round(c.score, 6) for c in plain.candidates]


# ---------------------------------------------------------------- 9: routines-from gaps
def test_routines_from_says_which_routines_it_lacks_and_what_that_left_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from .conftest import ROUTINES

    test = [e for e in load_dataset(HR, ("test",)) if e.kind == "routine" and e.user is None]
    lacking = test[0].routine
    drafted = tmp_path / "drafted"
    drafted.mkdir()
    for path in (ROUTINES / "hr").glob("*.yaml"):
        if path.stem != lacking:
            shutil.copy(path, drafted / path.name)
    summary = asyncio.run(run_evaluation(_hr_config(tmp_path, routines_from=drafted),
                                         gold_model()))
    left = summary.config["left_out"]
    assert left["routines"] == [lacking] and left["step samples"] > 0
    said = f"{drafted} has no routine {lacking}: left out {left['step samples']} step sample(s)"
    assert said in caplog.text
    assert f"**Left out**: {said}" in (tmp_path / "run" / "report.md").read_text()


# ---------------------------------------------------------------- 10: an empty request
@pytest.mark.parametrize("request_", ["", "   "])
def test_an_empty_request_is_a_usage_error_for_route_and_run(request_: str,
                                                             capsys: pytest.CaptureFixture[str]):
    from .conftest import ROUTINES

    library = str(ROUTINES / "retail")
    assert main(["route", "--library", library, "--router", "lexical", request_]) == 2
    assert "the request is empty" in capsys.readouterr().err
    assert main(["run", "--library", library, "--router", "lexical", request_,
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert "the request is empty" in capsys.readouterr().err


# ---------------------------------------------------------------- 11: hand-off targets
def _tools_module(name: str) -> str:
    return (f"from routine import Toolset\n\n{name} = Toolset({name!r})\n\n\n"
            f"@{name}.tool\ndef pay(claim_id: int) -> str:\n"
            f"    \"\"\"Pay a claim.\n\n    Args:\n        claim_id: the claim.\n    \"\"\"\n"
            f"    return 'paid'\n")


def _routine_text(name: str, toolset: str, last: str) -> str:
    return (f"name: {name}\ndescription: {name}.\ntoolsets: [{toolset}]\n"
            "inputs:\n  claim_id: {type: integer, description: the claim}\nsteps:\n"
            "  - {id: pay, name: Pay, description: Pay it., tool: pay, "
            "args: {claim_id: '${inputs.claim_id}'}}\n" + last)


def test_a_handoff_target_is_found_whatever_tools_other_routines_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """validate shared one registry among every routine of the folders: a routine whose
    toolset has a tool named like another toolset's was skipped, so a hand-off to it read
    'names no known routine'."""
    (tmp_path / "routine.toml").write_text('routines = ["routines"]\n[toolsets]\n'
                                           'one = "tools_one"\ntwo = "tools_two"\n')
    (tmp_path / "tools_one.py").write_text(_tools_module("one"))
    (tmp_path / "tools_two.py").write_text(_tools_module("two"))
    routines = tmp_path / "routines"
    routines.mkdir()
    finish = "  - {id: done, name: Done, description: Say so., finish: true}\n"
    (routines / "a_other.yaml").write_text(_routine_text("other", "two", finish))
    (routines / "b_target.yaml").write_text(_routine_text("target", "one", finish))
    (routines / "c_source.yaml").write_text(_routine_text(
        "source", "one", "  - {id: hand, name: Hand over, description: To the target., "
        "handoff: target}\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "routines/c_source.yaml"]) == 0, capsys.readouterr().out
