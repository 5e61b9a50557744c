"""What a tool sees of the run's inputs (``RunContext.inputs``): a live, read-only view whose
values are copies, so that a tool cannot rewrite the run's record of what it was given nor
what a later step reads — scripted doubles, a library's own toolset."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from routine import Agent, RunContext, Toolset, load_routine_text
from routine.models.testing import ScriptedModel, call
from routine.tools import ToolRegistry


@dataclass
class Library:
    seen: list[dict[str, object]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    loans: list[tuple[str, list[str]]] = field(default_factory=list)


@contextlib.contextmanager
def fresh_library() -> Iterator[Library]:
    yield Library()


library = Toolset("library", setup=fresh_library)


@library.tool
def check_member(ctx: RunContext[Library], member: str) -> dict:
    """Check a member's card, and (badly) tidy the inputs while at it.

    Args:
        member: the member's card number.
    """
    ctx.deps.seen.append(dict(ctx.inputs))
    ctx.inputs["books"].append("a book nobody asked for")   # changes this tool's copy only
    try:
        ctx.inputs["member"] = "M-000"                       # type: ignore[index]
    except TypeError as e:
        ctx.deps.refused.append(str(e))
    return {"member": member, "ok": True}


@library.tool
def lend_books(ctx: RunContext[Library], member: str, books: list[str]) -> str:
    """Lend books to a member.

    Args:
        member: the member's card number.
        books: the titles.
    """
    ctx.deps.loans.append((member, books))
    return f"lent {len(books)}"


LEND = load_routine_text("""
name: lend
description: Lend books to a library member.
toolsets: [library]
inputs:
  member: {type: string, description: the member's card number}
  books: {type: array, description: the titles to lend}
steps:
  - {id: check, name: Check the member, description: Check the card., tool: check_member,
     args: {member: "${inputs.member}"}}
  - {id: lend, name: Lend, description: Lend the books., tool: lend_books,
     args: {member: "${steps.check.output.member}", books: "${inputs.books}"}}
  - {id: done, name: Answer, description: Say so., finish: true, message: "Done."}
""", "lend.yaml")


def test_a_tool_cannot_rewrite_the_inputs_the_trace_records_nor_what_later_steps_read():
    given = {"member": "M-123", "books": ["Dune"]}
    replies = [call("check_member", member="M-123"),
               call("lend_books", member="M-123", books=["Dune"])]
    agent = Agent(LEND, [library], ScriptedModel(replies))
    trace = agent.run("Lend Dune to M-123", inputs=given)
    assert trace.outcome == "answered", trace.answer
    assert trace.inputs == {"member": "M-123", "books": ["Dune"]}
    assert given == {"member": "M-123", "books": ["Dune"]}
    lend = next(c for c in trace.tool_calls if c.name == "lend_books")
    assert lend.arguments == {"member": "M-123", "books": ["Dune"]} and lend.error is None


def test_setting_an_input_from_a_tool_is_refused_and_the_tool_sees_the_values():
    registry = ToolRegistry(library)

    async def go() -> Library:
        async with registry.session("r1", {"member": "M-1", "books": ["Emma"]}) as contexts:
            tool = registry.get("check_member")
            assert tool is not None
            await tool.invoke({"member": "M-1"}, contexts["library"])
            return contexts["library"].deps

    lib = asyncio.run(go())
    assert lib.seen == [{"member": "M-1", "books": ["Emma"]}]
    assert lib.refused and "does not support item assignment" in lib.refused[0]


def test_the_view_follows_the_run_when_no_input_was_known_at_the_start():
    registry = ToolRegistry(library)
    inputs: dict[str, object] = {}   # the run learns its inputs later (asked, or read)

    async def go() -> dict[str, object]:
        async with registry.session("r2", inputs) as contexts:
            inputs["member"] = "M-7"
            return dict(contexts["library"].inputs)

    assert asyncio.run(go()) == {"member": "M-7"}


def test_the_view_is_a_read_only_mapping():
    registry = ToolRegistry(library)

    async def go() -> RunContext:
        async with registry.session("r3", {"member": "M-9"}) as contexts:
            return contexts[""]

    ctx = asyncio.run(go())
    assert dict(ctx.inputs) == {"member": "M-9"} and len(ctx.inputs) == 1
    with pytest.raises(TypeError):
        ctx.inputs["member"] = "M-0"  # type: ignore[index]
    with pytest.raises(AttributeError):
        ctx.inputs.pop("member")  # type: ignore[attr-defined]
