"""A self-contained `MCPServer` file, as a team would deploy it: `steward mcp deploy`."""

from __future__ import annotations

import os
import socket

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("notes")
NOTES = {"release": "Version 2.4 ships on Friday.", "oncall": "Grace is on call this week."}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def read_note(topic: str) -> str:
    """Read the team note on a topic (release, oncall)."""
    return NOTES.get(topic, f"no note on {topic}")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def where_am_i() -> dict[str, object]:
    """What the server's own sandbox looks like from inside."""
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
        network = "reachable"
    except OSError:
        network = "unreachable"
    return {
        "uid": os.getuid(),
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "environ": sorted(os.environ),
        "network": network,
    }


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def crash() -> str:
    """Stop the server process (for the restart test)."""
    os._exit(3)
