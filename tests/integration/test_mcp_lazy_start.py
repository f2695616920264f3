"""A server loads the MCP SDK on the first `/mcp` request, not while it starts: the import is
about 0.7 s of CPU on the event loop, and a restart after a crash (recovering runs) waited for
it before answering /readyz."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from steward import Steward
from steward.config import Settings
from steward.server.app import create_app

app = create_app(Settings(home=sys.argv[1], sandbox_pool_size=0), Steward())
with TestClient(app) as client:
    assert client.get("/readyz").status_code == 200
    started = "mcp.server.streamable_http_manager" in sys.modules
    key = client.app.state.security.keys.create("k").secret
    answer = client.post(
        "/mcp",
        headers={"x-api-key": key, "accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
print(json.dumps({"at_start": started, "status": answer.status_code, "body": answer.json()}))
"""


def test_the_mcp_sdk_loads_on_the_first_mcp_request(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["at_start"] is False
    assert report["status"] == 200 and report["body"]["id"] == 1, report
