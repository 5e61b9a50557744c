"""Tests of routine validation: every check reports the exact file:line:column.

Routines are written as YAML text. ``routine_text(...)`` puts a fixed five-line
header in front of the steps, so the first step's ``- id:`` is on line 6 with
``id`` at column 5, a step's keys are at column 5 and its ``args`` at column 7.
Mapping entries are reported at their key, list items at their first key.
"""

from __future__ import annotations

import re
import textwrap
from datetime import date
from pathlib import Path

import pytest

from routine import ToolRegistry, tool
from routine.cli.commands import main
from routine.errors import SpecError
from routine.spec import LoadedRoutine, load_routine, load_routine_text
from routine.spec.toolsets import registry_for
from routine.spec.validate import Problem, check_routine

ROOT = Path(__file__).resolve().parent.parent
ROUTINE_FILES = sorted((ROOT / "routines").rglob("*.yaml"))

HEADER = """\
name: r
description: A routine under test.
toolsets: [routine_tools.hr]
inputs: {employee_name: {type: string, description: full name}}
steps:
"""

# Occupies lines 6-11 when it is the first step.
FIND = """
- id: find_employee
  name: Find the employee
  description: Look the employee up by name.
  tool: find_employee
  args:
    name: ${inputs.employee_name}
"""

# Four lines.
ANSWER = """
- id: answer
  name: Answer
  description: Answer the user.
  finish: true
"""


# ---------------------------------------------------------------- helpers
def routine_text(*parts: str) -> str:
    """HEADER followed by the steps in ``parts`` (each dedented, then indented by two)."""
    steps = "".join(textwrap.dedent(part).lstrip("\n") for part in parts)
    return HEADER + textwrap.indent(steps, "  ")


def load(text: str) -> LoadedRoutine:
    return load_routine_text(text, "r.yaml")


def check(text: str, registry: ToolRegistry | None = None) -> list[Problem]:
    """Load ``text`` and run every check; the registry defaults to the routine's toolsets."""
    loaded = load(text)
    if registry is None:
        registry, problems = registry_for(loaded)
        assert problems == []
    return check_routine(loaded, registry)


def spec_problems(text: str) -> list[Problem]:
    """The problems that make ``text`` fail to load."""
    with pytest.raises(SpecError) as info:
        load(text)
    assert info.value.problems, "a SpecError must carry its problems"
    return info.value.problems


def single(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert problems[0].file == "r.yaml"
    return problems[0]


def at(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.column


# ---------------------------------------------------------------- a clean routine
def test_minimal_routine_has_no_problems() -> None:
    assert check(routine_text(FIND, ANSWER)) == []


@pytest.mark.parametrize("path", ROUTINE_FILES, ids=lambda p: p.name)
def test_bundled_routines_have_no_problems(path: Path) -> None:
    loaded = load_routine(path)
    registry, problems = registry_for(loaded)
    assert problems == []
    assert check_routine(loaded, registry) == []


def test_there_are_bundled_routines() -> None:
    assert len(ROUTINE_FILES) >= 3


# ---------------------------------------------------------------- loading: YAML and schema
def test_yaml_syntax_error_points_at_the_error() -> None:
    text = textwrap.dedent("""\
        name: r
        description: d
        steps:
          - id: a
            name: [unclosed
            description: d
        """)
    problem = single(spec_problems(text))
    assert at(problem) == (6, 16)  # the ':' where ',' or ']' was expected
    assert problem.message.startswith("YAML syntax:")
    assert "expected ',' or ']'" in problem.message
    assert "closing bracket" in problem.expected and "quotes" in problem.expected


def test_yaml_loading_never_constructs_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = textwrap.dedent(f"""\
        name: r
        description: !!python/object/apply:os.system ["touch {marker}"]
        steps: []
        """)
    problem = single(spec_problems(text))
    assert at(problem) == (2, 14)
    assert "could not determine a constructor" in problem.message
    assert "python/object/apply:os.system" in problem.message
    assert not marker.exists()


def test_a_document_that_is_not_a_mapping() -> None:
    problem = single(spec_problems("- just\n- a list\n"))
    assert at(problem) == (1, 1)
    assert problem.message == "the file is not a YAML mapping"


def test_unknown_key_in_a_step() -> None:
    text = routine_text("""
        - id: answer
          name: Answer
          description: Answer the user.
          finish: true
          toool: find_employee
        """)
    problem = single(spec_problems(text))
    assert at(problem) == (10, 5)
    assert problem.message == "unknown key 'toool' at steps.0.toool"
    assert "documented keys" in problem.expected


def test_unknown_key_in_a_nested_branch_step() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Pick a way.
          branch:
            - condition: always
              steps:
                - id: inner
                  name: Inner
                  description: A nested step with a typo.
                  toool: get_employee
        """, ANSWER)
    problem = single(spec_problems(text))
    assert at(problem) == (21, 13)
    assert problem.message == "unknown key 'toool' at steps.1.branch.0.steps.0.toool"


def test_unknown_top_level_key() -> None:
    text = routine_text(ANSWER) + "extra: 1\n"
    problem = single(spec_problems(text))
    assert at(problem) == (10, 1)
    assert problem.message == "unknown key 'extra' at extra"


def test_duplicate_mapping_key() -> None:
    text = routine_text("""
        - id: answer
          name: Answer
          description: Answer the user.
          name: Again
          finish: true
        """)
    problem = single(spec_problems(text))
    assert at(problem) == (9, 5)  # the second 'name'
    assert problem.message == "duplicate key 'name'"
    assert problem.expected == "each key once"


def test_step_with_neither_tool_branch_nor_finish() -> None:
    text = routine_text(FIND, """
        - id: idle
          name: Idle
          description: Does nothing.
        """, ANSWER)
    problem = single(spec_problems(text))
    assert at(problem) == (12, 5)
    assert problem.message.startswith("steps.1:")
    assert "exactly one of 'tool', 'branch', 'finish: true', 'ask', 'compute', 'for_each' " \
        "or 'handoff' (got none of them)" in problem.message


def test_step_with_both_tool_and_finish() -> None:
    text = routine_text("""
        - id: answer
          name: Answer
          description: Answer the user.
          tool: find_employee
          finish: true
        """)
    problem = single(spec_problems(text))
    assert at(problem) == (6, 5)
    assert "(got tool and finish)" in problem.message


def test_missing_required_key() -> None:
    text = routine_text("""
        - id: answer
          name: Answer
          finish: true
        """)
    problem = single(spec_problems(text))
    assert at(problem) == (6, 5)  # the step that lacks it
    assert problem.message == "missing required key steps.0.description"
    assert problem.expected == "this field to be present"


def test_every_loading_problem_is_reported_at_once() -> None:
    text = routine_text("""
        - id: first
          name: First
          name: Twice
          description: d
          finish: true
        - id: second
          name: Second
          description: d
          toool: x
          finish: true
        - id: third
          name: Third
          description: d
        """)
    problems = spec_problems(text)
    assert [(at(p), p.message.split(":")[0]) for p in problems] == [
        ((8, 5), "duplicate key 'name'"),
        ((14, 5), "unknown key 'toool' at steps.1.toool"),
        ((16, 5), "steps.2"),
    ]


# ---------------------------------------------------------------- tools and arguments
def test_unknown_tool_suggests_close_names() -> None:
    problem = single(check(routine_text("""
        - id: find_employee
          name: Find the employee
          description: Look the employee up by name.
          tool: find_employe
          args:
            name: ${inputs.employee_name}
        """, ANSWER)))
    assert at(problem) == (9, 5)
    assert problem.message == "unknown tool 'find_employe'"
    assert problem.expected.startswith("did you mean find_employee")


def test_unknown_tool_without_close_names() -> None:
    problem = single(check(routine_text("""
        - id: launch
          name: Launch
          description: Nothing like it exists.
          tool: zzzz
        """, ANSWER)))
    assert at(problem) == (9, 5)
    assert problem.expected == "one of the registered tools (25 known)"


def test_argument_the_tool_does_not_take() -> None:
    problem = single(check(routine_text(FIND, """
        - id: manager
          name: Manager
          description: Get the manager.
          tool: get_employee
          args:
            employee_id: ${steps.find_employee.output.manager_id}
            department: sales
        """, ANSWER)))
    assert at(problem) == (18, 7)
    assert problem.message == "tool 'get_employee' takes no argument 'department'"
    assert problem.expected == "one of: employee_id"


def test_required_argument_without_source_reported_at_args() -> None:
    problem = single(check(routine_text(FIND, """
        - id: balance
          name: Balance
          description: Check the balance.
          tool: get_leave_balance
          args:
            leave_type: annual
        """, ANSWER)))
    assert at(problem) == (16, 5)  # the 'args' key
    assert problem.message == \
        "required argument 'employee_id' of tool 'get_leave_balance' has no source"


def test_required_argument_without_any_args_reported_at_tool() -> None:
    problem = single(check(routine_text(FIND, """
        - id: manager
          name: Manager
          description: Get the manager.
          tool: get_employee
        """, ANSWER)))
    assert at(problem) == (15, 5)  # the 'tool' key
    assert "'employee_id' of tool 'get_employee' has no source" in problem.message


# ---------------------------------------------------------------- references
def manager_step(employee_id: str) -> str:
    """A get_employee step (lines 12-17 after FIND; its argument on line 17, column 7)."""
    return f"""
        - id: manager
          name: Manager
          description: Get the manager.
          tool: get_employee
          args:
            employee_id: {employee_id}
        """


@pytest.mark.parametrize("value", ["${steps.find_employee}", "${steps.find-employee.output}",
                                   "${employee_name}"])
def test_malformed_reference(value: str) -> None:
    problem = single(check(routine_text(FIND, manager_step(value), ANSWER)))
    assert at(problem) == (17, 7)
    assert problem.message.startswith(f"malformed reference {value!r}")
    assert "${inputs.NAME}, ${steps.STEP_ID.output" in problem.message + problem.expected


def test_unclosed_reference() -> None:
    text = routine_text("""
        - id: find_employee
          name: Find the employee
          description: Look the employee up by name.
          tool: find_employee
          args:
            name: "${inputs.employee_name"
        """, ANSWER)
    problem = single(check(text))
    assert at(problem) == (11, 7)
    assert problem.message.startswith("unclosed '${'")


def test_reference_to_a_missing_input() -> None:
    problem = single(check(routine_text("""
        - id: find_employee
          name: Find the employee
          description: Look the employee up by name.
          tool: find_employee
          args:
            name: ${inputs.employee}
        """, ANSWER)))
    assert at(problem) == (11, 7)
    assert problem.message == "${inputs.employee} names no input of this routine"
    assert problem.expected == "one of: employee_name"


@pytest.mark.parametrize("spec,message,expected", [
    ("{type: string, description: d, required: false, default: urgent, enum: [low, high]}",
     "input 'priority': default 'urgent' is not one of its enum values", "one of 'low', 'high'"),
    ("{type: integer, description: d, required: false, default: abc}",
     "input 'priority': default 'abc' is a string, not an integer",
     "an integer (the input's type)"),
    ("{type: integer, description: d, enum: [1, two]}",
     "input 'priority': enum value 'two' is a string, not an integer",
     "integer values (the input's type)"),
])
def test_an_input_default_or_enum_value_of_the_wrong_kind(spec: str, message: str,
                                                           expected: str) -> None:
    # validated 'ok' before, then every run failed: the routine fixed a value the tool refuses
    text = routine_text(FIND, ANSWER).replace(
        "inputs: {employee_name: {type: string, description: full name}}",
        "inputs:\n  employee_name: {type: string, description: full name}\n"
        f"  priority: {spec}")
    problem = single(check(text))
    assert (problem.message, problem.expected) == (message, expected)
    assert problem.line == 6


@pytest.mark.parametrize("value, says", [
    ("${step.find_employee.output.name}", "'step' is no for_each item here (did you mean "
     "'steps'?)"),
    ("${input.employee_name}", "(did you mean 'inputs'?)"),
    ("${steps.find_employee.output.items[0].id}",
     "a list is indexed with .N in a reference (${steps.find_employee.output.items.0.id})"),
])
def test_a_mistyped_reference_says_what_was_meant(value: str, says: str) -> None:
    problem = single(check(routine_text(FIND.replace("${inputs.employee_name}", value),
                                        ANSWER)))
    assert says in problem.message and at(problem) == (11, 7)
    assert "expected expected" not in str(problem)


def test_reference_to_a_missing_step() -> None:
    problem = single(check(routine_text(FIND, manager_step("${steps.lookup.output.id}"),
                                        ANSWER)))
    assert at(problem) == (17, 7)
    assert problem.message == "${steps.lookup.output.id} refers to missing step 'lookup'"


def test_reference_to_a_later_step() -> None:
    problem = single(check(routine_text("""
        - id: manager
          name: Manager
          description: Get the manager.
          tool: get_employee
          args:
            employee_id: ${steps.find_employee.output.manager_id}
        """, FIND, ANSWER)))
    assert at(problem) == (11, 7)
    assert problem.message == ("${steps.find_employee.output.manager_id} refers to step "
                               "'find_employee', which does not run before step 'manager'")
    assert problem.expected == "a reference to an EARLIER step"


def test_reference_to_the_step_itself() -> None:
    problem = single(check(routine_text(FIND, manager_step("${steps.manager.output.id}"),
                                        ANSWER)))
    assert at(problem) == (17, 7)
    assert "which does not run before step 'manager'" in problem.message


def test_reference_to_a_step_on_another_branch() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Maybe look up the manager.
          branch:
            - condition: the employee has a manager
              steps:
                - id: manager
                  name: Manager
                  description: Get the manager.
                  tool: get_employee
                  args:
                    employee_id: ${steps.find_employee.output.manager_id}
            - condition: otherwise
        - id: again
          name: Again
          description: Use the manager (who may not have been looked up).
          tool: get_employee
          args:
            employee_id: ${steps.manager.output.id}
        """, ANSWER)
    problem = single(check(text))
    assert at(problem) == (30, 7)
    assert problem.message == ("${steps.manager.output.id}: step 'manager' may not have run "
                               "before step 'again' (it is on another branch or can be skipped)")
    assert problem.expected == ("a step that runs on every path to this one (or ${vars.NAME} "
                                "set on every path)")


def test_reference_from_one_option_to_a_sibling_option() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Two exclusive ways.
          branch:
            - condition: one way
              steps:
                - id: manager
                  name: Manager
                  description: Get the manager.
                  tool: get_employee
                  args:
                    employee_id: ${steps.find_employee.output.manager_id}
                - id: done_one
                  name: Done
                  description: Answer.
                  finish: true
            - condition: the other way
              steps:
                - id: other
                  name: Other
                  description: Uses the other option's result.
                  tool: get_employee
                  args:
                    employee_id: ${steps.manager.output.id}
                - id: done_two
                  name: Done
                  description: Answer.
                  finish: true
        """)
    problem = single(check(text))
    assert at(problem) == (35, 15)
    assert "step 'manager' may not have run before step 'other'" in problem.message


def test_reference_to_a_field_the_output_does_not_have() -> None:
    problem = single(check(routine_text(
        FIND, manager_step("${steps.find_employee.output.salary}"), ANSWER)))
    assert at(problem) == (17, 7)
    assert problem.message == (
        "${steps.find_employee.output.salary}: the output has no field "
        "'salary' (it has: id, name, email, title, department, department_id, manager_id)")
    assert problem.expected == "a field of 'find_employee''s output"


def test_reference_to_a_branch_steps_output() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Either way, go on.
          branch:
            - condition: one way
            - condition: the other way
        """, manager_step("${steps.route.output.id}"), ANSWER)
    problem = single(check(text))
    assert at(problem) == (23, 7)
    assert problem.message == ("${steps.route.output.id}: step 'route' is a branch step and "
                               "has no output")
    assert problem.expected == "a reference to a tool step (compute values: ${vars.NAME})"


def test_reference_to_a_finish_steps_output() -> None:
    # A finish step ends the run, so it never runs before another step; the
    # problem is reported as a step that may not have run.
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Stop early or go on.
          branch:
            - condition: stop
              steps:
                - id: stop
                  name: Stop
                  description: Answer now.
                  finish: true
            - condition: go on
        """, manager_step("${steps.stop.output.id}"), ANSWER)
    problem = single(check(text))
    assert at(problem) == (28, 7)
    assert problem.message.startswith("${steps.stop.output.id}: step 'stop' may not have run")


@pytest.mark.parametrize("value", ["${steps.find_employee.output.name}",
                                   "${inputs.employee_name}"])
def test_type_mismatch_between_reference_and_parameter(value: str) -> None:
    problem = single(check(routine_text(FIND, manager_step(value), ANSWER)))
    assert at(problem) == (17, 7)
    assert problem.message == (f"type mismatch: {value} is string, but argument 'employee_id' "
                               "of 'get_employee' takes integer")
    # what the value is, from the tool's docstring: an id of the right name but the wrong
    # kind is not mended by the type alone (the 1.5B passed an employee id as a name)
    assert problem.expected == "integer: the employee's numeric id."


def test_reference_inside_a_longer_string_is_text() -> None:
    value = '"id ${steps.find_employee.output.id}"'
    problem = single(check(routine_text(FIND, manager_step(value), ANSWER)))
    assert at(problem) == (17, 7)
    assert problem.message.startswith("type mismatch: ${steps.find_employee.output.id} is string")


def test_compatible_references_pass() -> None:
    # manager_id is int | None; an integer output also fits a number parameter.
    @tool
    def count(name: str) -> int:
        """Count."""
        return 1

    @tool
    def scale(factor: float) -> float:
        """Scale."""
        return factor

    text = routine_text(FIND, manager_step("${steps.find_employee.output.manager_id}"), ANSWER)
    assert check(text) == []
    text = routine_text("""
        - id: count
          name: Count
          description: d
          tool: count
          args: {name: "${inputs.employee_name}"}
        - id: scale
          name: Scale
          description: d
          tool: scale
          args: {factor: "${steps.count.output}"}
        """, ANSWER)
    assert check(text, ToolRegistry(count, scale)) == []


# ---------------------------------------------------------------- literals
@tool
def schedule(days: int, urgent: bool, ratio: float = 1.0) -> str:
    """Schedule something.

    Args:
        days: how many days.
        urgent: whether it is urgent.
        ratio: a factor.
    """
    return "ok"


def schedule_text(days: str, urgent: str, ratio: str = "2") -> str:
    return routine_text(f"""
        - id: plan
          name: Plan
          description: Schedule it.
          tool: schedule
          args:
            days: {days}
            urgent: {urgent}
            ratio: {ratio}
        """, ANSWER)


def test_literals_of_the_right_type_pass() -> None:
    assert check(schedule_text("3", "true", "2"), ToolRegistry(schedule)) == []


def test_literal_of_the_wrong_type() -> None:
    problems = check(schedule_text("three", "1", "2.5"), ToolRegistry(schedule))
    assert [(at(p), p.message, p.expected) for p in problems] == [
        ((11, 7), "literal 'three' is string, but argument 'days' of 'schedule' takes integer",
         "integer: how many days."),
        ((12, 7), "literal 1 is integer, but argument 'urgent' of 'schedule' takes boolean",
         "boolean: whether it is urgent."),
    ]


def test_float_literal_for_an_integer_parameter() -> None:
    problem = single(check(schedule_text("2.5", "false"), ToolRegistry(schedule)))
    assert at(problem) == (11, 7)
    assert problem.message == \
        "literal 2.5 is number, but argument 'days' of 'schedule' takes integer"


def test_literal_outside_an_enum() -> None:
    problem = single(check(routine_text(FIND, """
        - id: balance
          name: Balance
          description: Check the balance.
          tool: get_leave_balance
          args:
            employee_id: ${steps.find_employee.output.id}
            leave_type: holiday
        """, ANSWER)))
    assert at(problem) == (18, 7)
    assert problem.message == "literal 'holiday' is not an allowed value"
    assert problem.expected == "one of 'annual', 'sick', 'parental', 'unpaid'"


# ---------------------------------------------------------------- control flow
def test_unreachable_step_after_a_finish_step() -> None:
    problem = single(check(routine_text(FIND, ANSWER, """
        - id: afterwards
          name: Afterwards
          description: Never runs.
          finish: true
        """)))
    assert at(problem) == (16, 5)
    assert problem.message.startswith("step 'afterwards' is unreachable")
    assert problem.expected == "every step to be reachable"


def test_cycle_through_next_to_an_earlier_step() -> None:
    text = routine_text(FIND, """
        - id: retry
          name: Retry
          description: Try again or answer.
          branch:
            - condition: not found
              next: find_employee
            - condition: found
        """, ANSWER)
    problem = single(check(text))
    assert at(problem) == (17, 9)  # the 'next' that jumps back
    assert problem.message == ("'next' jumps back to step 'find_employee': a loop that could "
                               "run forever")
    assert "max_visits on step 'find_employee'" in problem.expected
    # with a visit limit on the target, the loop is bounded and allowed
    bounded = re.sub(r"( *)name: Find the employee\n", r"\g<0>\1max_visits: 3\n", text)
    assert bounded != text and check(bounded) == []


def test_next_naming_an_unknown_step() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Jump somewhere.
          branch:
            - condition: skip
              next: nowhere
            - condition: go on
        """, ANSWER)
    problem = single(check(text))
    assert at(problem) == (17, 9)
    assert problem.message == "'next' names unknown step 'nowhere'"
    assert problem.expected == "the id of a step"


def test_next_to_a_later_step_is_fine() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Maybe skip the lookup.
          branch:
            - condition: skip
              next: answer
            - condition: look up
        """, manager_step("${steps.find_employee.output.manager_id}"), ANSWER)
    assert check(text) == []


def test_path_that_ends_without_a_finish_step() -> None:
    problem = single(check(routine_text(FIND)))
    assert at(problem) == (6, 5)
    assert problem.message == \
        "the routine can end after step 'find_employee' without a finish step"
    assert problem.expected == "every path to end in a step with 'finish: true'"


def test_branch_option_that_ends_without_a_finish_step() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: One option answers, the other just stops.
          branch:
            - condition: answer
              steps:
                - id: done
                  name: Done
                  description: Answer.
                  finish: true
            - condition: give up
        """)
    problem = single(check(text))
    assert at(problem) == (12, 5)
    assert problem.message == "the routine can end after step 'route' without a finish step"


def when_text(expression: str) -> str:
    """A branch whose first option has ``when: expression`` (line 17, column 9)."""
    return routine_text(FIND, f"""
        - id: route
          name: Route
          description: Decide.
          branch:
            - condition: the first way
              when: "{expression}"
            - condition: otherwise
        """, ANSWER)


def test_valid_when_expression() -> None:
    assert check(when_text("steps.find_employee.output.manager_id is none and "
                           "inputs.employee_name != ''")) == []


def test_when_expression_with_a_syntax_error() -> None:
    problem = single(check(when_text("steps.find_employee.output.id >")))
    assert at(problem) == (17, 9)
    assert problem.message.startswith("invalid expression 'steps.find_employee.output.id >'")
    assert "')'" not in problem.message  # the parentheses the parser adds are not shown
    assert problem.expected == "a Jinja expression over inputs, steps, vars and constants"


def test_when_expression_referring_to_a_missing_step() -> None:
    problem = single(check(when_text("steps.lookup.output.id > 1")))
    assert at(problem) == (17, 9)
    assert problem.message == "${steps.lookup.output.id} refers to missing step 'lookup'"


def test_when_expression_with_an_unknown_name() -> None:
    problem = single(check(when_text("balance > 1")))
    assert at(problem) == (17, 9)
    assert problem.message.startswith("unknown name 'balance' in expression")


def test_when_expression_referring_to_a_missing_field() -> None:
    problem = single(check(when_text("steps.find_employee.output.salary > 1")))
    assert at(problem) == (17, 9)
    assert "has no field 'salary'" in problem.message


def test_duplicate_step_ids() -> None:
    # Two options that both finish with the same id (the graph is otherwise sound).
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Two ways to answer.
          branch:
            - condition: one way
              steps:
                - id: done
                  name: Done
                  description: Answer.
                  finish: true
            - condition: the other way
              steps:
                - id: done
                  name: Done
                  description: Answer differently.
                  finish: true
        """)
    problem = single(check(text))
    assert at(problem) == (24, 13)  # the 'id' of the step that repeats the id
    assert problem.message == "duplicate step id 'done'"
    assert problem.expected == "unique step ids"


# ---------------------------------------------------------------- all problems at once
def test_every_problem_is_reported_in_one_call() -> None:
    text = routine_text("""
        - id: find_employee
          name: Find the employee
          description: d
          tool: find_employe
          args:
            name: ${inputs.nobody}
        - id: balance
          name: Balance
          description: d
          tool: get_leave_balance
          args:
            employee_id: ${steps.later.output.id}
            leave_type: holiday
            days: 3
        - id: later
          name: Later
          description: d
          tool: get_employee
        """, ANSWER, """
        - id: orphan
          name: Orphan
          description: d
          finish: true
        """)
    problems = check(text)
    assert len(problems) == 7, "\n".join(map(str, problems))
    assert sorted((at(p), p.message.split(" ")[0]) for p in problems) == [
        ((9, 5), "unknown"),  # unknown tool
        ((11, 7), "${inputs.nobody}"),  # missing input
        ((17, 7), "${steps.later.output.id}"),  # later step
        ((18, 7), "literal"),  # enum
        ((19, 7), "tool"),  # takes no argument 'days'
        ((23, 5), "required"),  # employee_id of get_employee
        ((28, 5), "step"),  # 'orphan' is unreachable
    ]


# ---------------------------------------------------------------- the CLI
def test_cli_validate_reports_problems_with_positions(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(routine_text("""
        - id: find_employee
          name: Find the employee
          description: d
          tool: find_employe
          args:
            name: ${inputs.nobody}
        """, ANSWER), encoding="utf-8")
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines == [
        f"{bad}:9:5: error: unknown tool 'find_employe' "
        "(expected did you mean find_employee, get_employee?)",
        f"{bad}:11:7: error: ${{inputs.nobody}} names no input of this routine "
        "(expected one of: employee_name)",
    ]
    assert "1 routine file checked: 2 problems" in captured.err


def test_cli_validate_reports_syntax_errors(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: r\ndescription: d\nsteps: [\n", encoding="utf-8")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bad}:4:1: error: YAML syntax:")


def test_cli_validate_bundled_routines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "routines")]) == 0
    captured = capsys.readouterr()
    assert "error:" not in captured.out
    assert f"{len(ROUTINE_FILES)} routine files checked: ok" in captured.err


# ---------------------------------------------------------------- known validator bugs
# Regressions: each of these was a validator bug found while writing this file.
def test_fixed_unknown_capitalised_top_level_key() -> None:
    problem = single(spec_problems(routine_text(ANSWER) + "Extra: 1\n"))
    assert at(problem) == (10, 1)


def test_fixed_unknown_capitalised_key_in_a_step() -> None:
    problem = single(spec_problems(routine_text("""
        - id: answer
          name: Answer
          description: Answer the user.
          finish: true
          Tool: x
        """)))
    assert (at(problem), problem.message) == ((10, 5), "unknown key 'Tool' at steps.0.Tool")


def test_fixed_problem_in_a_capitalised_input() -> None:
    text = routine_text(ANSWER).replace(
        "inputs: {employee_name: {type: string, description: full name}}",
        "inputs: {Name: {type: string}}")
    problem = single(spec_problems(text))
    assert problem.message == "missing required key inputs.Name.description"
    assert at(problem) == (4, 10)


def test_fixed_merge_key_override_is_not_a_duplicate() -> None:
    text = routine_text(FIND, """
        - id: annual
          name: Annual
          description: d
          tool: get_leave_balance
          args: &balance
            employee_id: 1
            leave_type: annual
        - id: sick
          name: Sick
          description: d
          tool: get_leave_balance
          args:
            <<: *balance
            leave_type: sick
        """, ANSWER)
    assert check(text) == []


def test_fixed_date_literal_for_a_date_parameter() -> None:
    @tool
    def book(start: date) -> str:
        """Book."""
        return "ok"

    text = routine_text("""
        - id: book
          name: Book
          description: d
          tool: book
          args:
            start: 2030-01-02
        """, ANSWER)
    assert check(text, ToolRegistry(book)) == []


def test_fixed_references_inside_list_and_mapping_arguments() -> None:
    @tool
    def lookup(name: str) -> int:
        """Look up."""
        return 1

    @tool
    def total(ids: list[int], meta: dict[str, str]) -> int:
        """Total."""
        return 1

    text = routine_text("""
        - id: lookup
          name: Lookup
          description: d
          tool: lookup
          args: {name: "${inputs.employee_name}"}
        - id: total
          name: Total
          description: d
          tool: total
          args:
            ids: ["${steps.lookup.output}", 2]
            meta: {who: "${inputs.employee_name}"}
        """, ANSWER)
    assert check(text, ToolRegistry(lookup, total)) == []


def test_fixed_duplicate_tool_step_id() -> None:
    text = routine_text(FIND, """
        - id: find_employee
          name: Again
          description: d
          tool: get_employe
          args:
            employee_id: 1
        """, ANSWER)
    problems = check(text)
    messages = sorted(p.message for p in problems)
    assert messages == ["duplicate step id 'find_employee'", "unknown tool 'get_employe'"]
    assert at(next(p for p in problems if "duplicate" in p.message)) == (12, 5)


def test_fixed_field_of_a_scalar_output() -> None:
    problem = single(check(routine_text(
        FIND, manager_step("${steps.find_employee.output.id.value}"), ANSWER)))
    assert at(problem) == (17, 7)


def test_otherwise_option_must_come_last() -> None:
    text = routine_text(FIND, """
        - id: route
          name: Route
          description: Two ways.
          branch:
            - condition: otherwise
              steps:
                - {id: a, name: A, description: a, finish: true}
            - condition: long name
              when: steps.find_employee.output.id > 3
              steps:
                - {id: b, name: B, description: b, finish: true}
        """)
    problem = single(check(text))
    assert "not the last option" in problem.message


@pytest.mark.parametrize("expression, why", [
    ("(9 ** (9 ** 8)) > 0", "too large"),
    ("('x' * 3000000000)|length > 0", "too large"),
    ("'x'|center(3000000000) != ''", "No filter named 'center'"),
    ("'%999999999d' % 1 != ''", "not allowed"),
    ("range(10 ** 9)|length > 0", "unknown name 'range'"),
])
def test_when_expressions_that_would_hang_or_exhaust_memory_are_refused(expression, why):
    import time

    started = time.perf_counter()
    problem = single(check(when_text(expression)))
    assert time.perf_counter() - started < 2  # it hung the run before
    assert at(problem) == (17, 9) and why in problem.message


@pytest.mark.parametrize("expression, why", [
    ("inputs.employee_name is nosuchtest", "No test named 'nosuchtest'"),
    ("inputs.employee_name | lenght > 2", "No filter named 'lenght'; did you mean 'length'?"),
    ("inputs.employee_name is defined and inputs.employee_name | uper == 'A'",
     "No filter named 'uper'; did you mean 'upper'?"),
])
def test_a_filter_or_test_that_does_not_exist_is_found_before_the_run(expression, why):
    """Jinja itself reports these only when the branch that uses them renders."""
    problem = single(check(when_text(expression)))
    assert at(problem) == (17, 9) and why in problem.message


def test_a_template_or_expression_reading_internal_names_is_refused_before_the_run() -> None:
    # the sandbox refused it at run time, where the answer's facts check went quietly off
    text = routine_text(FIND, ANSWER.replace(
        "finish: true", "finish: true\n  answer: \"{{ ''.__class__.__mro__[1] }}\""))
    problem = single(check(text))
    assert "'__mro__' cannot be read" in problem.message or "'__class__' cannot be read" in \
        problem.message
    problem = single(check(when_text("inputs.employee_name['__len__'] > 1")))
    assert "'__len__' cannot be read" in problem.message and at(problem) == (17, 9)


def test_an_expression_that_blows_up_only_on_run_values_is_bounded_at_run_time() -> None:
    from routine.run.tracking import StepTracker

    text = when_text("inputs.employee_name * 3000000000 != ''")
    assert check(text) == []  # it needs the input's value: decided when the run has it
    tracker = StepTracker(load(text).routine, {"employee_name": "Ann"})
    tracker.record("find_employee", {"id": 1})
    assert tracker.step.id == "route"  # not decided: the model picks, with the reason kept
    assert "too large" in tracker.branch_errors["route"]


def test_exponent_numbers_are_numbers_as_in_yaml_1_2() -> None:
    # PyYAML's YAML 1.1 read `1e-3` as text: a compute `rate * 3` then answered "1e-31e-31e-3"
    routine = load(HEADER + "  - {id: done, name: D, description: D, finish: true}\n"
                   "constants: {rate: 1e-3, big: 1E5, neg: -2.5e+2, quoted: '1e-3'}\n").routine
    assert routine.constants == {"rate": 0.001, "big": 100000.0, "neg": -250.0,
                                 "quoted": "1e-3"}
