"""Evaluating, routing and drafting in a user's own domain, third hostile round: records
resumed by another model, gold that names a routine the domain lacks or cannot be
reached, facts given as numbers, .yml routines, example requests a router ignored,
drafts that contain themselves, comparisons with nothing to compare."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from routine.errors import DatasetError, EvalConfigError, RoutineError
from routine.eval import runner
from routine.eval.compare import compare_results
from routine.eval.config import EvalConfig
from routine.eval.dataset import _facts, load_domain
from routine.eval.runner import run_evaluation
from routine.eval.summary import load_summary
from routine.models.parsing import CallParseError
from routine.routing import Library, make_router
from routine.routing.library import Example
from routine.spec.loader import routine_files

from .test_evaluation import HR, gold_model, lazy_model


def config(tmp_path, **kw) -> EvalConfig:
    base = dict(dataset=HR, out=tmp_path / "run", split="test", conditions=["nl+track"],
                protocols=["step"], step_limit=3, task_limit=0, seed=1)
    return EvalConfig(**{**base, **kw})


def test_a_folder_is_resumed_only_by_the_model_and_sampling_that_made_its_records(tmp_path):
    asyncio.run(run_evaluation(config(tmp_path, model="gold"), gold_model()))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model"] == "gold"
    lazy = lazy_model()
    with pytest.raises(EvalConfigError, match="model: 'gold' there, 'lazy' now"):
        asyncio.run(run_evaluation(config(tmp_path, model="lazy"), lazy))
    with pytest.raises(EvalConfigError, match="temperature: 0.0 there, 0.7 now"):
        asyncio.run(run_evaluation(config(tmp_path, model="gold", temperature=0.7), lazy))
    assert lazy.requests == []  # nothing ran, nothing was recorded under the wrong name
    asyncio.run(run_evaluation(config(tmp_path, model="gold"), gold_model()))  # same: resumes
    # a report without --model keeps the name of the model that made the records
    asyncio.run(run_evaluation(config(tmp_path, model="none", report_only=True), lazy))
    assert load_summary(tmp_path / "run" / "summary.json").config["model"] == "gold"


def test_a_folder_of_other_gold_is_not_resumed(tmp_path, monkeypatch):
    asyncio.run(run_evaluation(config(tmp_path, model="gold"), gold_model()))
    real = runner.load_dataset

    def rebuilt(*args, **kwargs):
        examples = real(*args, **kwargs)
        return [examples[0].model_copy(update={"answer": "another answer"}), *examples[1:]]

    monkeypatch.setattr(runner, "load_dataset", rebuilt)
    with pytest.raises(EvalConfigError, match="the gold changed"):
        asyncio.run(run_evaluation(config(tmp_path, model="gold"), gold_model()))


@pytest.mark.parametrize("field", ["step_limit", "task_limit"])
def test_negative_limits_are_refused(tmp_path, field):
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        config(tmp_path, **{field: -1})


def test_gold_that_names_a_routine_the_domain_lacks_is_an_error_not_a_dropped_example(
        tmp_path, monkeypatch):
    real = runner.load_dataset

    def typo(*args, **kwargs):
        examples = real(*args, **kwargs)
        return [examples[0].model_copy(update={"routine": "leave_balanse"}), *examples[1:]]

    monkeypatch.setattr(runner, "load_dataset", typo)
    with pytest.raises(DatasetError, match="examples name routines the domain does not have: "
                                           "'leave_balanse'"):
        asyncio.run(run_evaluation(config(tmp_path), gold_model()))


def test_an_empty_split_is_said_not_reported_as_done(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "load_dataset", lambda *a, **k: [])
    with pytest.raises(EvalConfigError, match="the test split of .* has no examples"):
        asyncio.run(run_evaluation(config(tmp_path), gold_model()))


def test_gold_whose_end_state_cannot_be_reached_is_a_dataset_error_not_a_failed_task(
        tmp_path, monkeypatch):
    real = runner.load_dataset

    def stale(*args, **kwargs):
        examples = [e for e in real(*args, **kwargs) if e.changes_state and e.user is None]
        return [examples[0].model_copy(update={"end_state": "0" * 16})]

    monkeypatch.setattr(runner, "load_dataset", stale)
    cfg = config(tmp_path, protocols=["task"], step_limit=0, task_limit=1)
    with pytest.raises(DatasetError, match="do not reach its recorded end state"):
        asyncio.run(run_evaluation(cfg, gold_model()))


def test_required_facts_may_be_numbers_and_anything_else_is_named():
    assert _facts("claim.a", ["Claim 7", 999.99, 3]) == ["Claim 7", "999.99", "3"]
    with pytest.raises(DatasetError, match=r"template claim.a: .* \{'x': 1\} \(dict\)"):
        _facts("claim.a", ["Claim 7", {"x": 1}])


def test_routine_files_are_yaml_and_yml_in_subfolders_too(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.yaml", "sub/b.yml", "c.txt", "d.yaml.bak"):
        (tmp_path / name).write_text("x")
    assert routine_files(tmp_path) == [tmp_path / "a.yaml", tmp_path / "sub" / "b.yml"]
    assert len(load_domain(HR).routines()) == 20


def test_a_lexical_router_given_examples_reads_them():
    library = Library.of(load_domain(HR).routines().values())
    query = "Could you sort out the thing with my laptop that keeps freezing"
    target = "report_it_issue"
    with_examples = library.with_examples([Example(query, target)])
    plain = make_router("lexical", with_examples).rank(query)
    read = make_router("lexical", with_examples, examples=True).rank(query)
    score = {c.name: c.score for c in read}
    assert read[0].name == target
    assert score[target] > {c.name: c.score for c in plain}[target]


def test_a_draft_that_contains_itself_is_the_model_s_mistake():
    from routine.drafting.draft import _call_text
    from routine.drafting.reply import routine_data

    with pytest.raises(CallParseError, match="aliases"):
        routine_data("name: x\nsteps: &a [*a]\n")
    call = [{"function": {"name": "write_routine", "arguments": {"name": "x", "steps": []}}}]
    assert json.loads(_call_text(call)) == {"name": "x", "steps": []}


def test_comparing_folders_with_nothing_in_common_says_so(tmp_path):
    asyncio.run(run_evaluation(config(tmp_path, model="gold"), gold_model()))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RoutineError, match="holds no records"):
        compare_results(tmp_path / "run", empty)
    other = tmp_path / "other"
    asyncio.run(run_evaluation(config(tmp_path, out=other, conditions=["nl"], model="gold"),
                               gold_model()))
    with pytest.raises(RoutineError, match="no condition in common"):
        compare_results(tmp_path / "run", other)


def test_a_diff_of_routines_that_differ_in_their_answer_or_descriptions_is_not_identical():
    from routine.drafting.diff import diff_routines
    from routine.spec import load_routine_text

    text = """
name: lost
description: {what}
toolsets: [parcels]
steps:
  - {{id: find, name: Find, description: Find the parcel., tool: find_parcel,
     args: {{tracking: "${{inputs.tracking}}"}}}}
  - {{id: done, name: Answer, description: Say it., finish: true,
     answer: "{answer}"}}
inputs: {{tracking: {{type: string, description: the tracking number}}}}
"""
    old = load_routine_text(text.format(what="Report a lost parcel.",
                                        answer="Parcel {{ steps.find.output.tracking }} is "
                                               "{{ steps.find.output.status }}."), "a.yaml")
    new = load_routine_text(text.format(what="Say a parcel is lost.",
                                        answer="Parcel {{ steps.find.output.tracking }} was "
                                               "lost, sorry."), "b.yaml")
    diff = diff_routines(old.routine, new.routine)
    assert not diff.identical
    assert diff.notes == ["description: reworded"]
    (done,) = [s for s in diff.steps if s.old and s.old.id == "done"]
    assert done.change == "changed" and done.details[0].startswith("answer: 'Parcel")
    assert diff_routines(old.routine, old.routine).identical


def test_a_title_cased_request_keeps_the_words_that_choose_its_routine():
    from routine.routing.library import retrieval_text

    words = frozenset({"reroute", "parcel", "my", "to"})
    assert retrieval_text("Please Reroute My Parcel To Lyon", words) == \
        "Please Reroute My Parcel To"
    assert retrieval_text("Ask Kofi Xu about it", words) == "Ask about it"  # not title case
    library = Library.of(load_domain(HR).routines().values())
    router = make_router("lexical", library)
    plain = router.rank("how many vacation days do i have left this year")
    titled = router.rank("How Many Vacation Days Do I Have Left This Year")
    assert titled[0].name == plain[0].name == "leave_balance"
