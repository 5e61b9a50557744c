"""Tenth hostile round: an insurer's routing library and a clinic's drafts (what broke)."""

from __future__ import annotations

import importlib.util

import pytest

from routine.drafting.reply import routine_data
from routine.models.base import ModelReply
from routine.models.parsing import CallParseError
from routine.models.testing import ScriptedModel
from routine.routing import Library, LLMRouter
from routine.routing.library import retrieval_text

from .conftest import ROUTINES
from .test_cli import ScriptedServer, scripted_server  # noqa: F401  (the endpoint fixture)
from .test_routing import FixedScores

HAVE_BM25 = importlib.util.find_spec("bm25s") is not None


def test_a_number_in_the_years_range_is_a_year_only_where_the_request_says_so():
    # "claim 2050" went to `none` and "claim 1850" to claim_status: 2050 read as "year"
    assert retrieval_text("Where does claim 2050 stand?") == \
        retrieval_text("Where does claim 1850 stand?")
    assert "year" not in retrieval_text("the repair is about 2000 EUR")
    assert "year" not in retrieval_text("Call me on +49 170 2025 331")
    assert retrieval_text("my payslips for 2026") == "my payslips for year"
    assert retrieval_text("leave taken in 2025") == "leave taken in year"
    assert retrieval_text("from 2026-07-06 to 2026-07-07") == "from date to date"


@pytest.mark.parametrize("arguments", [{"routine": "leave_history"}, None])
def test_the_llm_router_reads_a_tool_call_whose_arguments_are_an_object(arguments):
    library = Library.from_folders(ROUTINES / "hr")
    retriever = FixedScores(library, {"q": {"leave_balance": 0.9, "leave_history": 0.8}})
    reply = ModelReply(tool_calls=[{"id": "c", "type": "function", "function": {
        "name": "route", "arguments": arguments}}])
    decision = LLMRouter(retriever, ScriptedModel([reply]), k=2).route("q")
    if arguments is None:  # it names nothing: the retriever decides, and the decision says so
        assert "named no routine" in decision.reason
    else:  # a TypeError ended `routine route` before
        assert decision.kind == "routine" and decision.routine == "leave_history"


@pytest.mark.timeout(60)  # it ran past 10 minutes and 3.9 GB before
def test_a_reply_with_yaml_aliases_is_refused_before_it_is_expanded():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = "\n".join(["name: bomb", *levels, "steps: *a9"])  # ~9^10 strings once expanded
    with pytest.raises(CallParseError, match="aliases"):
        routine_data(bomb)
    assert routine_data("name: plain\nsteps: []")["name"] == "plain"  # no alias: read


def test_two_drafts_of_one_name_are_refused_before_any_model_starts(tmp_path, capsys):
    from routine.cli.commands import main

    drafts = tmp_path / "drafts"
    drafts.mkdir()
    (drafts / "Refill.md").write_text("Look up the employee, then their leave balance.\n")
    (drafts / "refill.md").write_text("Find the employee and say who their manager is.\n")
    code = main(["draft", str(drafts), "--toolset", "routine_tools.hr", "--out",
                 str(tmp_path / "out"), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    said = " ".join(capsys.readouterr().err.split())
    assert code == 2, said
    assert "Refill.md, refill.md -> refill" in said
    assert not (tmp_path / "out" / "refill.yaml").exists()  # the first one wrote it, silently


@pytest.mark.skipif(not HAVE_BM25, reason="needs bm25s (the dev or routing extra)")
def test_run_library_passes_the_inputs_to_the_chosen_routine(scripted_server, capsys):  # noqa: F811
    from routine.cli.commands import main

    ScriptedServer.script = [
        {"content": '<tool_call>\n{"name": "find_employee", "arguments": '
                    '{"name": "Kofi Dubois"}}\n</tool_call>'},
        {"content": '<tool_call>\n{"name": "get_employee", "arguments": '
                    '{"employee_id": 5}}\n</tool_call>'},
        {"content": None, "tool_calls": [{"id": "f", "type": "function", "function": {
            "name": "finish", "arguments": '{"answer": "Kofi reports to the head."}'}}]},
    ]
    base = ["run", "--library", str(ROUTINES / "hr"), "--router", "lexical", "--none-below",
            "0", "--base-url", scripted_server, "--model", "test-model",
            "Who is the manager of Kofi Dubois?"]
    assert main([*base, "-i", "nonsense"]) == 2  # accepted, and dropped, before
    assert main([*base, "-i", "no_such_input=1"]) == 2  # a name the chosen routine lacks
    capsys.readouterr()
    assert ScriptedServer.requests == []  # neither started a model
    assert main([*base, "-i", "employee_name=Kofi Dubois"]) == 0
    sent = "".join(m.get("content") or "" for m in ScriptedServer.requests[0]["messages"])
    assert "Kofi Dubois" in sent and "employee_name" in sent


def test_a_drafted_hand_off_names_a_routine_of_the_project():
    from routine.drafting import check_draft
    from routine.spec.project import Project

    from .conftest import ROOT

    text = ("name: pass_on\ndescription: Hand the customer over to another process.\n"
            "toolsets: [routine_tools.retail]\n"
            "inputs:\n  order_id: {type: string, description: the order}\n"
            "steps:\n  - id: over\n    name: Pass on\n    description: Hand over.\n"
            "    handoff: TARGET\n    args: {order_id: \"${inputs.order_id}\"}\n")
    project = Project.discover(ROOT / "routine.toml")
    file = str(ROOT / "routines" / "retail" / "pass_on.yaml")  # where it would be saved
    found = check_draft(text.replace("TARGET", "no_such_routine"), file, project)
    # "✓ valid" before, and `routine validate` refused the saved file
    assert [p.message for p in found] == ["'handoff' names no known routine: 'no_such_routine'"]
    assert "cancel_order" in found[0].expected
    assert not [p for p in check_draft(text.replace("TARGET", "cancel_order"), file, project)
                if "no known routine" in p.message]


def test_a_rerun_that_skips_a_recorded_invalid_draft_still_fails(scripted_server, tmp_path,  # noqa: F811
                                                                  capsys):
    from routine.cli.commands import main

    from .test_drafting import BAD, _args

    ScriptedServer.script = [{"content": BAD}] * 2
    record = tmp_path / "drafts.jsonl"
    args = _args(tmp_path, "--base-url", scripted_server, "--rounds", "1", "-o",
                 str(tmp_path / "track_order.yaml"), "--record", str(record))
    assert main(args) == 1
    capsys.readouterr()
    assert main(args) == 1  # 0 before: a script read the skipped failure as success
    said = capsys.readouterr().err
    assert "did not validate (in the record): track_order" in said
    assert len(ScriptedServer.requests) == 2  # the rerun asked no model


def test_a_library_reads_linked_subfolders_and_each_file_once(tmp_path):
    import shutil

    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(ROUTINES / "hr" / "manager_lookup.yaml", shared)
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(ROUTINES / "hr" / "leave_balance.yaml", library)
    (library / "linked").symlink_to(shared, target_is_directory=True)
    (shared / "back").symlink_to(library, target_is_directory=True)  # a loop: harmless
    # the linked folder's routine was silently left out (routed to none)
    assert Library.from_folders(library).names == ["leave_balance", "manager_lookup"]
    # a folder given twice made every routine a duplicate of itself
    assert Library.from_folders(library, library, shared).names == [
        "leave_balance", "manager_lookup"]


def test_example_errors_name_their_file_and_line(tmp_path):
    from routine.errors import RoutineError, SpecError
    from routine.routing import load_examples

    library = Library.from_folders(ROUTINES / "hr")
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"query": "How many days left?", "routine": "leave_balance"}\n'
                        '{"query": "Send a tow truck", "routine": "roadside_help"}\n')
    with pytest.raises(SpecError) as caught:  # was "<examples>:1:1"
        library.with_examples(load_examples(examples))
    problem, = caught.value.problems
    assert (problem.file, problem.line) == (str(examples), 2)
    assert "roadside_help" in problem.message
    examples.write_bytes(b'{"query": "ok", "routine": "leave_balance"}\n{"query": "\xff"}\n')
    with pytest.raises(SpecError) as caught:  # was a UnicodeDecodeError, "not expected"
        load_examples(examples)
    assert caught.value.problems[0].line == 2 and "not UTF-8" in caught.value.problems[0].message
    with pytest.raises(RoutineError, match="list of requests"):  # 17 one-letter examples
        library.with_examples({"leave_balance": "how many days do I have left"})
