"""Start the tests' MCP servers as real processes: over streamable HTTP on a free port, or the
stdio command line a Steward app is given."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRM = str(HERE / "crm_server.py")
HOSTILE = str(HERE / "hostile_server.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server(
    script: str, *, token: str | None = None, call_log: Path | None = None
) -> Iterator[str]:
    """The server's `/mcp` URL while it runs; it is stopped afterwards."""
    port = _free_port()
    env = dict(os.environ)
    if call_log is not None:
        env["MCP_CALL_LOG"] = str(call_log)
    args = [sys.executable, script, "http", str(port), *([token] if token else [])]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"MCP server {script} exited with {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"MCP server {script} did not listen on {port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def stdio_command(script: str) -> tuple[str, tuple[str, ...]]:
    return sys.executable, (script, "stdio")


def calls(call_log: Path) -> list[dict[str, object]]:
    import json

    if not call_log.exists():
        return []
    return [json.loads(line) for line in call_log.read_text().splitlines() if line]
