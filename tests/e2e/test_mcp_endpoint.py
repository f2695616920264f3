"""Steward's own `/mcp` endpoint, used by the official `mcp` client over streamable HTTP against
a real `steward dev` server: tools listed by the key's permissions, an agent run as a tool,
a registered tool called directly, and no access at all without a Steward key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import StewardProcess


@asynccontextmanager
async def mcp_session(
    url: str, key: str | None, path: str = "/mcp"
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url + path, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


async def test_the_official_client_lists_and_calls_steward_tools_with_a_key(
    server: StewardProcess, api_key: str
) -> None:
    async with mcp_session(server.url, api_key) as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {"run_support", "get_run", "lookup_order", "create_ticket"} <= set(listed)
        assert listed["lookup_order"].annotations is not None
        assert listed["lookup_order"].annotations.read_only_hint is True
        assert listed["run_support"].input_schema["required"] == ["message"]
        assert "transfer" not in listed  # needs a person's approval: never offered over MCP

        looked = await session.call_tool("lookup_order", {"order_id": 42})
        assert not looked.is_error
        assert looked.structured_content is not None
        assert looked.structured_content["order_id"] == 42

        ran = await session.call_tool("run_support", {"message": "Where is my order 42?"})
        assert not ran.is_error, ran.content
        assert ran.structured_content is not None
        assert ran.structured_content["status"] == "success"
        assert "42" in ran.structured_content["output"]["answer"]
        run_id = ran.structured_content["run_id"]
        again = await session.call_tool("get_run", {"run_id": run_id})
        assert again.structured_content == ran.structured_content

        bad = await session.call_tool("run_support", {"message": ""})
        assert bad.is_error
        assert "input model" in bad.content[0].text  # type: ignore[union-attr]
        wrong = await session.call_tool("lookup_order", {"order_id": "forty-two"})
        assert wrong.is_error
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        stored = await http.get(f"/runs/{run_id}", headers={"x-api-key": api_key})
    assert stored.json()["metadata"]["source"] == "mcp"


async def test_a_viewer_key_sees_only_read_only_tools(server: StewardProcess) -> None:
    viewer = server.create_key("mcp-viewer", role="viewer")
    async with mcp_session(server.url, viewer) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert "lookup_order" in names and "get_run" in names
        assert not any(name.startswith("run_") for name in names)
        assert "create_ticket" not in names
        refused = await session.call_tool("create_ticket", {"subject": "s", "body": "b"})
        assert refused.is_error


async def test_no_key_no_mcp(server: StewardProcess) -> None:
    for key in (None, "stw_not_a_real_key_at_all_0000000000"):
        with pytest.raises(BaseExceptionGroup) as refused:  # the SDK's task groups wrap it
            async with mcp_session(server.url, key):
                pass
        assert refused.group_contains(MCPError, match="error response")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
