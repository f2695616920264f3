"""A well-behaved remote MCP server (official SDK, `MCPServer`): a small CRM."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

from tests.mcp_servers.serve import main, record

server = MCPServer("crm")
CUSTOMERS = {
    42: {"name": "Ada Lovelace", "plan": "gold"},
    7: {"name": "Alan Turing", "plan": "free"},
}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup_customer(customer_id: int) -> dict[str, object]:
    """Look up a customer of the CRM by customer id: name and plan."""
    record("lookup_customer", {"customer_id": customer_id})
    customer = CUSTOMERS.get(customer_id)
    if customer is None:
        raise ValueError(f"no customer {customer_id}")
    return {"customer_id": customer_id, **customer}


@server.tool()
def add_note(customer_id: int, note: str, ctx: Context) -> str:
    """Add a note to a customer's record (declares no annotations: Steward treats it as a write)."""
    meta = ctx.request_context.meta or {}
    key = meta.get("steward/idempotency_key")
    record("add_note", {"customer_id": customer_id, "note": note, "idempotency_key": key})
    return f"note added to {customer_id}"


def plan_price(plan: str) -> int:
    """The monthly price of a CRM plan."""
    record("plan_price", {"plan": plan})
    return {"gold": 30, "free": 0}.get(plan, -1)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def enable_pricing(ctx: Context) -> str:
    """Enable the pricing tools of the CRM (the tool list changes)."""
    server.add_tool(plan_price, annotations=ToolAnnotations(read_only_hint=True))
    await ctx.session.send_tool_list_changed()
    return "pricing enabled"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def crash_server() -> str:
    """Exit the server process at once (for the reconnect test)."""
    record("crash_server", {})
    os._exit(3)


if __name__ == "__main__":
    main(server)
