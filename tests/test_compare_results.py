"""`routine compare-results`: two evaluations, paired on the samples both have."""

from __future__ import annotations

import json

import pytest

from routine.cli.commands import main
from routine.errors import RoutineError
from routine.eval.compare import compare_results, comparison_table
from routine.eval.summary import load_summary

from .conftest import ROOT

RESULTS = ROOT / "eval" / "results"
A, B = RESULTS / "retail-0.5b", RESULTS / "retail-1.5b"


def test_rows_agree_with_each_folders_own_summary_and_pair_by_sample():
    rows = compare_results(A, B, [("none", "nl+track")])
    same = {r.a_condition: r for r in rows if r.a_condition == r.b_condition}
    summary_a, summary_b = load_summary(A / "summary.json"), load_summary(B / "summary.json")
    assert set(same) == set(summary_a.conditions) & set(summary_b.conditions)
    for condition, row in same.items():
        assert row.steps_a.k == summary_a.conditions[condition].step.accuracy.k
        assert row.steps_b.k == summary_b.conditions[condition].step.accuracy.k
        assert row.tasks_b.k == summary_b.conditions[condition].task.success.k
        # the gain is the paired difference: won minus lost over the shared samples
        gain = row.steps_gain
        assert gain.won - gain.lost == row.steps_b.k - row.steps_a.k
    crossed = rows[-1]
    assert (crossed.a_condition, crossed.b_condition) == ("nl+track", "none")
    assert crossed.steps_a.k == summary_a.conditions["nl+track"].step.accuracy.k
    assert crossed.steps_b.k == summary_b.conditions["none"].step.accuracy.k
    table = comparison_table(rows, ("0.5b", "1.5b"))
    assert table.count("\n") == len(rows) + 2 and "| nl+track | none |" in table


def test_only_shared_samples_count(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    lines = (A / "steps.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["condition"] == "nl"][:10]
    (partial / "steps.jsonl").write_text("\n".join(kept) + "\n")
    rows = compare_results(A, partial)
    assert [(r.a_condition, r.steps_a.n, r.tasks_a) for r in rows] == [("nl", 10, None)]
    assert rows[0].steps_gain.gain == 0  # the same records: no gain
    with pytest.raises(RoutineError, match="no shared samples"):
        compare_results(A, partial, [("nl", "magic")])
    with pytest.raises(RoutineError, match="no such results folder"):
        compare_results(tmp_path / "missing", partial)


def test_cli(capsys):
    assert main(["compare-results", str(A), str(B), "--labels", "small,large",
                 "--cross", "none=nl"]) == 0
    out = capsys.readouterr().out
    assert "step accuracy, small" in out and "| nl | none |" in out
    assert main(["compare-results", str(A), str(B), "--cross", "none"]) == 2
