"""@tool: schemas from signatures and docstrings, validation with the same model."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Literal

import pytest
from pydantic import BaseModel

from routine import RunContext, ToolRegistry, Toolset, tool
from routine.errors import ToolDefinitionError
from routine.tools.core import ToolArgumentsError


class Booking(BaseModel):
    id: int
    room: str


@tool
def book_room(room: str, day: date, people: int = 2,
              kind: Literal["meeting", "focus"] = "meeting") -> Booking:
    """Book a meeting room.

    Args:
        room: the room's name.
        day: the day to book.
        people: how many people.
        kind: meeting or focus.
    """
    return Booking(id=1, room=room)


def test_schema_from_signature_and_docstring():
    assert book_room.name == "book_room" and book_room.description == "Book a meeting room."
    params = book_room.parameters
    assert params["required"] == ["room", "day"]
    assert params["properties"]["room"] == {"type": "string", "description": "the room's name."}
    assert params["properties"]["day"]["format"] == "date"
    assert params["properties"]["people"]["default"] == 2
    assert params["properties"]["kind"]["enum"] == ["meeting", "focus"]
    assert params["additionalProperties"] is False
    assert book_room.output_schema["properties"].keys() == {"id", "room"}


def test_same_model_validates_arguments():
    values = book_room.validate_arguments({"room": "Oslo", "day": "2026-06-02"})
    assert values == {"room": "Oslo", "day": date(2026, 6, 2), "people": 2, "kind": "meeting"}
    with pytest.raises(ToolArgumentsError, match="missing required argument 'day'"):
        book_room.validate_arguments({"room": "Oslo"})
    with pytest.raises(ToolArgumentsError, match="unexpected argument 'floor'"):
        book_room.validate_arguments({"room": "Oslo", "day": "2026-06-02", "floor": 3})
    with pytest.raises(ToolArgumentsError, match="argument 'kind'"):
        book_room.validate_arguments({"room": "Oslo", "day": "2026-06-02", "kind": "party"})


def test_async_tools_and_context_injection():
    ts = Toolset("demo")

    @ts.tool(name="whoami", description="Say who runs.")
    async def who(ctx: RunContext[dict], shout: bool = False) -> str:
        await asyncio.sleep(0)
        return ctx.deps["user"].upper() if shout else ctx.deps["user"]

    assert "ctx" not in who.parameters["properties"] and who.context_param == "ctx"
    ctx = RunContext({"user": "ana"})
    assert asyncio.run(who.invoke({"shout": True}, ctx)) == "ANA"
    assert who.toolset == "demo" and ts.tools["whoami"] is who


def test_definition_errors_are_clear():
    with pytest.raises(ToolDefinitionError, match="needs a type annotation"):
        tool(name="untyped")(lambda x: x)
    with pytest.raises(ToolDefinitionError, match="must come first"):
        @tool
        def late(a: int, ctx: RunContext[None]) -> int:
            return a
    with pytest.raises(ToolDefinitionError, match="reserved"):
        ToolRegistry(tool(name="finish")(_finish))
    registry = ToolRegistry(book_room)
    with pytest.raises(ToolDefinitionError, match="two tools are named"):
        registry.add(tool(name="book_room")(_finish))
    with pytest.raises(ToolDefinitionError, match="parameter 'claim_id' is positional-only"):
        tool(name="posonly")(_positional_only)


def _positional_only(claim_id: int, /, note: str = "x") -> str:
    return note


def test_two_toolsets_with_one_name_are_a_definition_error():
    claims, fleet = Toolset("db", setup=lambda: "claims"), Toolset("db", setup=lambda: "fleet")

    @claims.tool
    def get_claim(ctx: RunContext[str], claim_id: int) -> str:
        return ctx.deps

    @fleet.tool
    def get_truck(ctx: RunContext[str], truck_id: int) -> str:
        return ctx.deps

    # one run context per toolset name: the second setup replaced the first before
    with pytest.raises(ToolDefinitionError, match="two toolsets are named 'db'.*get_claim.*"
                                                  "get_truck"):
        ToolRegistry(claims, fleet)
    assert ToolRegistry(claims, claims).names() == ["get_claim"]  # the same one twice is fine


class _Socket:  # a plain class pydantic cannot describe
    pass


def test_a_type_pydantic_cannot_describe_names_the_tool_and_the_parameter():
    """One line that says which parameter (or the return type), not pydantic's essay."""
    def plug(room: str, socket: _Socket) -> str:
        return room

    with pytest.raises(ToolDefinitionError) as info:
        tool(plug)
    message = str(info.value)
    assert message.startswith("tool 'plug': parameter 'socket' (_Socket): cannot build")
    assert "\n" not in message

    def unplug(room: str) -> _Socket:
        return _Socket()

    with pytest.raises(ToolDefinitionError, match=r"tool 'unplug': cannot build the output "
                                                  r"schema of its return type _Socket"):
        tool(unplug)


def _finish(answer: str) -> str:
    return answer


def test_registry_specs_in_openai_format():
    spec = book_room.openai_spec()
    assert spec["type"] == "function" and spec["function"]["name"] == "book_room"
    assert "book_room" in ToolRegistry(book_room)


class _Airline:
    """A toolkit class, the way existing agent toolkits are written."""

    def __init__(self) -> None:
        self.booked: list[tuple[str, str]] = []

    def get_seats(self, flight: str) -> int:
        """Free seats on a flight.

        Args:
            flight: the flight number.
        """
        return 3

    async def book(self, flight: str, passenger: str) -> str:
        """Book a seat.

        Args:
            flight: the flight number.
            passenger: who flies.
        """
        self.booked.append((flight, passenger))
        return f"booked {passenger} on {flight}"

    def untyped(self, x):  # noqa: ANN001, ANN201 - not a tool: its parameter has no type
        return x


def test_a_toolkit_class_becomes_a_toolset_with_one_object_per_run():
    import asyncio

    from routine.tools.core import ToolRegistry, Toolset

    airline = Toolset.from_object("airline", _Airline, approval=("book",))
    assert sorted(airline.tools) == ["book", "get_seats"]
    seats = airline.tools["get_seats"]
    assert seats.parameters["properties"]["flight"] == {"description": "the flight number.",
                                                        "type": "string"}
    assert seats.output_schema == {"type": "integer"} and airline.tools["book"].approval

    async def two_runs() -> list[list[tuple[str, str]]]:
        seen = []
        for passenger in ("Ana", "Ben"):
            async with ToolRegistry(airline).session() as contexts:
                context = contexts["airline"]
                await airline.tools["book"].invoke({"flight": "LH1", "passenger": passenger},
                                                   context)
                seen.append(list(context.deps.booked))
        return seen

    assert asyncio.run(two_runs()) == [[("LH1", "Ana")], [("LH1", "Ben")]]  # fresh each run
    import pytest

    from routine.errors import ToolDefinitionError
    with pytest.raises(ToolDefinitionError, match="untyped"):
        Toolset.from_object("airline", _Airline, methods=["untyped"])


class _Claim(BaseModel):
    claim_id: int
    status: str


def test_a_result_that_does_not_fit_the_declared_return_type_is_warned_about(caplog):
    from routine import Agent
    from routine.models.testing import ScriptedModel, call

    @tool
    def get_claim(claim_id: int) -> _Claim:
        """Get a claim."""
        return "claim 7 is open"  # type: ignore[return-value]

    assert get_claim.result_problem({"claim_id": 7, "status": "open"}) == ""
    assert "valid dictionary" in get_claim.result_problem("claim 7 is open")
    model = ScriptedModel([call("get_claim", claim_id=7), call("finish", answer="open")])
    trace = Agent(None, ToolRegistry(get_claim), model, validate=False).run("claim 7?")
    assert trace.tool_calls[0].ok  # the run goes on with the value, as before ...
    assert "tool get_claim returned a value its return type does not describe" in caplog.text
