"""A small MCP server over stdio (low-level SDK) whose results come as many servers send
them: JSON in a text block, an embedded resource, an error with structured content."""

from __future__ import annotations

import json

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

IBAN = {"type": "object", "properties": {"iban": {"type": "string"}}, "required": ["iban"]}
TOOLS = [types.Tool(name="get_account", description="Get an account.", input_schema=IBAN),
         types.Tool(name="list_tx", description="List transactions.", input_schema=IBAN),
         types.Tool(name="statement", description="A CSV statement.", input_schema=IBAN),
         types.Tool(name="block_card", description="Block a card.", input_schema=IBAN)]


async def list_tools(ctx, params):  # noqa: ANN001, ANN201 - the SDK's handler shape
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx, params):  # noqa: ANN001, ANN201
    iban = (params.arguments or {})["iban"]
    if params.name == "get_account":
        account = json.dumps({"iban": iban, "owner": "Ada"})
        return types.CallToolResult(content=[types.TextContent(type="text", text=account)])
    if params.name == "list_tx":
        return types.CallToolResult(content=[types.TextContent(type="text",
                                                               text=f"transactions of {iban}")])
    if params.name == "statement":
        csv = types.TextResourceContents(uri="file:///statement.csv", mime_type="text/csv",
                                         text="date,amount\n2026-01-01,-12.50")
        return types.CallToolResult(content=[types.EmbeddedResource(type="resource",
                                                                    resource=csv)])
    return types.CallToolResult(content=[types.TextContent(type="text", text="refused")],
                                is_error=True, structured_content={"code": "ALREADY_BLOCKED"})


server = Server("ledger", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
