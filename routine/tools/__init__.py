"""Tools the model may call: typed Python functions, MCP servers, SQLite helpers.

* :mod:`.core` — ``@tool``, :class:`Tool`, :class:`Toolset`, :class:`ToolRegistry`;
* :mod:`.mcp` — an MCP server's tools in the same registry (the SDK loads on first use);
* :mod:`.sqlite` — seeded per-run SQLite copies and their state digest.
"""

from .core import FINISH_TOOL, RunContext, Tool, ToolArgumentsError, ToolRegistry, Toolset, tool
from .mcp import McpServer, mcp_toolset
from .sqlite import SeededSqlite, state_digest

__all__ = ["FINISH_TOOL", "McpServer", "RunContext", "SeededSqlite", "Tool", "ToolArgumentsError",
           "ToolRegistry", "Toolset", "mcp_toolset", "state_digest", "tool"]
