"""Hostile and careless routine files, third round: what YAML makes of unquoted text
(templates, dates, yes/no keys), expressions validate and the run-time sandbox must judge
alike, jumps across a loop's body, hand-off and enum types. Each test is a routine as YAML
text through the real loader and validator."""

from __future__ import annotations

import json
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import Literal

import jinja2
import pytest
from pydantic import BaseModel

from routine import ToolRegistry, tool
from routine.cli.commands import main
from routine.errors import Problem, SpecError
from routine.spec import load_routine_text
from routine.spec.expressions import compile_when, parse_template
from routine.spec.format import Routine
from routine.spec.validate import check_routine


class Employee(BaseModel):
    employee_id: int
    name: str
    email: str


class System(BaseModel):
    system: str
    owner_email: str


class Systems(BaseModel):
    systems: list[System]


class Doc(StrEnum):
    PASSPORT = "passport"
    ID_CARD = "id_card"


@tool
def find_employee(email: str) -> Employee:
    """Find an employee by email."""
    return Employee(employee_id=7, name="Ana", email=email)


@tool
def find_customer(name: str) -> Employee | None:
    """Find a customer by name (None when there is none)."""
    return None


@tool
def list_systems(team: str) -> Systems:
    """The systems of a team."""
    return Systems(systems=[])


@tool
def notify(email: str, text: str) -> str:
    """Send a note."""
    return "sent"


@tool
def screen(customer_id: int, doc: Doc | None = None,
           level: Literal["basic", "enhanced"] | None = "basic",
           lists: list[Literal["ofac", "eu", "un"]] | None = None) -> str:
    """Screen a customer against sanctions lists."""
    return "clear"


TOOLS = ToolRegistry(find_employee, find_customer, list_systems, notify, screen)

HEADER = """\
name: r
description: A routine under test.
inputs:
  email: {type: string, description: "the employee's email"}
  urgent: {type: boolean, description: whether it is urgent, required: false}
"""

FIND = """\
- id: find
  name: Find
  description: Find the employee.
  tool: find_employee
  args: {email: "${inputs.email}"}
"""

LOOP = """\
- id: systems
  name: Systems
  description: List the team's systems.
  tool: list_systems
  args: {team: eng}
"""

DONE = """\
- id: done
  name: Done
  description: Answer.
  finish: true
"""


def routine(*steps: str, top: str = "", header: str = HEADER) -> str:
    """``header``, the top-level keys ``top``, then ``steps``: each part dedented on its
    own, then indented under ``steps:``."""
    body = "".join(textwrap.dedent(part) for part in steps)
    return header + textwrap.dedent(top) + "steps:\n" + textwrap.indent(body, "  ")


def problems(text: str, routines: dict[str, Routine] | None = None) -> list[Problem]:
    try:
        loaded = load_routine_text(text, "r.yaml")
    except SpecError as exc:
        return exc.problems
    return check_routine(loaded, TOOLS, routines=routines)


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def only(found: list[Problem]) -> Problem:
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- A: YAML that crashed
def test_an_unquoted_template_is_one_problem_that_says_to_quote() -> None:
    text = routine(DONE + "  message: {{ inputs.email }}\n")
    problem = only(problems(text))
    assert problem.line == line_of(text, "message:")
    assert "quotes around a value that starts with '{'" in problem.expected


def test_a_list_as_a_key_is_one_problem() -> None:
    text = routine(DONE, header="name: a\ndescription: d\n? [x, y]\n: 1\n")
    problem = only(problems(text))
    assert (problem.line, problem.column) == (3, 3) and "a key that is a list" in problem.message


def test_a_recursive_anchor_is_one_problem() -> None:
    problem = only(problems("name: a\ndescription: d\nsteps: &s\n  - *s\n"))
    assert problem.line == 4 and "contains itself" in problem.message


def test_a_date_that_is_no_date_is_one_problem() -> None:
    text = routine(DONE, top="constants: {start: 2026-13-45}\n")
    problem = only(problems(text))
    assert problem.line == line_of(text, "constants") and "month" in problem.message


def test_validate_goes_on_after_a_file_yaml_cannot_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_unquoted.yaml").write_text(routine(DONE + "  message: {{ inputs.email }}\n"))
    (tmp_path / "b_recursive.yaml").write_text("name: a\ndescription: d\nsteps: &s\n  - *s\n")
    (tmp_path / "c_bad.yaml").write_text(routine(DONE, top="stepz: []\n"))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert [Path(line.split(":")[0]).name for line in out.splitlines()] == [
        "a_unquoted.yaml", "b_recursive.yaml", "c_bad.yaml"]


# ---------------------------------------------------------------- B: dates are text
def test_unquoted_dates_are_read_as_iso_text() -> None:
    text = routine("""\
        - id: note
          name: Note
          description: Note the day.
          tool: notify
          args: {email: "${inputs.email}", text: 2026-03-02}
        """, DONE, top="constants: {opens: 2026-03-02, at: 2026-01-02 10:30:00}\n",
                   header=HEADER + "  day: {type: string, description: d, required: false, "
                   "default: 2026-01-02}\n")
    loaded = load_routine_text(text)
    assert loaded.routine.steps[0].args["text"] == "2026-03-02"
    assert loaded.routine.constants == {"opens": "2026-03-02", "at": "2026-01-02T10:30:00"}
    assert loaded.routine.inputs["day"].default == "2026-01-02"
    json.dumps(loaded.routine.model_dump())  # what a run sends and records
    assert check_routine(loaded, TOOLS) == []


# ---------------------------------------------------------------- C: undefined is no value
def test_a_bare_undefined_value_is_not_none() -> None:
    with pytest.raises(jinja2.UndefinedError):
        compile_when("inputs.urgent")(inputs={}, steps={})
    with pytest.raises(jinja2.UndefinedError):
        compile_when("steps.find.output")(inputs={}, steps={})
    assert compile_when("inputs.urgent")(inputs={"urgent": None}, steps={}) is None
    assert compile_when("inputs.urgent is defined")(inputs={}, steps={}) is False


# ---------------------------------------------------------------- D: as the sandbox judges
def test_a_method_the_sandbox_refuses_is_refused_by_validate() -> None:
    text = routine(FIND, DONE + "  message: \"For {{ inputs.email.replace('@', ' at ') }}\"\n")
    problem = only(problems(text))
    assert problem.line == line_of(text, "message:") and "replace()" in problem.message


def test_methods_of_typed_values_and_bound_names_validate() -> None:
    text = routine(FIND, """\
        - id: kind
          name: Contractor?
          description: Contractors get a note.
          branch:
            - condition: a contractor
              when: "steps.find.output.email.endswith('@contractor.example.com')"
              steps:
                - id: note
                  name: Note
                  description: Note it.
                  tool: notify
                  args: {email: "${steps.find.output.email}", text: contractor}
            - condition: otherwise
              steps: []
        - id: done
          name: Done
          description: Answer.
          finish: true
          message: >-
            {% with who = steps.find.output.name %}{{ who }}{% endwith %}
            {% set domain %}{{ inputs.email.split('@') | last }}{% endset %}{{ domain }}
            {% macro show(x) %}{{ x }}{% endmacro %}{{ show(domain) }}
            {% for k, v in steps.find.output.items() %}{{ k }}={{ v }} {% endfor %}
        """)
    assert problems(text) == []


def test_a_method_a_typed_value_lacks_is_a_problem() -> None:
    text = routine(FIND, DONE + "  message: \"{{ steps.find.output.employee_id.upper() }}\"\n")
    problem = only(problems(text))
    assert "has no method upper()" in problem.message


@pytest.mark.parametrize("tag", ["{% include 'x.txt' %}", "{% import 'x' as y %}",
                                 "{% extends 'base' %}", "{% from 'x' import y %}"])
def test_templates_that_read_other_templates_are_refused(tag: str) -> None:
    tree, why = parse_template(f"Hello {tag}")
    assert tree is None and "reads no other template" in why
    text = routine(DONE + f"  message: \"{tag}\"\n")
    assert "reads no other template" in only(problems(text)).message


def compute(expression: str) -> str:
    return routine(f"""\
        - id: share
          name: Share
          description: Cost per seat.
          compute:
            per_seat: "{expression}"
        """, DONE, top="constants: {seats: 0}\n")


@pytest.mark.parametrize("expression", ["100 / constants.seats", "'a' + 1", "[1, 2] + 3"])
def test_an_expression_that_fails_in_every_run_is_a_problem(expression: str) -> None:
    text = compute(expression)
    problem = only(problems(text))
    assert problem.line == line_of(text, "per_seat") and "fails in every run" in problem.message


def test_expressions_over_constants_that_work_or_need_the_run_are_fine() -> None:
    assert problems(compute("100 / (constants.seats + 1)")) == []
    assert problems(compute("100 / inputs.urgent")) == []  # decided by the run's values


# ---------------------------------------------------------------- E: jumps and loops
def test_a_next_out_of_a_loop_body_is_a_problem() -> None:
    text = routine(FIND, LOOP, """\
        - id: each
          name: Each system
          description: Tell each owner until crm.
          for_each: ${steps.systems.output.systems}
          as: sys
          steps:
            - id: check
              name: Is it crm?
              description: Stop at crm.
              branch:
                - condition: it is crm
                  when: sys.system == 'crm'
                  next: stopped
                - condition: otherwise
                  steps:
                    - id: tell
                      name: Tell
                      description: Tell the owner.
                      tool: notify
                      args: {email: "${sys.owner_email}", text: new user}
        """, DONE, """\
        - id: stopped
          name: Stopped
          description: Say we stopped.
          finish: true
        """)
    problem = only(problems(text))
    assert problem.line == line_of(text, "next: stopped")
    assert "out of the body of for_each 'each'" in problem.message
    assert "'stopped'" in problem.message


def test_a_next_into_a_loop_body_is_a_problem() -> None:
    text = routine(FIND, LOOP, """\
        - id: shortcut
          name: Shortcut
          description: Urgent ones skip ahead.
          branch:
            - condition: urgent
              when: inputs.urgent == true
              next: tell
            - condition: otherwise
              steps: []
        - id: each
          name: Each system
          description: Tell each owner.
          for_each: ${steps.systems.output.systems}
          as: sys
          steps:
            - id: tell
              name: Tell
              description: Tell the owner.
              tool: notify
              args: {email: "${sys.owner_email}", text: new user}
        """, DONE)
    problem = only(problems(text))
    assert problem.line == line_of(text, "next: tell")
    assert "into the body of for_each 'each'" in problem.message


# ---------------------------------------------------------------- G: hand-off types
TARGET = load_routine_text(routine(DONE, header="name: provision\ndescription: Provision.\n", top="""\
    inputs:
      employee_id: {type: integer, description: the employee id}
      level: {type: string, description: the level, required: false, enum: [basic, admin]}
    """)).routine


def test_hand_off_arguments_are_type_checked_against_the_target_inputs() -> None:
    text = routine(FIND, """\
        - id: pass_on
          name: Pass on
          description: Hand over to provisioning.
          handoff: provision
          args: {employee_id: "${steps.find.output.name}", level: root}
        """)
    found = problems(text, {"provision": TARGET})
    assert len(found) == 2 and all(p.line == line_of(text, "args: {employee_id")
                                   for p in found)
    assert any("'employee_id' of routine 'provision' takes integer" in p.message for p in found)
    assert any("'root' is not an allowed value" in p.message for p in found)
    ok = text.replace("output.name", "output.employee_id").replace("level: root", "level: admin")
    assert problems(ok, {"provision": TARGET}) == []


# ---------------------------------------------------------------- H: enums in unions, lists
def test_literals_outside_optional_and_list_enums_are_problems() -> None:
    text = routine("""\
        - id: screen
          name: Screen
          description: Screen the customer.
          tool: screen
          args: {customer_id: 7, doc: drivers_license, level: extreme, lists: [ofac, interpol]}
        """, DONE)
    found = problems(text)
    assert sorted(p.message for p in found) == [
        "literal 'drivers_license' is not an allowed value",
        "literal 'extreme' is not an allowed value",
        "literal 'interpol' is not an allowed value"]
    assert all(p.line == line_of(text, "customer_id: 7") for p in found)
    good = text.replace("drivers_license", "passport").replace("extreme", "enhanced") \
        .replace("interpol", "un")
    assert problems(good) == []


# ---------------------------------------------------------------- J: loops, strictness
def test_loop_items_from_a_constant_are_checked() -> None:
    text = routine("""\
        - id: each
          name: Each
          description: Each owner.
          for_each: ${constants.owners}
          as: o
          until: o.sys == 'crm'
          steps:
            - id: tell
              name: Tell
              description: Tell.
              tool: notify
              args: {email: "${o.email}", text: "${o.nope}"}
        """, DONE, top="constants:\n  owners: [{email: a@x, sys: crm}, {email: b@x, sys: wiki}]\n")
    problem = only(problems(text))
    assert problem.line == line_of(text, "o.nope") and "'nope'" in problem.message
    assert problems(text.replace("o.nope", "o.sys")) == []


@pytest.mark.parametrize("name", ["none", "inputs", "steps", "constants", "loop"])
def test_a_loop_item_may_not_take_a_reserved_name(name: str) -> None:
    text = routine(LOOP, f"""\
        - id: each
          name: Each
          description: Each system.
          for_each: ${{steps.systems.output.systems}}
          as: {name}
          steps:
            - id: tell
              name: Tell
              description: Tell.
              tool: notify
              args: {{email: a@x, text: hello}}
        """, DONE)
    problem = only(problems(text))
    assert problem.line == line_of(text, "as: ") and "reserved name" in problem.message


@pytest.mark.parametrize("key, value", [("finish", "'yes'"), ("finish", "1"),
                                        ("max_visits", "'2'"), ("required", "'no'")])
def test_the_format_is_as_strict_as_its_json_schema(key: str, value: str) -> None:
    text = routine(DONE.replace("finish: true", f"finish: {value}") if key == "finish" else
                   DONE + f"  max_visits: {value}\n")
    if key == "required":
        text = routine(DONE).replace("required: false", f"required: {value}")
    problem = only(problems(text))
    assert f"{key}: Input should be a valid" in problem.message


def test_confirm_is_text_or_a_boolean_not_a_number() -> None:
    text = routine(FIND + "  confirm: 1\n", DONE)
    found = problems(text)
    assert found and all(p.line == line_of(text, "confirm: 1") for p in found)


def test_an_enum_of_yes_and_no_says_to_quote() -> None:
    text = routine(DONE, header=HEADER + "  answer: {type: string, description: d, "
                   "enum: [yes, no]}\n")
    found = problems(text)
    assert len(found) == 2 and all("quotes around yes, no, on or off" in p.expected
                                   for p in found)


# ---------------------------------------------------------------- K: keys YAML reads as booleans
def test_an_unquoted_on_key_says_it_is_a_boolean_where_it_is() -> None:
    text = routine(FIND.replace('args: {email: "${inputs.email}"}', 'args:\n    email: '
                                '"${inputs.email}"\n    on: 2026-01-02'), DONE)
    problem = only(problems(text))
    assert (problem.line, problem.column) == (line_of(text, "on: 2026"), 7)
    assert "'on'" in problem.message and "boolean" in problem.message
    assert "quotes around the key ('on': ...)" in problem.expected
