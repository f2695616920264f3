"""Hosted MCP servers: `steward mcp deploy` a file written with `MCPServer`; a real `steward dev`
runs it sandboxed, serves it at `/mcp/<name>` to keys of its tenant only, its agents use its
tools, and a server that dies is started again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.conftest as conftest
from tests.conftest import ROOT, StewardProcess, make_process
from tests.e2e.test_mcp_endpoint import mcp_session

NOTES = str(ROOT / "tests" / "mcp_servers" / "hosted_notes.py")
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def hosting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StewardProcess]:
    monkeypatch.setattr(conftest, "APPS", [str(ROOT / "tests" / "apps" / "mcp_app.py")])
    process = make_process(tmp_path)
    assert "deployed notes v1" in process.cli("mcp", "deploy", NOTES, "--name", "notes")
    process.start()
    yield process
    process.stop()


async def wait_healthy(http: httpx.AsyncClient, key: str) -> None:
    """Until the sandboxed server answers through Steward (503 while it starts)."""
    deadline = time.monotonic() + 60
    while True:
        answer = await http.post("/mcp/notes", json=PING, headers={**HEADERS, "x-api-key": key})
        if answer.status_code == 200:
            return
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, "the hosted server never became healthy"
        await asyncio.sleep(0.2)


async def call(
    http: httpx.AsyncClient, key: str, tool: str, arguments: dict[str, Any]
) -> httpx.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    return await http.post("/mcp/notes", json=message, headers={**HEADERS, "x-api-key": key})


async def test_a_deployed_server_is_sandboxed_tenant_scoped_and_used_by_agents(
    hosting: StewardProcess,
) -> None:
    key = hosting.create_key("hosting")
    async with httpx.AsyncClient(base_url=hosting.url, timeout=60) as http:
        await wait_healthy(http, key)
        await used(hosting, http, key)


async def used(hosting: StewardProcess, http: httpx.AsyncClient, key: str) -> None:
    async with mcp_session(hosting.url, key, "/mcp/notes") as session:  # the official client
        listed = {tool.name for tool in (await session.list_tools()).tools}
        assert {"read_note", "where_am_i", "crash"} <= listed
        note = await session.call_tool("read_note", {"topic": "release"})
        assert "Friday" in str(note.structured_content)

    inside = (await call(http, key, "where_am_i", {})).json()["result"]["structuredContent"]
    assert inside["uid"] == 65534 and inside["network"] == "unreachable"
    assert inside["hostname"] == "mcp" and "OPENAI_API_KEY" not in inside["environ"]
    assert not any(name.startswith("STEWARD_") for name in inside["environ"])

    other = hosting.create_key("other-tenant", tenant="acme")
    refused = await call(http, other, "read_note", {"topic": "release"})
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await http.post("/mcp/notes", json=PING)).status_code == 401

    ran = (
        await http.post(
            "/runs/wait",
            json={"assistant_id": "notes_agent", "input": {"message": 'Read the "release" note'}},
            headers={"x-api-key": key},
        )
    ).json()
    assert ran["tools"] == ["notes__read_note"], ran
    assert "Friday" in ran["answer"]

    # The server dies: the supervisor starts it again and it serves again.
    await call(http, key, "crash", {})
    await wait_healthy(http, key)
    again = (await call(http, key, "read_note", {"topic": "oncall"})).json()
    assert "Grace" in str(again["result"])
    log = hosting.home / "mcp" / "notes" / "v1" / "server.log"
    assert log.exists()
