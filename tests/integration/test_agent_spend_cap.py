"""Agent model calls pass the same gateway: a spend cap stops the run as limit_exceeded with
stop_reason spend_cap, before the provider is called, and the spend is on the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.cli.loader import load_app
from steward.config import Settings
from steward.models.budget import SpendCaps
from steward.models.settings import GatewaySettings
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import ROOT


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with run_upstream_in_thread() as url:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{url}/v1")
        yield url


async def test_a_user_out_of_daily_budget_ends_the_run_with_spend_cap(
    upstream: str, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        model="openai:gpt-4.1-mini",
        apps=[],
        gateway=GatewaySettings(caps=SpendCaps(user_daily_usd=0.0000001)),
    )
    runtime = Runtime.build(settings, load_app(str(ROOT / "examples" / "support.py")), execute=True)
    await runtime.start()
    runtime.keys.create("t")  # creates the default tenant
    try:
        run = await runtime.engine.submit(
            RunRequest(
                tenant_id="default", agent="support", input={"message": "hi"}, user_id="alice"
            )
        )
        finished = await runtime.engine.wait("default", run.id)
    finally:
        await runtime.stop()

    assert (finished.status, finished.stop_reason) == ("limit_exceeded", "spend_cap")
    assert finished.error is not None and "user_daily" in finished.error["message"]
    assert UpstreamControl(upstream).requests() == []


async def test_agent_calls_are_recorded_on_the_spend_ledger_with_run_and_agent(
    upstream: str, tmp_path: Path
) -> None:
    UpstreamControl(upstream).script(
        {"text": "Done.", "usage": {"input_tokens": 1000, "output_tokens": 10}}
    )
    settings = Settings(home=tmp_path, model="openai:gpt-4.1-mini", apps=[])
    runtime = Runtime.build(settings, load_app(str(ROOT / "examples" / "support.py")), execute=True)
    await runtime.start()
    runtime.keys.create("t")  # creates the default tenant
    try:
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="support", input={"message": "hi"})
        )
        finished = await runtime.engine.wait("default", run.id)
        assert runtime.gateway.ledger is not None
        await runtime.gateway.ledger.flush()
        (by_agent,) = runtime.gateway.ledger.totals("default", "agent")
    finally:
        await runtime.stop()

    assert finished.status == "success", finished.error
    assert by_agent.group == "support" and by_agent.calls == 1
    assert by_agent.cost_usd == pytest.approx(finished.cost_usd)
