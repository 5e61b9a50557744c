"""An MCP server on the low-level Server whose one tool, `lookup`, has the input schema
ODD_SCHEMA_MCP names: an invalid regex pattern, a `$ref` to nothing, an unknown type, a
`$ref` that resolves, or `free` (any arguments: {"type": "object"}); `dotted`: two tools
named `rx.lookup` and `files/read`, each answering with the name it was called by
(tests/test_hostile12_c.py)."""

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
    "free": {"type": "object"},  # any arguments
}


async def list_tools(ctx, params):
    kind = os.environ["ODD_SCHEMA_MCP"]
    if kind == "dotted":  # MCP names may hold dots and slashes; OpenAI's API refuses them
        return types.ListToolsResult(tools=[types.Tool(
            name=name, description="Look a prescription up.",
            input_schema=SCHEMAS["good_ref"]) for name in ("rx.lookup", "files/read")])
    return types.ListToolsResult(tools=[types.Tool(
        name="lookup", description="Look a prescription up.", input_schema=SCHEMAS[kind])])


async def call_tool(ctx, params):
    return types.CallToolResult(content=[types.TextContent(text=f"{params.name} ran")])


server = Server("odd_schema", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
