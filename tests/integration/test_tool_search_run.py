"""An agent with `tool_search=True` over the 300-tool registry: its model is first offered only
`search_tools`, then the schemas its search loaded; the loaded tool is called as usual and the
search itself does not taint the run (a write after it needs no approval)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from steward import Context
from steward.config import Settings
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.tools.search import SEARCH_TOOL
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.tool_search.registry import build_app


class Task(BaseModel):
    message: str


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


async def test_the_model_sees_only_the_schemas_its_search_loaded(
    tmp_path: Path, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{upstream}/v1")
    app = build_app()

    @app.agent(name="ops", tool_search=True)
    async def ops(ctx: Context, input: Task) -> str:
        return (await ctx.tool_loop(input.message)).text

    assert SEARCH_TOOL in app.agents["ops"].policy.trusted_tools
    assert app.agents["ops"].describe()["tool_search"] is True
    control = UpstreamControl(upstream)
    control.reset()
    refund: dict[str, Any] = {"amount": "30", "reason": "damaged", "order_id": "7"}
    control.script(
        {"tool_calls": [{"name": SEARCH_TOOL, "arguments": {"query": "refund a damaged order"}}]},
        {"tool_calls": [{"name": "create_refund", "arguments": refund}]},
        {"text": "Refunded."},
    )
    settings = Settings(
        home=tmp_path / "home", model="openai:gpt-4.1-mini", apps=[], sandbox_pool_size=0
    )
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="ops", input={"message": "Refund order 7"})
        )
        finished = await asyncio.wait_for(runtime.engine.wait("default", run.id), 60)
    finally:
        await runtime.stop()

    assert finished.status == "success", finished.error
    assert finished.output == {"output": "Refunded."}
    offered = [
        [tool["function"]["name"] for tool in request["body"].get("tools", [])]
        for request in control.requests()
    ]
    assert offered[0] == [SEARCH_TOOL]
    assert offered[1][0] == SEARCH_TOOL and "create_refund" in offered[1]
    assert len(offered[1]) == 6 and offered[2] == offered[1]  # 5 loaded, then kept
