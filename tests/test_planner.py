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


# ---------------------------------------------------------------- the compact style
def test_compact_prompt_snapshots(request_leave):
    planner = Planner(style="compact")
    check_snapshot("system_request_leave_compact.txt",
                   planner.system_prompt(request_leave, {"leave_type": "annual"}))
    tracker = StepTracker(request_leave, {"leave_type": "annual", "start_date": "2026-06-08",
                                          "end_date": "2026-06-09"})
    tracker.record("find_employee", {"id": 5, "name": "Dana Xu"})
    text = planner.state_prompt(tracker, VariableMemory())
    check_snapshot("state_request_leave_step3_compact.txt", text)
    assert text == 'Now step 3: call get_leave_balance with {"employee_id": 5, "leave_type": "annual"}'


@pytest.mark.parametrize("domain", ["hr", "retail"])
def test_compact_prompts_keep_every_fact_of_the_full_ones(domain):
    """Every step's name, description, tool and arguments, every branch condition, every
    input and its description: in fewer characters."""
    from routine.run.prompts import _short_source

    for path in sorted((ROUTINES / domain).glob("*.yaml")):
        routine = load_routine(path).routine
        full = Planner().system_prompt(routine)
        compact = Planner(style="compact").system_prompt(routine)
        labels = StepTracker(routine).flow.labels
        assert len(compact) < 0.8 * len(full), path.name
        for name, spec in routine.inputs.items():
            assert f"{name} ({spec.description})" in compact, (path.name, name)
        for step, _ in routine.walk():
            assert f"{labels[step.id]}. {step.name}: {step.description}" in compact
            if step.tool:
                call = ", ".join(f"{k}={_short_source(labels, v)}" for k, v in step.args.items())
                assert f"→ {step.tool}({call})" in compact, (path.name, step.id)
            for option in step.branch or []:
                assert f"- if {option.condition}: go to " in compact


def test_compact_state_names_the_call_and_what_is_still_unknown(request_leave):
    tracker = StepTracker(request_leave, {"start_date": "2026-06-08", "end_date": "2026-06-09"})
    tracker.complete()  # the ask step: the dates are known
    text = Planner(style="compact").state_prompt(tracker, VariableMemory())
    assert text == 'Now step 2: call find_employee with {"name": <the request\'s employee_name>}'


def test_compact_answers_in_plain_text_unless_guided_decoding_needs_finish(request_leave):
    from routine.eval.conditions import CONDITIONS
    from routine.run.executor import Agent
    from routine.run.settings import RunSettings
    from routine.spec import registry_for

    def names(settings):
        registry, _ = registry_for(load_routine(ROUTINES / "hr" / "request_leave.yaml"))
        agent = Agent(request_leave, registry, None, settings, validate=False)
        return [t["function"]["name"] for t in agent.planner.tool_specs([])]

    condition = CONDITIONS["nl+track+compact"]
    compact = condition.settings(RunSettings())
    assert not condition.optional and compact.prompt_style == "compact"  # run by default
    guided = CONDITIONS["nl+track+guided"].settings(RunSettings())
    assert guided.prompt_style == "compact" and guided.decoding == "guided"
    assert names(compact) == [] and names(RunSettings()) == []  # compact: the default
    assert names(CONDITIONS["nl+track"].settings(RunSettings())) == ["finish"]
    assert names(compact.model_copy(update={"decoding": "guided"})) == ["finish"]
    tracker = StepTracker(request_leave, {"leave_type": "annual", "start_date": "2026-06-08",
                                          "end_date": "2026-06-09"})
    tracker.record("find_employee", {"id": 5, "name": "Dana Xu"})
    tracker.record("get_leave_balance", {"remaining": 0})  # the branch: no days left
    # the answer step says how to answer: told only "answer the user", the 0.5B called a
    # tool again (or one named "answer") at retail answer steps (compact-retail-0.5b)
    assert Planner(style="compact", finish_tool=False).state_prompt(tracker, VariableMemory()) \
        == "Now step 4-2_1: answer the user in plain text, no tool call."
    assert Planner(style="compact").state_prompt(tracker, VariableMemory()) == \
        "Now step 4-2_1: call finish with the answer to the user, from the results above."
