"""eval/run-drafts.sh, the drafting table's runner, over an OpenAI-compatible endpoint (a
larger model a user can reach fills the same table): a real HTTP endpoint scripted with the
reply, the script run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT
from .test_cli import ScriptedServer, scripted_server  # noqa: F401  (the fixture)

SCRIPT = ROOT / "eval" / "run-drafts.sh"


def _cancel_order_reply() -> str:
    """The hand-written cancel_order as the endpoint's JSON reply (it validates)."""
    import yaml

    return json.dumps(yaml.safe_load((ROOT / "routines/retail/cancel_order.yaml").read_text()))


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)  # `routine` and `python` of this environment
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "RESULTS": str(tmp_path),
             "DOMAINS": "retail", "ONLY": "cancel_order", "STAGES": "draft report", **env})


def test_an_endpoint_fills_the_table_under_its_own_label(scripted_server, tmp_path):  # noqa: F811
    ScriptedServer.script = [{"content": _cancel_order_reply()}]
    done = _run(tmp_path, BASE_URL=scripted_server, MODEL="org/Big-Model:1")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "drafts-org-Big-Model-1"  # the label: the model name made a folder name
    record = json.loads((out / "drafts-retail.jsonl").read_text())
    assert record["name"] == "cancel_order" and record["ok"] is True
    assert (out / "routines" / "retail" / "cancel_order.yaml").is_file()
    assert [r["model"] for r in ScriptedServer.requests] == ["org/Big-Model:1"]
    report = (out / "report.md").read_text()
    assert report.startswith("# Drafting: drafts-org-Big-Model-1")
    assert "| retail | 1 | 100.0% [21–100] (n=1) | 1 | 0 | 0 | 0 | 0 |" in report
    # no embedded model was started: only the endpoint's folder was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drafts-org-Big-Model-1"]


def test_an_endpoint_without_a_model_name_is_refused(tmp_path):
    done = _run(tmp_path, BASE_URL="http://127.0.0.1:9/v1")
    assert done.returncode != 0
    assert "BASE_URL needs MODEL" in done.stderr
    assert not any(tmp_path.iterdir())


def test_the_report_breaks_the_drafted_samples_down_by_routine():
    """The drafting report said how many samples the drafted routines got right in all,
    not which routine lost them (the README's per-routine figures were counted by hand).
    Its per-routine table adds up to the paired table's figures: every hand-written
    sample once, and the drafted run's right ones."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("drafts_report",
                                                  ROOT / "eval" / "drafts_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = ROOT / "eval" / "results" / "drafts-1.5b"
    rows = [r.split(" | ") for r in module.routine_rows(folder) if r.startswith("| retail")]
    assert len(rows) == 7  # every draft, valid or not
    cells = [[re.fullmatch(r"(\d+)/(\d+)", c.strip(" |")) for c in row[3:7]] for row in rows]
    total = [(sum(int(m[1]) for m in col if m), sum(int(m[2]) for m in col if m))
             for col in zip(*cells, strict=True)]
    paired = {row.split(" | ")[2]: row for row in module.accuracy_rows(folder)}
    for kind, (hand, drafted) in (("steps", total[:2]), ("tasks", total[2:])):
        line = paired[kind]
        n = int(re.search(r"\(n=(\d+)\)", line)[1])
        assert hand[1] == n  # each hand-written sample in one routine's row
        shares = re.findall(r"(\d+\.\d)% \[", line)
        assert f"{100 * hand[0] / n:.1f}" == shares[0]
        assert f"{100 * drafted[0] / n:.1f}" == shares[1]  # what the drafted run lacks: wrong
        assert f"{drafted[1]}/{n}" in line  # the covers column: the samples it has
