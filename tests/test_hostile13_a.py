"""Thirteenth hostile round (a): a freight-logistics company's own project — shipments,
customs holds, carrier bookings — with tools in the Python its developers write (dataclasses,
pydantic models, tuples, ``dict[str, X]``, dates, Decimals, UUIDs) and routines in the YAML
they write, through `routine validate` and a run with a scripted model. Each test fails on
the code before its fix: what validate let through, a run could never do."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
import uuid
import warnings
from decimal import Decimal

import pytest
from pydantic import BaseModel

from routine import RunContext, ToolRegistry, tool
from routine.errors import SpecError, ToolDefinitionError
from routine.spec import load_routine_text
from routine.spec.validate import check_routine
from routine.tools.sqlite import snapshot


class Leg(BaseModel):
    port: str
    eta: dt.datetime


@dataclasses.dataclass
class Hold:
    hold_id: uuid.UUID
    reason: str
    duty: Decimal


@tool
def pickup_window(depot: str) -> tuple[dt.date, dt.date]:
    """The first and last day a depot can hand a shipment over.

    Args:
        depot: the depot's code, e.g. RTM.
    """
    return dt.date(2026, 3, 2), dt.date(2026, 3, 5)


@tool
def legs_by_port(reference: str) -> dict[str, Leg]:
    """A shipment's legs, by the port each ends at."""
    return {"HAM": Leg(port="HAM", eta=dt.datetime(2026, 3, 4, 8))}


@tool
def book_carrier(reference: str, pickup: dt.date, *, weights: dict[str, int] | None = None,
                 window: tuple[dt.date, dt.date] | None = None) -> str:
    """Book a carrier for a shipment.

    Args:
        reference: the shipment's reference.
        pickup: the day to pick it up.
        weights: kilograms by parcel id.
        window: the first and last day it may be picked up.
    """
    return f"booked {reference} on {pickup}"


def _routine(args: str, first: str = "pickup_window", first_args: str = "{depot: RTM}") -> str:
    return ("name: book_pickup\ndescription: Book a carrier to pick a shipment up.\n"
            "inputs:\n  reference: {type: string, description: the shipment's reference}\n"
            "steps:\n"
            f"  - id: first\n    name: Look\n    description: Look it up.\n"
            f"    tool: {first}\n    args: {first_args}\n"
            "  - id: book\n    name: Book\n    description: Book the carrier.\n"
            f"    tool: book_carrier\n    args:\n{args}"
            "  - id: answer\n    name: Answer\n    description: Say when.\n    finish: true\n")


def _problems(text: str) -> list[str]:
    registry = ToolRegistry(pickup_window, legs_by_port, book_carrier)
    return [p.message for p in check_routine(load_routine_text(text, "book.yaml"), registry)]


def test_an_index_past_a_tuples_items_is_a_problem_not_a_stopped_run():
    """`${steps.first.output.5}` into a `tuple[date, date]` result validated clean (a tuple's
    schema has `prefixItems`, not `items`, and was read as "anything"), and every run
    stopped at that step: "it has no 5". Its items' types were unknown too: a date passed
    where an integer goes was not a mismatch."""
    text = _routine("      reference: ${inputs.reference}\n"
                    "      pickup: ${steps.first.output.5}\n")
    assert any("2 items (a tuple), so no item 5" in m for m in _problems(text))
    text = _routine("      reference: ${inputs.reference}\n"
                    "      pickup: ${steps.first.output.1}\n"
                    "      weights: {p1: '${steps.first.output.0}'}\n")
    assert _problems(text) == ["type mismatch: ${steps.first.output.0} is string, but "
                               "'weights.p1' of 'book_carrier' takes integer"]


def test_a_field_of_a_dicts_values_is_checked_against_their_schema():
    """A `dict[str, Leg]` result was "anything" past its key: `${steps.first.output.HAM.etaa}`
    (a misspelt field of every value) validated clean and stopped the run."""
    text = _routine("      reference: ${inputs.reference}\n"
                    "      pickup: ${steps.first.output.HAM.etaa}\n",
                    first="legs_by_port", first_args="{reference: '${inputs.reference}'}")
    assert any("has no field 'etaa' (it has: port, eta)" in m for m in _problems(text))
    text = _routine("      reference: ${steps.first.output.HAM.eta}\n"
                    "      pickup: 2026-03-02\n",
                    first="legs_by_port", first_args="{reference: '${inputs.reference}'}")
    assert _problems(text) == []


def test_a_dict_or_tuple_argument_built_around_references_is_checked_leaf_by_leaf():
    """`weights: {p1: ${steps...port}, p2: heavy}` for a `dict[str, int]` parameter validated
    clean: a mapping around references was checked only against a model's `properties`, so
    the routine fixed `{"p1": "HAM", "p2": "heavy"}` and the model's corrected call was
    refused until the run failed. A tuple of three days for `tuple[date, date]` too."""
    text = _routine("      reference: ${inputs.reference}\n      pickup: 2026-03-02\n"
                    "      weights: {p1: '${steps.first.output.HAM.port}', p2: heavy}\n",
                    first="legs_by_port", first_args="{reference: '${inputs.reference}'}")
    assert _problems(text) == [
        "type mismatch: ${steps.first.output.HAM.port} is string, but 'weights.p1' of "
        "'book_carrier' takes integer",
        "type mismatch: 'heavy' is string, but 'weights.p2' of 'book_carrier' takes integer"]
    text = _routine("      reference: ${inputs.reference}\n      pickup: 2026-03-02\n"
                    "      window: ['${steps.first.output.0}', 2026-03-04, 2026-03-05]\n")
    assert _problems(text) == ["'window' of 'book_carrier' takes 2 items, not 3"]
    text = _routine("      reference: ${inputs.reference}\n      pickup: 2026-03-02\n"
                    "      window: ['${steps.first.output.0}']\n")
    assert _problems(text) == ["'window' of 'book_carrier' takes 2 items, not 1"]
    text = _routine("      reference: ${inputs.reference}\n      pickup: 2026-03-02\n"
                    "      window: ['${steps.first.output.0}', '${steps.first.output.1}']\n")
    assert _problems(text) == []


@tool
def find_hold(reference: str) -> Hold:
    """The customs hold on a shipment."""
    return Hold(hold_id=uuid.UUID(int=7), reason="documents", duty=Decimal("120.50"))


@tool
def schedule_inspection(reference: str, day: dt.date, slot: dt.time | None = None,
                        arrival: dt.datetime | None = None) -> str:
    """Schedule a customs inspection."""
    return f"{reference} inspected on {day}"


def test_a_value_in_one_text_format_where_another_is_taken_is_a_mismatch():
    """A hold's UUID passed to a `date` parameter validated clean (both are "string"), and
    the tool refused every run's value; an ETA (a datetime) passed to a `date` parameter is a
    date only at midnight, so it is warned about, and a date where a datetime goes is fine."""
    registry = ToolRegistry(find_hold, legs_by_port, schedule_inspection)

    def said(args: str, first: str = "find_hold") -> list[tuple[str, str]]:
        text = ("name: inspect\ndescription: Schedule a customs inspection.\n"
                "inputs:\n  reference: {type: string, description: the reference}\nsteps:\n"
                f"  - id: first\n    name: Look\n    description: Look.\n    tool: {first}\n"
                "    args: {reference: '${inputs.reference}'}\n"
                "  - id: inspect\n    name: Inspect\n    description: Inspect.\n"
                f"    tool: schedule_inspection\n    args:\n"
                f"      reference: ${{inputs.reference}}\n{args}"
                "  - id: answer\n    name: Answer\n    description: Say.\n    finish: true\n")
        warned: list = []
        problems = check_routine(load_routine_text(text, "inspect.yaml"), registry,
                                 warnings=warned)
        return [(p.severity, p.message) for p in problems + warned]

    assert said("      day: ${steps.first.output.hold_id}\n") == [(
        "error", "${steps.first.output.hold_id} is text in the format uuid, but argument "
        "'day' of 'schedule_inspection' takes the format date, which never reads it")]
    assert said("      day: 2026-03-02\n      slot: ${steps.first.output.hold_id}\n") == [(
        "error", "${steps.first.output.hold_id} is text in the format uuid, but argument "
        "'slot' of 'schedule_inspection' takes the format time, which never reads it")]
    warned = said("      day: ${steps.first.output.HAM.eta}\n", first="legs_by_port")
    assert [s for s, _ in warned] == ["warning"] and "only at midnight" in warned[0][1]
    assert said("      day: 2026-03-02\n      arrival: ${steps.first.output.HAM.eta}\n",
                first="legs_by_port") == []


def test_a_name_no_reference_can_hold_is_a_problem_at_its_key():
    """Inputs named `ship-ref`, `container no` or `référence` (and a constant
    `max-duty`) were accepted, then could never be read: `${inputs.ship-ref}` was a
    "malformed reference" far from the cause, and one never referenced was just dead."""
    text = ("name: customs_check\ndescription: Check a shipment's customs status.\n"
            "inputs:\n"
            "  ship-ref: {type: string, description: the reference}\n"
            "  'container no': {type: string, description: the container, required: false}\n"
            "  référence: {type: string, description: the reference, required: false}\n"
            "constants:\n  max-duty: 500\n"
            "steps:\n"
            "  - id: answer\n    name: Answer\n    description: Say.\n    finish: true\n")
    problems = check_routine(load_routine_text(text, "customs.yaml"), ToolRegistry())
    assert [(p.line, p.message.split(":")[0], p.expected.split(" (")[0]) for p in problems] == [
        (4, "input name 'ship-ref' cannot be read", "a name such as 'ship_ref'"),
        (5, "input name 'container no' cannot be read", "a name such as 'container_no'"),
        (6, "input name 'référence' cannot be read", "a name such as 'reference'"),
        (8, "constant name 'max-duty' cannot be read", "a name such as 'max_duty'")]


def test_a_file_of_two_routines_says_a_file_holds_one():
    """Two routines in one file, separated by `---` (as Kubernetes users write YAML), were
    "YAML syntax: but found another document (expected valid YAML)"."""
    one = ("name: {0}\ndescription: Track a shipment.\nsteps:\n"
           "  - id: answer\n    name: Answer\n    description: Say.\n    finish: true\n")
    try:
        load_routine_text(one.format("track") + "---\n" + one.format("trace"), "both.yaml")
    except SpecError as exc:
        [problem] = exc.problems
    assert (problem.line, problem.column) == (8, 1)
    assert "a second YAML document starts here" in problem.message
    assert problem.expected.startswith("one routine per file")


def test_a_run_context_that_may_be_none_is_the_context_not_an_argument():
    """`ctx: RunContext[Depot] | None = None` (so the tool's own unit tests call it without
    one) made `ctx` a required argument the model was asked to fill, with RunContext's
    fields in the schema; the run then could not call the tool at all."""

    @tool
    def depot_stock(ctx: RunContext[dict] | None, depot: str) -> int:
        """Pallets waiting at a depot."""
        return (ctx.deps if ctx is not None else {}).get(depot, 0)

    assert depot_stock.context_param == "ctx"
    assert depot_stock.parameters["required"] == ["depot"]
    assert "ctx" not in depot_stock.parameters["properties"]
    assert "$defs" not in depot_stock.parameters
    assert asyncio.run(depot_stock.invoke({"depot": "RTM"}, RunContext({"RTM": 12}))) == 12


def test_a_method_decorated_inside_its_class_says_how_to_register_it():
    """`@tool` on a method in its class's body said "parameter 'self' needs a type
    annotation": annotating `self` is not the fix; the object's method, or the class through
    Toolset.from_object, is."""
    with pytest.raises(ToolDefinitionError) as caught:
        class Carrier:
            @tool
            def book(self, lane: str) -> str:
                """Book a carrier on a lane."""
                return lane
    message = str(caught.value)
    assert "is a method ('self' first)" in message and "drop the decorator" in message
    assert "tool(carrier.book)" in message and "Toolset.from_object(NAME, Carrier)" in message


def test_a_snapshot_keeps_every_row_of_tables_with_odd_names_and_keys():
    """The freight database's end state lost rows or crashed: a table named with a double
    quote in it was an SQL syntax error; a `rowid TEXT` column (a legacy system's export)
    hid SQLite's row id, so rows sharing its value were one row; and the lanes ('a|b', 'c')
    and ('a', 'b|c') of a WITHOUT ROWID table had one key, so one of them vanished."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        'CREATE TABLE "customs ""holds""" (id INTEGER PRIMARY KEY, reason TEXT);'
        "INSERT INTO \"customs \"\"holds\"\"\" VALUES (1, 'documents');"
        "CREATE TABLE legs (rowid TEXT, port TEXT);"
        "INSERT INTO legs VALUES ('L1', 'HAM'), ('L1', 'RTM');"
        "CREATE TABLE lanes (origin TEXT, dest TEXT, rate REAL, PRIMARY KEY (origin, dest))"
        " WITHOUT ROWID;"
        "INSERT INTO lanes VALUES ('a|b', 'c', 1.5), ('a', 'b|c', 2.5);")
    state = snapshot(conn)
    assert state['customs "holds"'] == {"1": {"id": 1, "reason": "documents"}}
    assert sorted(row["port"] for row in state["legs"].values()) == ["HAM", "RTM"]
    assert sorted(row["rate"] for row in state["lanes"].values()) == [1.5, 2.5]


def test_a_dataclass_tool_with_a_default_factory_takes_a_fresh_default():
    """`tool(Booking)` for a dataclass whose field has `default_factory=list` raised (under
    warnings as errors, as pytest runs) "Default value <factory> is not JSON serializable":
    the signature shows dataclasses' `<factory>` marker, which is no value. The field is
    optional, and each call gets its own new list."""
    @dataclasses.dataclass
    class Booking:
        """Book a carrier slot."""

        ref: str
        tags: list[str] = dataclasses.field(default_factory=list)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        booking = tool(Booking)
    assert booking.parameters["required"] == ["ref"]
    assert "default" not in booking.parameters["properties"]["tags"]
    one, two = (booking.args_model.model_validate({"ref": r}) for r in ("a", "b"))
    assert one.tags == [] and one.tags is not two.tags
