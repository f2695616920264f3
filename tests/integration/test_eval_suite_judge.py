"""A suite whose cases carry rubrics is graded by the anchored judge through the runtime's own
gateway: the judge's calls are priced, land in the spend ledger under the judge's name, and
its verdict (with sample agreement) is one of the case's scores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.cli.loader import load_app
from steward.config import Settings
from steward.evals.cases import load_suite
from steward.evals.judge import JUDGE_AGENT
from steward.evals.runner import run_suite
from steward.store.database import Database
from steward.store.spend import SpendLedger
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import ROOT


@pytest.fixture
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


async def test_rubric_cases_are_graded_by_the_judge_through_the_gateway(
    tmp_path: Path, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "support"
    folder.mkdir()
    (folder / "suite.toml").write_text(
        'agent = "support"\nconcurrency = 1\n[judge]\nmodel = "up:gpt-4.1-mini"\nsamples = 3\n'
        "pass_score = 4\nmax_cost_usd = 0.5\n"
        '[[judge.anchors]]\nanswer = "Order 42 shipped with DHL."\nscore = 5\n'
    )
    rubric = "States the order's status and carrier."
    cases = [
        {"id": "good", "input": {"message": "Where is my order 42?"}, "rubric": rubric,
         "reference_answer": "Order 42 has shipped with DHL."},
        {"id": "poor", "input": {"message": "Where is my order 7?"}, "rubric": rubric,
         "reference_answer": "Order 7 is processing."},
    ]  # fmt: skip
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    control = UpstreamControl(upstream)
    control.script(
        *[{"text": '{"score": 5, "reason": "status and carrier"}'}] * 3,
        {"text": '{"score": 2, "reason": "no carrier"}'},
        {"text": '{"score": 2, "reason": "no carrier"}'},
        {"text": '{"score": 3, "reason": "partly"}'},
    )
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    settings = Settings(
        model="local",
        sandbox_pool_size=0,
        gateway={
            "deployments": [
                {"name": "up", "provider": "openai", "base_url": f"{upstream}/v1", "api_key": "k"}
            ]
        },
    )
    app = load_app(str(ROOT / "examples" / "support.py"))
    result = await run_suite(load_suite(folder), app, settings, app_label="support.py")

    good, poor = result.by_id()["good"], result.by_id()["poor"]
    (judged,) = [s for s in good.scores if s.name == "judge"]
    assert (judged.passed, judged.value, judged.details["agreement"]) == (True, 1.0, 1.0)
    (judged,) = [s for s in poor.scores if s.name == "judge"]
    assert judged.passed is False and judged.details["samples"] == [2, 2, 3]
    assert judged.details["agreement"] == pytest.approx(2 / 3)
    # The judge was sent the agent's real answer, at temperature 0.
    requests = control.requests()
    assert len(requests) == 6
    assert all(r["body"]["temperature"] == 0 for r in requests)
    assert (
        "According to lookup_order (order id 42)" in requests[0]["body"]["messages"][1]["content"]
    )
    # Priced by the gateway and in the spend ledger under the judge's name.
    assert result.judge_cost_usd > 0
    db = Database(settings.resolved_database_url)
    try:
        totals = {t.group: t for t in SpendLedger(db).totals("default", "agent")}
    finally:
        db.dispose()
    assert totals[JUDGE_AGENT].calls == 6
    assert totals[JUDGE_AGENT].cost_usd == pytest.approx(result.judge_cost_usd)
