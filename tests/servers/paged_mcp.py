"""An MCP server on the low-level Server that pages its tool list (PAGED_MCP_PAGE tools a
page), reports an environment variable it inherited, and fails one tool with a long error
text and structured details (tests/test_mcp_hostile9.py)."""

from __future__ import annotations

import os

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOLS = [types.Tool(name=f"tool_{n:02d}", description=f"Tool {n}.",
                    input_schema={"type": "object", "properties": {}})
         for n in range(7)]
TOOLS += [types.Tool(name="whose_token", description="The token this server sees.",
                     input_schema={"type": "object", "properties": {}}),
          types.Tool(name="deadlock", description="Fails.",
                     input_schema={"type": "object", "properties": {}})]
PAGE = int(os.environ.get("PAGED_MCP_PAGE", "3"))


async def list_tools(ctx, params):
    cursor = int(params.cursor) if params is not None and params.cursor else 0
    end = cursor + PAGE
    return types.ListToolsResult(tools=TOOLS[cursor:end],
                                 next_cursor=str(end) if end < len(TOOLS) else None)


def _text(value: str) -> list[types.TextContent]:
    return [types.TextContent(text=value)]


async def call_tool(ctx, params):
    if params.name == "whose_token":
        return types.CallToolResult(content=_text(os.environ.get("PAGED_MCP_TOKEN", "none")))
    if params.name == "deadlock":
        return types.CallToolResult(
            content=_text("Traceback:\n" + "  File x.py line 1 in f\n" * 200 + "deadlock"),
            is_error=True, structured_content={"code": "DEADLOCK", "retryable": True})
    return types.CallToolResult(content=_text("ok"))


server = Server("paged", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
