"""A ticketing server on the low-level Server whose tools declare an output schema and
answer outside it, as servers in the wild do: `open_ticket` gives its id as text where the
schema says integer, `get_ticket` gives its result as JSON text with no structured content
(tests/test_hostile13_e.py)."""

from __future__ import annotations

import json

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TICKET = {"type": "object", "properties": {"ticket_id": {"type": "integer"},
                                           "status": {"type": "string"}},
          "required": ["ticket_id", "status"]}


async def list_tools(ctx, params):
    return types.ListToolsResult(tools=[
        types.Tool(name="open_ticket", description="Open a ticket.", output_schema=TICKET,
                   input_schema={"type": "object", "properties": {"summary": {"type": "string"}},
                                 "required": ["summary"]}),
        types.Tool(name="get_ticket", description="Get a ticket.", output_schema=TICKET,
                   input_schema={"type": "object",
                                 "properties": {"ticket_id": {"type": "integer"}}}),
    ])


async def call_tool(ctx, params):
    if params.name == "open_ticket":  # the ticket is opened: only its id is of another type
        ticket = {"ticket_id": "T-7", "status": "open"}
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(ticket))],
                                    structured_content=ticket)
    ticket = {"ticket_id": 7, "status": "open"}
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(ticket))])


server = Server("ticketing", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
