"""Run an `MCPServer` over stdio or streamable HTTP, as the tests' remote servers do.

`python server.py stdio` or `python server.py http PORT [TOKEN]`: with a token, HTTP requests
without `Authorization: Bearer TOKEN` get a 401 (the way a hosted server checks its callers).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send


def record(tool: str, arguments: dict[str, Any]) -> None:
    """Append a call to `MCP_CALL_LOG`, so a test can see what reached the server."""
    path = os.environ.get("MCP_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


class BearerOnly:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        presented = dict(scope.get("headers", [])).get(b"authorization")
        if scope["type"] == "http" and presented != self.expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await self.app(scope, receive, send)


def main(server: MCPServer[Any]) -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        server.run("stdio")
        return
    import uvicorn

    port = int(sys.argv[2])
    app: ASGIApp = server.streamable_http_app()
    if len(sys.argv) > 3:
        app = BearerOnly(app, sys.argv[3])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
