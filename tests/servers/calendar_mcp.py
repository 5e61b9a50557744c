"""A small MCP server over stdio, used by the tests (tools with typed input and output)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

server = MCPServer("calendar")


class Slot(BaseModel):
    room: str
    day: str
    free: bool


@server.tool()
def check_room(room: str, day: str) -> Slot:
    """Tell whether a meeting room is free on a day (YYYY-MM-DD)."""
    return Slot(room=room, day=day, free=room != "Atlas")


@server.tool()
def cancel(booking_id: int) -> str:
    """Cancel a booking."""
    raise ToolError(f"booking {booking_id} does not exist")


if __name__ == "__main__":
    server.run("stdio")
