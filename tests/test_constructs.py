"""The constructs real processes need — ask, confirm, for_each, on_error with paths that
rejoin, compute, constants, bounded loops back, hand-off, exact final messages — are
checked by `validate` with file:line like every other problem."""

from __future__ import annotations

import pytest

from routine.errors import SpecError
from routine.spec.format import routine_json_schema
from routine.spec.loader import load_routine_text
from routine.spec.validate import check_routine
from routine.tools.core import ToolRegistry
from tests.shop import CANCEL, shop


def problems(text: str, routines: dict | None = None) -> list:
    try:
        loaded = load_routine_text(text, "c.yaml")
    except SpecError as exc:
        return exc.problems
    return check_routine(loaded, ToolRegistry(shop), routines=routines)


def edit(old: str, new: str, text: str = CANCEL) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_full_routine_validates():
    assert problems(CANCEL) == []


def test_the_json_schema_documents_the_new_keys():
    step = routine_json_schema()["$defs"]["Step"]["properties"]
    for key in ("ask", "fills", "confirm", "on_decline", "on_error", "compute", "for_each",
                "as", "until", "handoff", "message", "max_visits"):
        assert key in step and step[key].get("description"), key
    assert "constants" in routine_json_schema()["properties"]


@pytest.mark.parametrize("old,new,fragment,message", [
    ("fills: [order_id, reason]", "fills: [order_id, reasons]", "fills: [order_id, reasons]",
     "'fills' names no input of this routine: 'reasons'"),
    ('amount: "${vars.amount}"', 'amount: "${vars.amout}"', "${vars.amout}",
     "${vars.amout}: no step sets 'amout'"),
    ('args: {product_id: "${item.product_id}"}', 'args: {product_id: "${item.sku}"}',
     "${item.sku}", "${item.sku}: the item has no field 'sku'"),
    ("constants.fee", "constants.fees", "constants.fees",
     "${constants.fees} names no constant of this routine"),
    ("for_each: ${steps.get_order.output.items}", "for_each: ${steps.get_order.output.total}",
     "for_each: ${steps.get_order.output.total}", "is number, not a list"),
    ("on_decline: kept", "on_decline: keep", "on_decline: keep",
     "'on_decline' names unknown step 'keep'"),
    ("{{ vars.customer.name }}", "{{ vars.customer.nam }}", "confirm:",
     "${vars.customer.nam}: the output has no field 'nam'"),
    ('"Order {{ inputs.order_id }} is cancelled', '"Order {{ inputs.order }} is cancelled',
     "message:", "${inputs.order} names no input of this routine"),
])
def test_each_construct_reports_its_mistakes_at_their_line(old, new, fragment, message):
    text = edit(old, new)
    found = problems(text)
    assert len(found) == 1, found
    assert message in found[0].message, found[0]
    assert found[0].line == line_of(text, fragment)


def test_a_loop_item_outside_its_loop_is_an_error():
    text = edit('args: {order_id: "${inputs.order_id}", amount: "${vars.amount}"}',
                'args: {order_id: "${item.product_id}", amount: "${vars.amount}"}')
    (problem,) = problems(text)
    assert "'item' is no for_each item here" in problem.message


def test_an_output_of_a_step_that_can_fail_over_is_read_through_its_name():
    # find_by_email may fail and find_by_name run instead: its own output may not exist...
    text = edit("{{ vars.customer.name }}", "{{ steps.find_by_email.output.name }}")
    (problem,) = problems(text)
    assert "may not have run" in problem.message and "fail over" in problem.message
    # ... but ${vars.customer} is set on both paths (the paths rejoin)
    assert problems(CANCEL) == []
    # a name only one path sets is not
    text = edit("        output: customer\n  - id: get_order",
                "        output: client\n  - id: get_order")
    (problem,) = problems(text)
    assert "'customer' may not be set before step 'cancel'" in problem.message


def test_a_loop_body_cannot_be_read_after_the_loop_but_the_loop_can():
    stock = edit("    message: \"Order {{ inputs.order_id }} is cancelled",
                 "    message: \"{{ steps.stock.output }} Order {{ inputs.order_id }} is cancelled")
    (problem,) = problems(stock)
    assert "step 'stock' may not have run" in problem.message
    loop = edit("    message: \"Order {{ inputs.order_id }} is cancelled",
                "    message: \"{{ steps.each_item.output | length }} items. Order "
                "{{ inputs.order_id }} is cancelled")
    assert problems(loop) == []


def test_a_jump_back_needs_a_visit_limit():
    text = edit("    on_decline: kept", "    on_decline: ask_order")
    text = text[:text.index("  - id: kept")]  # declining now asks again
    (problem,) = problems(text)
    assert "'on_decline' jumps back to step 'ask_order'" in problem.message
    assert "max_visits on step 'ask_order'" in problem.expected
    bounded = edit("    fills: [order_id, reason]\n", "    fills: [order_id, reason]\n"
                   "    max_visits: 2\n", text)
    assert problems(bounded) == []


def test_a_handoff_names_a_known_routine_and_its_inputs():
    text = edit("  - id: kept\n    name: Keep the order\n    description: The customer declined.\n"
                "    finish: true\n    message: \"Nothing was changed: order "
                "{{ inputs.order_id }} stays as it is.\"\n",
                "  - id: kept\n    name: Pass to returns\n    description: Hand over.\n"
                "    handoff: return_items\n    args: {order: \"${inputs.order_id}\"}\n")
    assert problems(text) == []  # no routine set given: not checked
    returns = load_routine_text(CANCEL.replace("cancel_with_refund", "return_item"), "r.yaml")
    found = problems(text, {"return_item": returns.routine})
    assert [p.message for p in found] == [
        "'handoff' names no known routine: 'return_items'"]
    assert "return_item" in found[0].expected
    found = problems(text.replace("return_items", "return_item"),
                     {"return_item": returns.routine})
    assert [p.message for p in found] == ["routine 'return_item' has no input 'order'"]


@pytest.mark.parametrize("step,message", [
    ("tool: refund\n    fills: [email]", "'fills' only applies to a step with 'ask'"),
    ("ask: Why?", "an 'ask' step needs 'fills'"),
    ("for_each: ${inputs.email}", "a 'for_each' step needs 'steps'"),
    ("finish: true\n    confirm: true", "'confirm' only applies to a step with 'tool'"),
    ("tool: refund\n    on_decline: done", "'on_decline' needs 'confirm'"),
])
def test_misplaced_keys_are_one_clear_error(step, message):
    text = edit('    tool: refund\n    args: {order_id: "${inputs.order_id}", amount: '
                '"${vars.amount}"}\n', f"    {step}\n")
    found = problems(text)
    assert any(message in p.message for p in found), found


def test_a_compute_expression_is_checked():
    text = edit('expr: "steps.get_order.output.total - constants.fee"',
                'expr: "steps.get_order.output.total - fee"')
    (problem,) = problems(text)
    assert "unknown name 'fee'" in problem.message
    text = edit('expr: "steps.get_order.output.total - constants.fee"',
                'expr: "steps.get_order.output.total | nosuchfilter"')
    (problem,) = problems(text)
    assert "nosuchfilter" in problem.message
