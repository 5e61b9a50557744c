"""An MCP server on the low-level Server whose one tool, `lookup`, has the input schema
ODD_SCHEMA_MCP names: an invalid regex pattern, a `$ref` to nothing, an unknown type, or a
`$ref` that resolves (tests/test_hostile12_c.py)."""

from __future__ import annotations

import os

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

SCHEMAS = {
    "pattern": {"type": "object", "properties": {"q": {"type": "string", "pattern": "(["}}},
    "ref": {"type": "object", "properties": {"q": {"$ref": "#/$defs/missing"}}},
    "type": {"type": "object", "properties": {"q": {"type": "strng"}}},
    "good_ref": {"type": "object", "properties": {"q": {"$ref": "#/$defs/query"}},
                 "$defs": {"query": {"type": "string"}}},
}


async def list_tools(ctx, params):
    return types.ListToolsResult(tools=[types.Tool(
        name="lookup", description="Look a prescription up.",
        input_schema=SCHEMAS[os.environ["ODD_SCHEMA_MCP"]])])


async def call_tool(ctx, params):
    return types.CallToolResult(content=[types.TextContent(text="ok")])


server = Server("odd_schema", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
