"""Runs inside a hosted MCP server's sandbox: `python -m steward.tools.mcp_host_runner FILE SOCKET`.

Loads the deployed file, finds its `MCPServer` (a module attribute; `server` or `mcp` first),
and serves it over streamable HTTP (stateless, JSON answers) on the Unix socket, the only way
in: the sandbox has no network of its own.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


def find_server(path: Path) -> Any:
    from mcp.server.mcpserver import MCPServer

    spec = importlib.util.spec_from_file_location("hosted_mcp_server", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    found = [v for v in vars(module).values() if isinstance(v, MCPServer)]
    preferred = [getattr(module, n) for n in ("server", "mcp") if n in vars(module)]
    for candidate in preferred + found:
        if isinstance(candidate, MCPServer):
            return candidate
    raise SystemExit(f"{path} defines no MCPServer")


def main() -> None:
    import uvicorn

    path, socket = Path(sys.argv[1]), sys.argv[2]
    server = find_server(path)
    # Reached only through its socket, by Steward's proxy: no DNS-rebinding check to make.
    app = server.streamable_http_app(stateless_http=True, json_response=True, host="socket")
    uvicorn.run(app, uds=socket, log_level="warning")


if __name__ == "__main__":
    main()
