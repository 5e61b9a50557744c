"""Snapshot tests of the rendered prompts (UPDATE_SNAPSHOTS=1 rewrites them)."""

from __future__ import annotations

import json
import os

import pytest
from jinja2.exceptions import SecurityError

from routine import Planner, load_routine, load_routine_text
from routine.run.memory import VariableMemory
from routine.run.tracking import StepTracker

from .conftest import ROOT, ROUTINES

SNAPSHOTS = ROOT / "tests" / "snapshots"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"prompt changed: see {path}"


@pytest.fixture
def request_leave():
    return load_routine(ROUTINES / "hr" / "request_leave.yaml").routine


@pytest.mark.parametrize("fmt", ["nl", "json", "none"])
def test_system_prompt_snapshots(request_leave, fmt):
    text = Planner(routine_format=fmt).system_prompt(request_leave, {"leave_type": "annual"})
    check_snapshot(f"system_request_leave_{fmt}.txt", text)


def test_json_rendering_follows_the_paper(request_leave):
    steps = Planner().steps_json(request_leave)
    assert [(s["step"], s["type"], s["tool"]) for s in steps] == [
        ("1", "ask", None), ("2", "node", "find_employee"), ("3", "node", "get_leave_balance"),
        ("4", "branch", None), ("4-1_1", "branchnode", "submit_leave_request"),
        ("4-1_2", "finish", "finish"), ("4-2_1", "finish", "finish")]
    assert steps[3]["branches"][1] == {"condition": "no days are left", "goto": "4-2_1"}
    assert steps[0]["fills"] == ["start_date", "end_date"] and "confirm" in steps[4]
    json.dumps(steps)  # serialisable as it is shown


def test_state_prompt_snapshot_mid_run(request_leave):
    tracker = StepTracker(request_leave, {"leave_type": "annual", "start_date": "2026-06-08",
                                          "end_date": "2026-06-09"})
    tracker.record("find_employee", {"id": 5, "name": "Dana Xu"})
    memory = VariableMemory(threshold=20)
    memory.store({"text": "x" * 50}, "long handbook text " * 10, "get_handbook")
    text = Planner().state_prompt(tracker, memory)
    check_snapshot("state_request_leave_step2.txt", text)
    assert "- employee_id: 5" in text and "Current step: Step 3" in text


def test_state_prompt_is_none_without_tracking_or_memory(request_leave):
    assert Planner(step_tracking=False).state_prompt(StepTracker(request_leave),
                                                     VariableMemory()) is None


def test_templates_are_sandboxed_and_strict():
    # a routine is user data: template syntax inside it is printed, never executed
    hostile = load_routine_text("""
name: hostile
description: "{{ ''.__class__.__mro__ }}"
steps:
  - {id: a, name: "{% raw %}x{% endraw %}", description: "{{ cycler.__init__ }}", finish: true}
""")
    text = Planner().system_prompt(hostile.routine)
    assert "{{ ''.__class__.__mro__ }}" in text and "{{ cycler.__init__ }}" in text
    from routine.run.prompts import _ENV

    with pytest.raises(SecurityError):
        _ENV.from_string("{{ x.__class__.__mro__[1].__subclasses__() }}").render(x="")
    from jinja2.exceptions import UndefinedError

    with pytest.raises(UndefinedError):
        _ENV.from_string("{{ missing }}").render()
