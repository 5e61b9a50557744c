"""Gold datasets: every trajectory replays on a fresh database to its recorded end state."""

from __future__ import annotations

import asyncio
import json

import pytest

from routine import ToolRegistry, load_routine_text, tool
from routine.eval.dataset import (
    DatasetError,
    build_dataset,
    dataset_stats,
    load_dataset,
    load_domain,
    oracle_run,
    replay,
)

from .conftest import ROOT

DATASETS = sorted(p.parent for p in (ROOT / "eval" / "datasets").glob("*/domain.py"))
MINIMUMS = {  # what the HR and second-domain issues ask for
    "hr": {"tools": 25, "routines": 13, "routines_with_branches": 3, "queries": 200,
           "scenarios": 7},
    "retail": {"tools": 8, "routines": 4, "routines_with_branches": 1, "queries": 40,
               "scenarios": 1},
}


@pytest.fixture(scope="module", params=DATASETS, ids=lambda p: p.name)
def dataset(request):
    domain = load_domain(request.param)
    return domain, load_dataset(request.param)


def test_both_domains_exist():
    assert {p.name for p in DATASETS} >= {"hr", "retail"}


def test_every_gold_trajectory_replays_to_its_end_state(dataset):
    domain, examples = dataset
    failures = replay(examples, domain)
    assert set(failures) == {e.id for e in examples}
    assert {k: v for k, v in failures.items() if v} == {}


def test_replay_reports_a_changed_gold_result(dataset):
    domain, examples = dataset
    example = next(e for e in examples if e.calls and e.changes_state)
    wrong = example.model_copy(update={"end_state": "0" * 64})
    assert replay([wrong], domain)[example.id] == [
        "end state differs from the recorded one: the database differs from the gold end state"]


def test_committed_files_match_the_templates(dataset):
    domain, examples = dataset
    rebuilt = build_dataset(domain)
    def dumped(items):
        return sorted((e.model_dump() for e in items), key=lambda d: d["id"])

    assert dumped(rebuilt) == dumped(examples), \
        "run: routine dataset build eval/datasets/<domain>"


def test_splits_are_by_template(dataset):
    _, examples = dataset
    split_of: dict[str, set[str]] = {}
    for e in examples:
        split_of.setdefault(e.template, set()).add(e.split)
    assert all(len(s) == 1 for s in split_of.values())
    assert {e.split for e in examples} == {"train", "dev", "test"}
    test_routines = {e.routine for e in examples if e.split == "test" and e.routine}
    assert test_routines, "the test split must exercise routines"


def test_sizes(dataset):
    domain, examples = dataset
    stats = dataset_stats(domain, examples)
    want = MINIMUMS[domain.name]
    assert stats["tools"] >= want["tools"]
    assert stats["routines"] >= want["routines"]
    assert stats["routines_with_branches"] >= want["routines_with_branches"]
    assert stats["queries"] >= want["queries"]
    assert len([s for s in stats["scenarios"] if s != "other"]) >= want["scenarios"]
    kinds = {e.kind for e in examples}
    assert kinds == {"routine", "refuse", "ask"}
    # refusals and questions back never touch the database
    assert not any(e.calls or e.changes_state for e in examples if e.kind != "routine")
    assert any(e.changes_state for e in examples)  # and some tasks do write


def test_every_routine_has_its_expert_draft(dataset):
    domain, _ = dataset
    for name in domain.routines():
        draft = domain.root / domain.routines_dir / "drafts" / f"{name}.md"
        assert draft.exists() and len(draft.read_text().split()) >= 15, draft


# ---------------------------------------------------------------- the oracle
@tool
def lookup(name: str) -> int:
    """Look up a number."""
    if name == "nobody":
        raise LookupError("no such person")
    return len(name)


BRANCHY = """
name: branchy
description: d
inputs:
  who: {type: string, description: who}
steps:
  - id: look
    name: Look
    description: look
    tool: lookup
    args: {name: "${inputs.who}"}
  - id: choose
    name: Choose
    description: choose
    branch:
      - {condition: long name, steps: [{id: a, name: A, description: a, finish: true}]}
      - {condition: short name, steps: [{id: b, name: B, description: b, finish: true}]}
"""


class Deps:
    def state_snapshot(self) -> dict:
        return {"t": {"1": {"v": "same"}}}


def registry() -> ToolRegistry:
    from routine import Toolset

    ts = Toolset("t", setup=lambda: __import__("contextlib").nullcontext(Deps()))
    ts.add(lookup)
    return ToolRegistry(ts)


def test_oracle_needs_decidable_branches():
    loaded = load_routine_text(BRANCHY)
    with pytest.raises(DatasetError, match="cannot be decided"):
        asyncio.run(oracle_run(loaded, registry(), {"who": "ann"}))


def test_oracle_refuses_a_failing_gold_call():
    text = BRANCHY.replace("{condition: long name,", "{condition: long name, when: 'true',")
    loaded = load_routine_text(text)
    calls, outputs, snapshot = asyncio.run(oracle_run(loaded, registry(), {"who": "ann"}))
    assert [(c.name, c.arguments, c.result) for c in calls] == [("lookup", {"name": "ann"}, 3)]
    assert outputs == {"look": 3} and snapshot == {"t": {"1": {"v": "same"}}}
    with pytest.raises(DatasetError, match="gold call lookup.*no such person"):
        asyncio.run(oracle_run(loaded, registry(), {"who": "nobody"}))


@pytest.mark.parametrize("line, says", [
    ('{"id": "x", "kind": "routine"', "Invalid JSON"),  # a truncated line
    ("[]", "not a gold example"),
])
def test_a_bad_dataset_line_is_one_error_with_file_and_line(tmp_path, line, says):
    from routine.errors import DatasetError
    from routine.eval.dataset import load_dataset

    good = (ROOT / "eval/datasets/retail/test.jsonl").read_text().splitlines()[0]
    (tmp_path / "train.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DatasetError) as info:  # a raw pydantic error, no file, before
        load_dataset(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'train.jsonl'}:2: not a gold example")
    assert says in str(info.value)


def test_check_finds_ids_used_twice_requests_in_two_splits_and_missing_files(tmp_path):
    from routine.eval.dataset import hygiene, load_dataset

    lines = (ROOT / "eval/datasets/retail/test.jsonl").read_text().splitlines()
    train = json.loads(lines[1])
    train["split"], train["id"] = "train", "leak-1"  # a test request, trained on
    (tmp_path / "test.jsonl").write_text("\n".join([lines[0], lines[0], lines[1]]) + "\n")
    (tmp_path / "train.jsonl").write_text(json.dumps(train) + "\n")
    problems = hygiene(tmp_path, load_dataset(tmp_path))  # 'ok' before, all three
    assert any("dev.jsonl is missing" in p for p in problems)
    first = json.loads(lines[0])["id"]
    assert f"{first}: the id is used twice (test, test)" in problems
    assert any("is in test and train" in p for p in problems)
    assert len(problems) == 3
