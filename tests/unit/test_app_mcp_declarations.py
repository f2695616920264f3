"""Declaring remote MCP servers and tool search on the app object, and serving several apps
as one: server references and search tools survive `Steward.combine`."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from steward import Context, Steward
from steward.errors import UserError
from steward.tools.search import SEARCH_TOOL


class Ask(BaseModel):
    message: str


async def answer(ctx: Context, input: Ask) -> str:
    return input.message


def test_an_agent_may_allow_a_declared_server_but_not_an_unknown_name() -> None:
    app = Steward()
    spec = app.add_mcp_server("crm", url="http://127.0.0.1:1/mcp", token_secret="CRM_TOKEN")
    assert spec.transport == "streamable_http" and app.remote.specs == {"crm": spec}
    app.agent(name="uses_crm", tools=["crm"])(answer)
    with pytest.raises(UserError, match="unknown tool 'erp'"):
        app.agent(name="uses_erp", tools=["erp"])(answer)
    with pytest.raises(UserError, match="declared twice"):
        app.add_mcp_server("crm", command="python")
    with pytest.raises(UserError, match="exactly one of url, command, hosted"):
        app.add_mcp_server("both", url="http://x/mcp", command="python")
    with pytest.raises(UserError, match="letters, digits"):
        app.add_mcp_server("bad name", url="http://x/mcp")


def test_combined_apps_keep_server_references_and_search_tools() -> None:
    first, second = Steward(), Steward()
    first.add_mcp_server("crm", url="http://127.0.0.1:1/mcp")
    first.agent(name="all_of_first")(answer)  # tools=None: every tool, remote ones included
    first.agent(name="searching_first", tool_search=True)(answer)
    second.agent(name="searching_second", tool_search=True)(answer)

    merged = Steward.combine([first, second])

    assert "crm" in merged.remote.specs
    assert merged.agents["all_of_first"].tools == ("crm",)
    for name in ("searching_first", "searching_second"):
        tools = merged.tools_for(merged.agents[name])
        assert SEARCH_TOOL in tools
        assert SEARCH_TOOL in merged.agents[name].policy.trusted_tools
