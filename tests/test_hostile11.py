"""Eleventh hostile round: what the tenth round's helpers found and left (drafting a
clinic's processes, routing an insurer's requests) — each problem found before a model runs,
or said in words, not after the model's minutes or in a traceback."""

from __future__ import annotations

import json
import math
import os

import pytest
from pydantic import ValidationError

from routine.cli.commands import main
from routine.drafting import check_draft, draft
from routine.errors import RoutineError, SpecError
from routine.models.testing import ScriptedModel
from routine.routing import Library, LLMRouter, Thresholds, make_router
from routine.routing.embedding import have_embeddings
from routine.routing.reply import capabilities, clarifying_question
from routine.spec import load_routine_text
from routine.spec.project import Project

from .conftest import ROOT, ROUTINES
from .test_cli import ScriptedServer, scripted_server  # noqa: F401  (the endpoint fixture)
from .test_drafting import BAD, BAD_TOOL, DRAFT, GOOD, PROJECT, RETAIL
from .test_routing import FixedScores


def _draft_cli(tmp_path, server: str, *more: str, file: str = "track_order.md") -> list[str]:
    draft_file = tmp_path / file
    draft_file.write_text(DRAFT)
    return ["--project", str(ROOT / "routine.toml"), "draft", str(draft_file),
            "--toolset", "routine_tools.retail", "--model", "m", "--base-url", server, *more]


# ---------------------------------------------------------------- found before the model runs
@pytest.mark.parametrize("case", ["missing file", "folder without it", "file that fails"])
def test_a_wrong_diff_is_refused_before_the_model_drafts(scripted_server, tmp_path, capsys,  # noqa: F811
                                                         case):
    ScriptedServer.script = []  # a request would fail the server: none may come
    if case == "missing file":
        diff = tmp_path / "nothere.yaml"
    elif case == "folder without it":
        diff = tmp_path / "other"
        diff.mkdir()
        (diff / "x.yaml").write_text((ROUTINES / "hr" / "leave_balance.yaml").read_text())
    else:
        diff = tmp_path / "broken.yaml"
        diff.write_text("name: broken\nsteps: [\n")
    code = main(_draft_cli(tmp_path, scripted_server, "-o", str(tmp_path / "t.yaml"),
                           "--diff", str(diff)))
    err = capsys.readouterr().err
    assert code == 2 and ScriptedServer.requests == [], err
    assert "--diff" in err and not (tmp_path / "t.yaml").exists()


def test_a_record_that_cannot_be_written_is_refused_before_the_model_drafts(
        scripted_server, tmp_path, capsys):  # noqa: F811
    ScriptedServer.script = []
    record = tmp_path / "records"
    record.mkdir()  # a folder where the .jsonl file should be
    code = main(_draft_cli(tmp_path, scripted_server, "--record", str(record)))
    err = capsys.readouterr().err
    assert code == 2 and ScriptedServer.requests == []
    assert "--record" in err and "is a folder" in err


def _broken_project(tmp_path):
    (tmp_path / "clinic_tools.py").write_text("raise RuntimeError('the clinic database is "
                                              "not configured')\n")
    (tmp_path / "routine.toml").write_text('[toolsets]\n"clinic" = "clinic_tools"\n')
    return tmp_path / "routine.toml"


def test_a_toolset_that_fails_to_load_is_one_clear_error_before_the_model(
        scripted_server, tmp_path, capsys):  # noqa: F811
    toml = _broken_project(tmp_path)
    ScriptedServer.script = []
    (tmp_path / "refill.md").write_text("Find the patient, then renew the prescription.")
    code = main(["--project", str(toml), "draft", str(tmp_path / "refill.md"), "--toolset",
                 "clinic", "--model", "m", "--base-url", scripted_server])
    err = capsys.readouterr().err
    assert code == 2 and ScriptedServer.requests == [], err
    assert "cannot load toolset 'clinic'" in err and "not configured" in err
    # the Python API: a RoutineError, not the module's own exception
    with pytest.raises(RoutineError, match="cannot load toolset 'clinic'.*not configured"):
        draft("Find the patient.", ["clinic"], ScriptedModel([]), name="refill",
              project=Project.discover(toml))


def test_a_drafted_name_another_routine_beside_it_has_is_refused(scripted_server, tmp_path,  # noqa: F811
                                                                 capsys):
    ScriptedServer.script = []
    out = tmp_path / "routines"
    out.mkdir()
    # the clinic's hand-written routine, under another file name, has the draft's name
    (out / "orders.yaml").write_text((ROUTINES / "retail" / "track_order.yaml").read_text())
    code = main(_draft_cli(tmp_path, scripted_server, "-o", str(out)))
    err = capsys.readouterr().err
    assert code == 2 and ScriptedServer.requests == [], err
    assert "'track_order' is already the name of" in err and "orders.yaml" in err
    assert not (out / "track_order.yaml").exists()


# ---------------------------------------------------------------- the draft's file name
@pytest.mark.parametrize("file", ["track\x07order.md", os.fsdecode(b"track_order_caf\xe9.md"),
                                  "track\u2028order.md"])
def test_a_draft_file_name_with_odd_characters_still_gives_a_routine_that_loads(
        scripted_server, tmp_path, capsys, file):  # noqa: F811
    # a bell in the name made every round's YAML unreadable (all rounds wasted); a Latin-1
    # name (undecodable bytes) crashed the write with UnicodeEncodeError
    ScriptedServer.script = [{"content": GOOD.replace("track_order", "x")}]
    out = tmp_path / "out"
    try:
        (tmp_path / file).write_text(DRAFT)
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system does not take the name")
    code = main(_draft_cli(tmp_path, scripted_server, "-o", str(out), file=file))
    err = capsys.readouterr().err
    assert code == 0, err
    (written,) = out.iterdir()
    text = written.read_text(encoding="utf-8")
    assert "drafted by `routine draft` from track" in text.splitlines()[0]
    assert main(["--project", str(ROOT / "routine.toml"), "validate", str(written)]) == 0


# ---------------------------------------------------------------- the Python API
@pytest.mark.parametrize("options, message", [
    ({"name": "Refill Process"}, "not a routine name"),
    ({"name": "refill", "rounds": -1}, "repair rounds"),
    ({"name": "refill", "rounds": 1.5}, "repair rounds"),
])
def test_the_python_api_checks_what_the_cli_checks(options, message):
    model = ScriptedModel([])
    with pytest.raises(RoutineError, match=message):
        draft(DRAFT, RETAIL, model, project=PROJECT, **options)
    with pytest.raises(RoutineError, match="the draft is empty"):
        draft("  \n", RETAIL, model, name="refill", project=PROJECT)
    assert model.requests == []


def test_validate_warnings_are_kept_and_shown(scripted_server, tmp_path, capsys):  # noqa: F811
    blank = json.loads(GOOD)
    blank["description"] = " "  # (a free reply; the guided schema wants one letter)
    result = draft(DRAFT, RETAIL, ScriptedModel([json.dumps(blank)]), name="track_order",
                   rounds=0, guided=False, project=PROJECT)
    assert result.ok and [w.message for w in result.warnings] == \
        ["the routine's description is empty"]
    assert result.to_record()["attempts"][0]["warnings"][0]["severity"] == "warning"
    ScriptedServer.script = [{"content": json.dumps(blank)}]
    assert main(_draft_cli(tmp_path, scripted_server, "-o", str(tmp_path / "t.yaml"))) == 0
    assert "warning: the routine's description is empty" in capsys.readouterr().err


def _count_resolves(monkeypatch) -> list[str]:
    """The toolset names Project.resolve is called with (a module imported, a server
    launched), in order."""
    calls: list[str] = []
    resolve = Project.resolve

    def counted(self, name):
        calls.append(name)
        return resolve(self, name)

    monkeypatch.setattr(Project, "resolve", counted)
    return calls


def test_the_toolsets_are_loaded_once_per_draft_not_once_per_round(monkeypatch):
    # an MCP toolset was launched again at every repair round
    calls = _count_resolves(monkeypatch)
    result = draft(DRAFT, RETAIL, ScriptedModel([BAD, BAD_TOOL, GOOD]), name="track_order",
                   rounds=2, project=PROJECT)
    assert result.ok and result.repairs == 2
    assert calls == ["routine_tools.retail"]


def test_a_free_reply_that_shows_an_example_block_first_is_read_at_the_routine():
    reply = ("The order looks like this:\n```json\n{\"order_id\": 40134}\n```\n"
             f"Here is the routine:\n```json\n{GOOD}\n```\n")
    result = draft(DRAFT, RETAIL, ScriptedModel([reply]), name="track_order", rounds=0,
                   guided=False, project=PROJECT)
    assert result.ok, result.problems
    # a reply of one block is read as before
    assert draft(DRAFT, RETAIL, ScriptedModel([f"```\n{GOOD}\n```"]), name="track_order",
                 rounds=0, guided=False, project=PROJECT).ok


def test_check_draft_checks_against_the_tools_it_is_given():
    # (the loaded tools are used, not loaded again: a registry without track_shipment
    # makes the step that calls it an unknown tool)
    from routine.drafting.reply import routine_yaml
    from routine.tools.core import ToolRegistry

    tools, without = ToolRegistry(), ToolRegistry()
    for item in PROJECT.resolve("routine_tools.retail"):
        tools.add(item)
    for tool in tools:
        if tool.name != "track_shipment":
            without.add(tool)
    text = routine_yaml(GOOD, "track_order", RETAIL)
    assert check_draft(text, project=PROJECT, registry=tools) == []
    assert any("unknown tool 'track_shipment'" in p.message
               for p in check_draft(text, project=PROJECT, registry=without))


# ---------------------------------------------------------------- routing
@pytest.mark.parametrize("field", ["none_below", "margin"])
def test_a_nan_threshold_is_refused(field):
    # NaN compares false with every score: the router never said none, silently
    values = {"none_below": 0.3, "margin": 0.0} | {field: math.nan}
    with pytest.raises(ValidationError, match=field):
        Thresholds(**values)
    assert Thresholds(none_below=-math.inf).none_below == -math.inf  # "never none" stays


@pytest.mark.parametrize("k", [0, -2, True])
def test_the_llm_router_refuses_a_k_below_one(k):
    library = Library.from_folders(ROUTINES / "hr")
    retriever = FixedScores(library, {"q": {"leave_balance": 0.9}})
    with pytest.raises(RoutineError, match="k a whole number ≥ 1"):
        LLMRouter(retriever, ScriptedModel([]), k=k)


def test_route_eval_refuses_k_zero_before_a_model_starts(tmp_path, capsys):
    code = main(["route-eval", str(ROOT / "eval" / "datasets" / "hr"), "--routers", "llm",
                 "--k", "0", "--out", str(tmp_path / "r")])
    assert code == 2 and "--k" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_routine_named_none_is_refused_by_the_library(tmp_path):
    text = (ROUTINES / "hr" / "leave_balance.yaml").read_text()
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "none.yaml").write_text(text.replace("name: leave_balance", "name: none"))
    (folder / "leave_balance.yaml").write_text(text)
    with pytest.raises(SpecError, match="'none' is what a router answers"):
        Library.from_folders(folder)


def _library(*routines: tuple[str, str]) -> Library:
    base = (ROUTINES / "hr" / "leave_balance.yaml").read_text()
    loaded = []
    for name, description in routines:
        data = load_routine_text(base).routine.model_copy(update={"name": name,
                                                                    "description": description})
        loaded.append(data)
    return Library.of(loaded)


def test_the_clarifying_question_keeps_acronyms_and_tells_alike_routines_apart():
    library = _library(("hr_policy", "HR policies: answer a question about them."),
                       ("it_ticket", "Open an IT ticket for a broken laptop."))
    question = clarifying_question(library, "hr_policy", "it_ticket")
    assert "to HR policies" in question and "or to open an IT ticket" in question
    twins = _library(("claim_status", "Look up a claim."), ("claim_history", "Look up a claim."))
    asked = clarifying_question(twins, "claim_status", "claim_history")
    assert "claim status" in asked and "claim history" in asked, asked
    assert "iPhone" in clarifying_question(
        _library(("a", "iPhone repairs: book one."), ("b", "Cancel an order.")), "a", "b")


def test_capabilities_list_each_thing_once_and_name_a_routine_without_description():
    library = _library(("claim_status", "Look up a claim."), ("claim_history", "Look up a claim."),
                       ("file_claim", ""))
    reply = capabilities(library)
    assert reply.count("Look up a claim.") == 1 and "- file claim" in reply


def test_validate_warns_about_an_empty_description(tmp_path, capsys):
    text = (ROUTINES / "hr" / "leave_balance.yaml").read_text()
    start = text.index("\ndescription:")
    end = text.index("\n", start + 1)
    while text[end + 1:end + 2] == " ":  # a folded description's further lines
        end = text.index("\n", end + 1)
    path = tmp_path / "blank.yaml"
    path.write_text(text[:start] + '\ndescription: ""' + text[end:])
    assert main(["--project", str(ROOT / "routine.toml"), "validate", str(path)]) == 0
    out = capsys.readouterr()
    assert "warning: the routine's description is empty" in out.out, out


def test_a_name_that_is_also_a_card_s_first_word_is_still_a_name():
    # a reviewed change counted a sentence's first word as a library term: "Mark an
    # onboarding task done" kept "Mark" in requests, which went to that write routine
    from routine.routing import LexicalRouter
    from routine.routing.library import capitalised_terms, retrieval_text

    router = LexicalRouter(Library.from_folders(ROUTINES / "hr"))
    assert "mark" not in router._terms
    assert "Mark" not in retrieval_text("Which tasks has Mark left?", terms=router._terms)
    assert "urlaub" in capitalised_terms("Bitte beantragt Urlaub für eine Mitarbeiterin.")


@pytest.mark.skipif(not have_embeddings(), reason="the routing extra is not installed")
def test_a_request_longer_than_the_embedding_model_reads_is_read_in_sentences():
    # the model reads 256 word pieces: a question after a long greeting was never seen,
    # and one before it was drowned in it — both went to none
    router = make_router("embedding", Library.from_folders(ROUTINES / "hr"))
    ask = "Please book meeting room Atlas for tomorrow at 10."
    greeting = ("Hello team, I hope this message finds you well and that the week is going "
                "smoothly for everyone. ") * 20
    short = router.route(ask)
    assert short.kind == "routine" and short.routine == "book_meeting_room"
    for request in (greeting + ask, ask + " " + greeting):
        decision = router.route(request)
        assert (decision.kind, decision.routine) == (short.kind, short.routine)
        assert decision.candidates[0].score == pytest.approx(short.candidates[0].score)
    assert router.route(greeting).kind == "none"
    # no sentence ends: overlapping windows of a few words rank the right routine first
    # (40-word runs fused the question with the greeting)
    words = " ".join(greeting.replace(",", "").replace(".", "").split()[:140])
    decision = router.route(words + " " + ask.rstrip(".") + " " + words)
    assert decision.candidates[0].name == "book_meeting_room", decision.candidates[:2]
    # a pasted log: its first and last sentences, not one part per sentence
    log = greeting * 1600 + ask
    assert len(router._parts(log)) < 2 * router.max_sentences
    assert router.route(log).routine == "book_meeting_room"


# ---------------------------------------------------------------- rounds that cannot help
def test_a_reply_repeated_word_for_word_at_temperature_zero_ends_the_repairs():
    # the 0.5B wrote the same 2,048 cut-off tokens four times (685 s): at temperature 0 the
    # round after a repeated reply has the same prompt, so the same reply
    model = ScriptedModel([BAD, BAD])
    result = draft(DRAFT, RETAIL, model, name="track_order", rounds=3, project=PROJECT)
    model.assert_complete()
    assert not result.ok and result.repairs == 1 and "same reply" in result.stopped
    assert result.to_record()["stopped"] == result.stopped
    last = draft(DRAFT, RETAIL, ScriptedModel([BAD_TOOL, BAD, BAD]), name="track_order",
                 rounds=2, project=PROJECT)
    assert last.repairs == 2 and last.stopped == ""  # the rounds ran out: nothing stopped
    sampled = ScriptedModel([BAD] * 4)  # sampling: a further round may differ
    again = draft(DRAFT, RETAIL, sampled, name="track_order", rounds=3, temperature=0.7,
                  project=PROJECT)
    assert again.repairs == 3 and again.stopped == ""


def test_a_reply_cut_off_at_the_token_limit_is_asked_to_be_shorter():
    from routine.models.base import ModelReply
    from routine.models.messages import Usage

    cut = ModelReply(content=GOOD[:-40], usage=Usage(prompt_tokens=10, completion_tokens=300))
    model = ScriptedModel([cut, GOOD])
    result = draft(DRAFT, RETAIL, model, name="track_order", rounds=1, max_tokens=300,
                   project=PROJECT)
    assert result.ok and result.repairs == 1
    repair = model.requests[1].messages[-1].content
    assert "cut off: it reached the limit of 300 tokens" in repair and "shorter" in repair
    whole = ScriptedModel([BAD, GOOD])  # a reply under the limit is not told so
    draft(DRAFT, RETAIL, whole, name="track_order", rounds=1, project=PROJECT)
    assert "cut off" not in whole.requests[1].messages[-1].content


# ---------------------------------------------------------------- signed traces
def _waiting(tmp_path, monkeypatch, key: str | None):
    from .test_conversation import agent, extracted

    if key is None:
        monkeypatch.delenv("ROUTINE_TRACE_KEY", raising=False)
    else:
        monkeypatch.setenv("ROUTINE_TRACE_KEY", key)
    with agent([extracted(order_id=None, reason=None)]).conversation() as chat:
        reply = chat.send("I want to cancel an order. My email is ana@example.com")
    assert reply.status == "waiting"
    path = tmp_path / "t.jsonl"
    from routine.run.trace import dump_traces

    dump_traces([reply.trace], path)
    return path


def _resume(path):
    from routine.models.testing import call
    from routine.run.trace import load_traces

    from .test_conversation import agent, extracted

    (saved,) = load_traces(path)
    later = agent([extracted(order_id=8, reason="too slow"),
                   call("find_by_email", email="ana@example.com"), call("get_order", order_id=8),
                   call("cancel_order", order_id=8, reason="too slow")])
    with later.conversation(trace=saved) as chat:
        return chat.send("Order 8, it is too slow")


KEY = "0123456789abcdef0123456789abcdef"


def test_a_signed_trace_resumes_and_an_edited_one_does_not(tmp_path, monkeypatch):
    # a saved conversation is its state: an edit (here the user's words) resumed silently
    path = _waiting(tmp_path, monkeypatch, KEY)
    assert json.loads(path.read_text())["signature"]
    assert _resume(path).trace.said[-1] == "Order 8, it is too slow"  # untouched: resumes
    edited = path.read_text().replace("ana@example.com", "eve@example.com")
    path.write_text(edited)
    with pytest.raises(RoutineError, match="was changed after it was saved"):
        _resume(path)


def test_with_a_key_set_an_unsigned_trace_does_not_resume(tmp_path, monkeypatch):
    path = _waiting(tmp_path, monkeypatch, None)
    assert json.loads(path.read_text())["signature"] is None
    monkeypatch.setenv("ROUTINE_TRACE_KEY", KEY)
    with pytest.raises(RoutineError, match="is not signed"):
        _resume(path)
    monkeypatch.setenv("ROUTINE_TRACE_KEY", "short")
    with pytest.raises(RoutineError, match="at least 16"):
        _resume(path)
    monkeypatch.delenv("ROUTINE_TRACE_KEY")  # no key: as before, nothing checked
    assert _resume(path).status == "waiting"


def test_another_key_does_not_verify(tmp_path, monkeypatch):
    path = _waiting(tmp_path, monkeypatch, KEY)
    monkeypatch.setenv("ROUTINE_TRACE_KEY", KEY[::-1])
    with pytest.raises(RoutineError, match="was changed"):
        _resume(path)


def test_a_key_given_in_code_signs_and_checks(tmp_path, monkeypatch):
    from routine.models.testing import call
    from routine.run.trace import dump_traces, load_traces

    from .test_conversation import agent, extracted

    monkeypatch.delenv("ROUTINE_TRACE_KEY", raising=False)
    with agent([extracted(order_id=None, reason=None)]).conversation() as chat:
        reply = chat.send("I want to cancel an order. My email is ana@example.com")
    path = tmp_path / "t.jsonl"
    dump_traces([reply.trace], path, key=KEY)

    def resume(key):
        (saved,) = load_traces(path)
        later = agent([extracted(order_id=8, reason="too slow"),
                       call("find_by_email", email="ana@example.com"),
                       call("get_order", order_id=8),
                       call("cancel_order", order_id=8, reason="too slow")])
        with later.conversation(trace=saved, trace_key=key) as chat:
            return chat.send("Order 8, it is too slow")

    assert resume(KEY).status == "waiting"
    # signed, and no key to check it with: refused (it resumed unchecked before)
    with pytest.raises(RoutineError, match="is signed, but no key is set"):
        resume(None)
    path.write_text(path.read_text().replace("ana@example.com", "eve@example.com"))
    with pytest.raises(RoutineError, match="does not match its signature"):
        resume(KEY)


def test_a_signed_line_from_another_version_with_more_fields_verifies(tmp_path, monkeypatch):
    import hashlib
    import hmac

    from routine.run.signing import payload

    path = _waiting(tmp_path, monkeypatch, KEY)
    data = json.loads(path.read_text())
    data["field_of_a_later_version"] = {"x": 1}  # this version drops it when reading
    data["signature"] = hmac.new(KEY.encode(), payload(data), hashlib.sha256).hexdigest()
    path.write_text(json.dumps(data) + "\n")
    assert _resume(path).status == "waiting"


def test_a_bad_key_is_said_before_the_tools_act(tmp_path, monkeypatch):
    from .test_conversation import agent

    monkeypatch.setenv("ROUTINE_TRACE_KEY", "short")
    runner = agent([])
    with pytest.raises(RoutineError, match="at least 16"):
        runner.run("Cancel order 7", trace_dir=tmp_path)
    assert runner.model.requests == [] and not (tmp_path / "traces.jsonl").exists()
    with pytest.raises(RoutineError, match="at least 16"):
        runner.conversation()


def test_resume_skips_a_run_that_was_answered_after_it_waited(tmp_path, monkeypatch):
    # `routine chat --resume` went on from the run's waiting line although a later line of
    # the same run had answered it: the confirmed refund ran twice
    from routine.cli.commands import _waiting_trace
    from routine.run.trace import dump_traces, load_traces

    path = _waiting(tmp_path, monkeypatch, None)
    (waiting,) = load_traces(path)
    assert _waiting_trace(path, {waiting.routine}).run_id == waiting.run_id
    dump_traces([waiting.model_copy(update={"outcome": "answered"})], path)
    with pytest.raises(RoutineError, match="no conversation of"):
        _waiting_trace(path, {waiting.routine})


def test_none_below_nan_is_a_usage_error(capsys):
    code = main(["route", "--library", str(ROUTINES / "hr"), "--router", "lexical",
                 "--none-below", "nan", "How many leave days do I have left?"])
    assert code == 2 and "--none-below" in capsys.readouterr().err


def test_the_draft_command_loads_each_toolset_once(scripted_server, tmp_path, monkeypatch):  # noqa: F811
    # pending() loads the toolsets to check them; drafting loaded (an MCP server: launched)
    # them again
    calls = _count_resolves(monkeypatch)
    ScriptedServer.script = [{"content": GOOD}]
    assert main(_draft_cli(tmp_path, scripted_server, "-o", str(tmp_path / "t.yaml"))) == 0
    assert calls == ["routine_tools.retail"]


def test_a_new_version_drafted_into_a_folder_of_its_own_is_not_refused(
        scripted_server, tmp_path, capsys):  # noqa: F811
    # the project's routines have track_order; drafting it again into scratch/ (to compare
    # with --diff) was refused as a duplicate name, which validate never reports
    project = tmp_path / "project"
    (project / "routines").mkdir(parents=True)
    (project / "routines" / "track_order.yaml").write_text(
        (ROUTINES / "retail" / "track_order.yaml").read_text())
    (project / "routine.toml").write_text('routines = ["routines"]\n[toolsets]\n'
                                          '"routine_tools.retail" = "routine_tools.retail"\n')
    (tmp_path / "track_order.md").write_text(DRAFT)
    ScriptedServer.script = [{"content": GOOD}]
    args = ["--project", str(project / "routine.toml"), "draft", str(tmp_path / "track_order.md"),
            "--toolset", "routine_tools.retail", "--model", "m", "--base-url", scripted_server]
    assert main([*args, "-o", str(tmp_path / "scratch"), "--diff",
                 str(project / "routines")]) == 0, capsys.readouterr().err
    assert (tmp_path / "scratch" / "track_order.yaml").exists()
    # into the project's routines, beside the one of that name: refused before the model
    (project / "routines" / "new").mkdir()
    assert main([*args, "-o", str(project / "routines" / "new")]) == 2
    assert "already the name of" in capsys.readouterr().err
    assert len(ScriptedServer.requests) == 1


# ---------------------------------------------------------------- drafted routines, task level
def test_a_task_under_a_drafted_routine_that_writes_nothing_is_scored_not_a_dataset_error():
    # eval/run-drafts.sh stopped the drafted run: an end state that differs is explained by
    # replaying the gold calls, and they were replayed under the drafted routine (which does
    # not allow them), so the dataset was called broken
    import asyncio

    from routine.eval.conditions import CONDITIONS
    from routine.eval.dataset import load_dataset, load_domain, seed_snapshot
    from routine.eval.tasks import run_task
    from routine.models.testing import call
    from routine.run.settings import RunSettings

    folder = ROOT / "eval" / "datasets" / "retail"
    domain = load_domain(folder)
    registry = domain.registry()
    own = {n: loaded.routine for n, loaded in domain.routines().items()}
    example = next(e for e in load_dataset(folder, ("test",))
                   if e.id == "retail-changes.cancel.mixed-04")
    drafted = load_routine_text(
        "name: cancel_order\ndescription: Cancel an order.\ntoolsets: [routine_tools.retail]\n"
        "inputs:\n  product_id: {type: integer, description: a product}\nsteps:\n"
        "  - id: stock\n    name: Stock\n    description: Check the stock.\n"
        "    tool: check_stock\n    args: {product_id: '${inputs.product_id}'}\n"
        "  - id: answer\n    name: Answer\n    description: Answer.\n    finish: true\n",
        "cancel_order.yaml").routine
    model = ScriptedModel([call("check_stock", product_id=1),
                           call("finish", answer="It is in stock.")])

    async def go():
        seed = await seed_snapshot(domain, registry)
        return await run_task(example, {**own, "cancel_order": drafted}, registry, model,
                              CONDITIONS["nl+track"], 0, RunSettings(), domain, seed,
                              gold_routines=own)

    result = asyncio.run(go())
    assert not result.success and not result.state_ok
    assert result.state_diff, result  # the rows the gold run changes and this one did not
