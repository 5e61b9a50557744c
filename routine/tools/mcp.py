"""Tools from MCP servers (stdio), in the same registry as Python tools.

``mcp_toolset(server)`` starts the server once to list its tools (names,
descriptions, input and output schemas), then returns a :class:`Toolset` whose
``setup`` starts a fresh server session for each run. Arguments are validated
against the server's input schema before the call, so a bad call goes back to
the model as a message, like with Python tools.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .core import RunContext, Tool, ToolArgumentsError, Toolset

if TYPE_CHECKING:  # the MCP SDK is imported only when a server is actually used
    import mcp_types
    from mcp import ClientSession, StdioServerParameters

__all__ = ["McpServer", "mcp_toolset", "mcp_toolset_async", "McpToolError"]


class McpServer(BaseModel):
    """An MCP server started over stdio whose tools join the registry."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="Executable to start, e.g. 'python'.")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] | None = Field(None, description="Extra environment variables.")
    name: str | None = Field(None, description="Toolset name (default: the command).")


class McpToolError(RuntimeError):
    """The MCP server reported an error for a tool call (shown to the model)."""


def _params(server: McpServer) -> StdioServerParameters:
    from mcp import StdioServerParameters

    return StdioServerParameters(command=server.command, args=list(server.args), env=server.env)


def _errlog() -> Any:
    """Where the server's stderr goes: ours, or the process's own where ours is not a file
    (Jupyter, captured output), since the child process needs a real descriptor."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    return open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


@contextlib.asynccontextmanager
async def _session(server: McpServer) -> AsyncIterator[ClientSession]:
    from mcp import ClientSession, stdio_client

    async with stdio_client(_params(server), errlog=_errlog()) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    checker = jsonschema.Draft202012Validator(schema)

    def validate(arguments: dict[str, Any]) -> None:
        errors = sorted(checker.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            raise ToolArgumentsError("; ".join(
                (f"argument '{'.'.join(map(str, e.path))}': " if e.path else "") + e.message
                for e in errors))

    return validate


def _result_value(result: mcp_types.CallToolResult) -> Any:
    text = "\n".join(getattr(block, "text", "") for block in result.content
                     if getattr(block, "type", "") == "text")
    if result.is_error:
        raise McpToolError(text or "the MCP tool reported an error")
    if result.structured_content is not None:
        return result.structured_content
    return text


def _make_tool(info: mcp_types.Tool, toolset: str) -> Tool:
    async def call(ctx: RunContext[ClientSession] | None, arguments: dict[str, Any]) -> Any:
        assert ctx is not None and ctx.deps is not None, "MCP tools need a run session"
        return _result_value(await ctx.deps.call_tool(info.name, arguments))

    schema = dict(info.input_schema or {"type": "object", "properties": {}})
    return Tool(
        name=info.name,
        description=info.description or info.name,
        parameters=schema,
        output_schema=info.output_schema,
        function=call,
        toolset=toolset,
        validator=_validator(schema),
        raw_arguments=True,
    )


async def mcp_toolset_async(server: McpServer) -> Toolset:
    """List the server's tools and wrap them (see :func:`mcp_toolset`)."""
    name = server.name or f"mcp:{server.command} {' '.join(server.args)}".strip()
    async with _session(server) as session:
        listed = await session.list_tools()
    toolset = Toolset(name, setup=lambda: _session(server))
    for info in listed.tools:
        toolset.add(_make_tool(info, name))
    return toolset


def mcp_toolset(server: McpServer) -> Toolset:
    """A Toolset for an MCP server started over stdio (blocking helper)."""
    import anyio

    return anyio.run(mcp_toolset_async, server)
