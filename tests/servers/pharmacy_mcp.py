"""A pharmacy chain's inventory server as its developers would write it with the SDK's
MCPServer (FastMCP): nested models ($defs), nullable and union arguments, an enum of numbers,
arrays of objects, results as images, embedded resources, structured content and errors, a
call that crashes the server and one that takes long (tests/test_hostile13_e.py).
``PHARMACY_MCP=many`` adds 500 tools; ``PHARMACY_MCP=fail`` exits at start with a message."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image
from pydantic import BaseModel

MODE = os.environ.get("PHARMACY_MCP", "")
if MODE == "fail":
    print("pharmacy: PHARMACY_DB_URL is not set; export it before starting the server",
          file=sys.stderr, flush=True)
    sys.exit(2)

server = MCPServer("pharmacy")


class Shelf(BaseModel):
    aisle: str
    bay: int


class Stock(BaseModel):
    sku: str
    store_id: int | None
    on_hand: int
    shelf: Shelf | None = None


class OrderLine(BaseModel):
    sku: str
    qty: int


class BySku(BaseModel):
    sku: str


class ByName(BaseModel):
    name: str
    strength_mg: float | None = None


@server.tool()
def check_stock(sku: str, store_id: int | None = None) -> Stock:
    """How many units of a product a store (or the chain) has on hand."""
    return Stock(sku=sku, store_id=store_id, on_hand=12, shelf=Shelf(aisle="B", bay=4))


@server.tool()
def find_product(query: BySku | ByName) -> list[Stock]:
    """Find products by SKU or by name."""
    return [Stock(sku="AMX-500", store_id=None, on_hand=3)]


@server.tool()
def count_units(sku: str) -> int:
    """The units of a product across the chain."""
    return 40


@server.tool()
def reorder(lines: list[OrderLine], priority: Literal[1, 2, 3] = 2) -> str:
    """Reorder products from the wholesaler; priority 1 is the most urgent."""
    return f"order of {len(lines)} lines at priority {priority}"


@server.tool()
def shelf_label(sku: str) -> Image:
    """The shelf label of a product, as an image."""
    return Image(data=b"\x89PNG\r\n\x1a\n", format="png")


@server.tool()
def recall(lot: str) -> str:
    """Record a recall of a lot."""
    raise ToolError(f"lot {lot} is not in this store's inventory")


@server.tool()
def crash(sku: str) -> str:
    """A call that takes the server down (a segfault in a native driver)."""
    os._exit(9)


@server.tool()
async def slow_audit(store_id: int) -> str:
    """A stock audit that takes long."""
    await asyncio.sleep(30)
    return "audited"


@server.tool()
def whose_db() -> str:
    """The database URL this server was given."""
    return os.environ.get("PHARMACY_DB_URL", "none")


if MODE == "many":
    for n in range(500):
        server.add_tool(lambda sku, n=n: f"{sku}: {n}", name=f"report_{n:03d}",
                        description=f"Report {n} for a product.")


if __name__ == "__main__":
    server.run("stdio")
