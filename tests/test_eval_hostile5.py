"""Bugs found by the fifth hostile-input round's second probe (a clinic's front desk, its
own evaluation dataset, routing and drafting): each test fails on the code before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil

import pytest

from routine import Agent, Toolset, load_routine_text
from routine.errors import DatasetError, EvalConfigError, ModelServerError
from routine.eval.conditions import CONDITIONS
from routine.eval.config import EvalConfig
from routine.eval.dataset import load_dataset, load_domain
from routine.eval.steps import step_samples
from routine.models.base import ModelReply
from routine.models.testing import FunctionModel, Request, call
from routine.routing.decision import RouteDecision
from routine.routing.measure import DecisionRecord, _done

from .conftest import ROOT

HR = ROOT / "eval" / "datasets" / "hr"
RETAIL = ROOT / "eval" / "datasets" / "retail"

desk = Toolset("desk")


@desk.tool
def book(day: str) -> str:
    """Book an appointment on a day."""
    return f"booked {day}"


BOOKING = load_routine_text("""
name: booking
description: Book an appointment.
toolsets: [desk]
inputs: {day: {type: string, description: the day}}
steps:
  - {id: when, name: When, description: Ask the day., ask: "Which day suits you?", fills: [day]}
  - {id: book, name: Book, description: Book it., tool: book, args: {day: "${inputs.day}"}}
  - {id: done, name: Done, description: Say so., finish: true, message: "Booked."}
""", "booking.yaml")


def test_an_ask_step_is_not_skipped_when_reading_the_user_s_words_fails_at_the_endpoint():
    def reply(request: Request) -> ModelReply:
        if request.guide is not None and request.guide.label == "inputs":
            raise ModelServerError("the endpoint failed (HTTP 500)", 500)
        return call("book", day="2026-04-02")  # what a model makes up without the question

    with Agent(BOOKING, [desk], FunctionModel(reply)).conversation() as chat:
        answer = chat.send("I'd like an appointment, please")
    trace = chat.trace
    assert answer.status == "failed" and trace.failure_kind == "endpoint"
    assert [c for c in trace.tool_calls if c.ok] == []  # nothing booked on a made-up day
    assert any(t.kind == "inputs" and "not read: model request failed" in (t.feedback or "")
               for t in trace.turns)


def _dataset_copy(tmp_path, source=HR):
    folder = tmp_path / source.name
    shutil.copytree(source, folder)  # (its domain.py is not trusted there: never loaded)
    return folder


def test_eval_refuses_a_split_that_uses_an_example_id_twice(tmp_path):
    from routine.eval.runner import run_evaluation

    folder = _dataset_copy(tmp_path)
    test = folder / "test.jsonl"
    first = test.read_text().splitlines()[0]
    test.write_text(test.read_text() + first.replace('"query": "', '"query": "Again: ') + "\n")
    config = EvalConfig(dataset=folder, out=tmp_path / "out", split="test",
                        conditions=["nl+track"], protocols=["task"], task_limit=1)
    with pytest.raises(DatasetError, match=re.escape(f"used more than once: "
                                                     f"'{json.loads(first)['id']}'")):
        asyncio.run(run_evaluation(config, FunctionModel(lambda r: "x")))
    assert not (tmp_path / "out" / "tasks.jsonl").exists()


def test_eval_with_routines_that_have_no_sample_in_the_split_says_so(tmp_path):
    from routine.eval.runner import run_evaluation

    examples = [e for e in load_dataset(HR, ("test",)) if e.kind == "routine"]
    absent = sorted(set(load_domain(HR).routines()) - {e.routine for e in examples})
    if not absent:
        pytest.skip("every HR routine has a test example")
    config = EvalConfig(dataset=HR, out=tmp_path / "out", split="test", conditions=["nl+track"],
                        protocols=["task"], routines=absent[:1])
    with pytest.raises(EvalConfigError, match="has no sample of --routines"):
        asyncio.run(run_evaluation(config, FunctionModel(lambda r: "x")))


def test_eval_that_records_nothing_because_the_endpoint_failed_exits_with_an_error(tmp_path):
    from routine.eval.runner import run_evaluation

    def down(request: Request) -> ModelReply:
        raise ModelServerError("the endpoint failed (HTTP 500)", 500)

    config = EvalConfig(dataset=HR, out=tmp_path / "out", split="test", conditions=["nl+track"],
                        protocols=["step"], step_limit=2)
    with pytest.raises(ModelServerError, match="every one of the 2 sample"):
        asyncio.run(run_evaluation(config, FunctionModel(down)))
    assert not (tmp_path / "out" / "report.md").exists()


def test_step_samples_are_the_same_under_every_condition_when_the_routine_writes_the_answer():
    domain = load_domain(RETAIL)
    registry = domain.registry()
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    text = (ROOT / "routines" / "retail" / "track_order.yaml").read_text()
    routines["track_order"] = load_routine_text(text.replace("answer:", "message:"),
                                                "track_order.yaml").routine
    examples = [e for e in load_dataset(RETAIL, ("test",))
                if e.kind == "routine" and e.routine == "track_order" and e.user is None]
    ids = {}
    for name in ("none", "nl+track"):
        samples = asyncio.run(step_samples(examples, routines, registry, CONDITIONS[name]))
        ids[name] = sorted(s.id for s in samples)
    assert ids["none"] == ids["nl+track"] and ids["none"]


def test_route_eval_refuses_decisions_another_model_made(tmp_path):
    log = tmp_path / "decisions.jsonl"
    decision = RouteDecision(kind="none", reason="nothing fits")
    log.write_text(DecisionRecord(router="llm", dataset="clinic", case="c1", gold=None,
                                  decision=decision, model="model-a").model_dump_json() + "\n")
    assert list(_done(log, "model-a")) == [("llm", "clinic", "c1")]
    with pytest.raises(EvalConfigError, match="decisions of model 'model-a', not 'model-b'"):
        _done(log, "model-b")


def test_gold_outputs_give_a_loop_its_items_outputs():
    from routine.eval.dataset import oracle_run
    from routine.tools.core import ToolRegistry

    class Desk:
        def state_snapshot(self) -> dict:
            return {}

    @contextlib.contextmanager
    def opened():
        yield Desk()

    reminders = Toolset("reminders", setup=opened)

    @reminders.tool
    def list_appointments(patient: str) -> list[dict]:
        """The patient's appointments."""
        return [{"id": 1}, {"id": 2}]

    @reminders.tool
    def remind(appointment_id: int) -> dict:
        """Send a reminder."""
        return {"sent": appointment_id}

    loaded = load_routine_text("""
name: remind_all
description: Remind a patient of every appointment.
toolsets: [reminders]
inputs: {patient: {type: string, description: the patient}}
steps:
  - {id: appts, name: List, description: List them., tool: list_appointments,
     args: {patient: "${inputs.patient}"}}
  - id: each
    name: Each
    description: Remind each.
    for_each: ${steps.appts.output}
    as: appt
    steps:
      - {id: send, name: Send, description: Send it., tool: remind,
         args: {appointment_id: "${appt.id}"}}
  - {id: done, name: Done, description: Say so., finish: true}
""", "remind_all.yaml")
    _, outputs, _ = asyncio.run(oracle_run(loaded, ToolRegistry(reminders), {"patient": "Ana"}))
    assert outputs["each"] == [{"send": {"sent": 1}}, {"send": {"sent": 2}}]
    assert outputs["send"] == {"sent": 2}


def test_draft_out_folder_and_diff_folder_find_the_routine_by_name(tmp_path):
    import click

    from routine.cli.draft import DraftJob, _existing, _target

    draft = tmp_path / "Patient-Lookup.md"
    draft.write_text("Look the patient up by name.\n")
    job = DraftJob(source=draft, toolsets=["desk"], out_path=tmp_path / "drafted")
    assert job.folder_out and _target(job.out_path, job.folder_out, "patient_lookup") == \
        tmp_path / "drafted" / "patient_lookup.yaml"
    assert not DraftJob(source=draft, toolsets=["desk"],
                        out_path=tmp_path / "lookup.yaml").folder_out
    existing = tmp_path / "existing" / "front"
    existing.mkdir(parents=True)
    (existing / "lookup.yaml").write_text(  # name: track_order, in a file named otherwise
        (ROOT / "routines" / "retail" / "track_order.yaml").read_text())
    assert _existing(tmp_path / "existing", "track_order") == existing / "lookup.yaml"
    with pytest.raises(click.BadParameter, match="has no routine named 'nope'"):
        _existing(tmp_path / "existing", "nope")


@pytest.mark.parametrize("answer, stated", [
    ("Your visit is booked for 2026-04-02 at 09:00.", True),
    ("Your visit is booked for 2 April 2026 at 09:00.", True),
    ("Booked: April 2, 2026.", True),
    ("Booked for the 2nd of April 2026.", True),
    ("Booked for Apr 2, 2026.", True),
    ("Booked for 02/04/2026.", False),  # day or month first: the reader cannot tell
    ("Booked for 3 April 2026.", False),
])
def test_a_required_date_is_found_as_english_writes_it(answer, stated):
    from routine.eval.tasks import missing_facts

    assert (missing_facts(answer, ["2026-04-02"]) == []) is stated


# ------------------------------------------------------- a newcomer's own domain.py
def _template(**changes):
    from routine.eval.dataset import Template

    base = dict(id="loans.renew", scenario="renew", split="test", routine="renew_loan",
                phrasings=["Renew {title} on card {card}"],
                sample=lambda deps, rng: {"title": "Dune", "card": "C1"},
                answer=lambda values, outputs: ("Renewed.", []))
    return Template(**{**base, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"phrasings": "Renew {title} on card {card}"}, "phrasings must be a non-empty list"),
    ({"phrasings": []}, "phrasings must be a non-empty list"),
    ({"split": "validation"}, "split 'validation' is not one of train, dev, test"),
    ({"count": 0}, "count must be a whole number of at least 1"),
])
def test_a_template_s_mistakes_are_named_before_it_makes_examples(changes, message):
    from routine.eval.dataset import _check_template

    _check_template(_template())  # (the right one passes)
    with pytest.raises(DatasetError, match=re.escape(f"template loans.renew: {message}")):
        _check_template(_template(**changes))


def test_scoring_declarations_that_name_nothing_are_errors():
    import dataclasses

    from routine.eval.dataset import seed_snapshot

    domain = load_domain(RETAIL)
    registry = domain.registry()
    seed = asyncio.run(seed_snapshot(domain, registry))
    assert domain.scoring_problems(registry, seed) == []
    typo = dataclasses.replace(domain, arg_modes={**domain.arg_modes,
                                                  "cancel_order.resaon": "fuzzy",
                                                  "cancl_order.reason": "exact",
                                                  "cancel_order.reason": "fuzy"},
                               free_text={**domain.free_text, "oders.reason":
                                          "cancel_order.reason"})
    problems = "\n".join(typo.scoring_problems(registry, seed))
    assert "tool 'cancel_order' has no argument 'resaon'" in problems
    assert "'cancl_order.reason' names no tool" in problems
    assert "mode 'fuzy' is not one of loose, exact, fuzzy, ignore" in problems
    assert "'oders.reason' names no table" in problems


def test_a_toolset_module_without_tools_is_an_error_naming_the_file(tmp_path):
    from routine.spec.project import import_toolsets

    (tmp_path / "notools_for_test.py").write_text("x = 1\n")
    with pytest.raises(TypeError, match="notools_for_test.py\\) defines no Tool or Toolset"):
        import_toolsets("notools_for_test", tmp_path)
    (tmp_path / "calendar.py").write_text("x = 1\n")  # the standard library's takes the name
    with pytest.raises(TypeError, match="calendar.py was not imported: the name is taken"):
        import_toolsets("calendar", tmp_path)


def test_small_newcomer_slips_are_one_clear_error(tmp_path):
    from pydantic import ValidationError

    from routine.cli.project_init import init_project

    taken = tmp_path / "afile"
    taken.write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        init_project(taken)
    with pytest.raises(ValidationError, match="'train', 'dev' or 'test'|train.*dev.*test"):
        EvalConfig(dataset=HR, out=tmp_path, split="validation")


def test_a_user_spec_naming_no_input_of_the_routine_is_named_with_its_template():
    import dataclasses

    from routine.eval.dataset import _build
    from routine.eval.users import UserSpec

    domain = load_domain(RETAIL)
    talk = next(t for t in domain.templates if t.user is not None)
    broken = dataclasses.replace(talk, user=dataclasses.replace(talk.user,
                                                                holds=["amount_due"]))
    templates = [broken if t is talk else t for t in domain.templates]
    with pytest.raises(DatasetError, match=re.escape(f"template {talk.id}: UserSpec names "
                                                     "'amount_due', not inputs")):
        asyncio.run(_build(dataclasses.replace(domain, templates=templates)))
    assert isinstance(talk.user, UserSpec)


def test_dataset_stats_of_a_folder_never_built_is_an_error(tmp_path, capsys):
    from routine.cli import main

    assert main(["dataset", "stats", str(tmp_path)]) == 1
    assert "has no split files" in capsys.readouterr().err
