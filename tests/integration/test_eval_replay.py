"""Regression replay and the in-process runner: a case carrying recorded tool results is run as a
real run of the real runtime, its tool calls answered from the recording (the tool itself does
not run); a run that diverges from the recording fails its case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steward.cli.loader import load_app
from steward.config import Settings
from steward.evals.cases import RecordedToolCall, load_suite
from steward.evals.runner import run_suite
from steward.observe.trace_store import list_run_spans
from steward.store.database import Database
from tests.conftest import ROOT


def _suite(folder: Path, cases: list[dict[str, object]]) -> Path:
    folder.mkdir()
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    return folder


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    return Settings(model="local", sandbox_pool_size=0)


async def test_replayed_cases_get_their_recorded_tool_results(
    tmp_path: Path, settings: Settings
) -> None:
    recorded = {"order_id": 42, "found": True, "status": "lost in transit", "carrier": "DHL"}
    folder = _suite(
        tmp_path / "support",
        [
            {
                "id": "replayed",
                "input": {"message": "Where is my order 42?"},
                "expected_tools": [{"name": "lookup_order", "arguments": {"order_id": 42}}],
                "answer": {"contains": ["lost in transit"]},
                "replay": [
                    {"name": "lookup_order", "arguments": {"order_id": 42}, "result": recorded}
                ],
            },
            {
                "id": "diverged",
                "input": {"message": "Where is my order 7?"},
                "replay": [
                    {"name": "lookup_order", "arguments": {"order_id": 42}, "result": recorded}
                ],
                "answer": {"contains": ["processing"]},
            },
            {
                "id": "live",
                "input": {"message": "Where is my order 7?"},
                "answer": {"contains": ["processing"]},
            },
        ],
    )
    suite = load_suite(folder)
    app = load_app(str(ROOT / "examples" / "support.py"))
    result = await run_suite(suite, app, settings, app_label="support.py")
    cases = result.by_id()
    assert cases["replayed"].passed, cases["replayed"].failures()
    assert cases["replayed"].tool_calls == [
        {"name": "lookup_order", "arguments": {"order_id": 42}, "result": recorded, "error": None}
    ]
    # The agent asked for order 7, which the recording does not have: the case fails.
    assert not cases["diverged"].passed
    assert "diverged" in (cases["diverged"].tool_calls[0]["error"] or "")
    assert cases["live"].passed and cases["live"].tool_calls[0]["result"]["status"] == "processing"
    db = Database(settings.resolved_database_url)
    try:
        spans = list_run_spans(db, "default", str(cases["replayed"].run_id))
    finally:
        db.dispose()
    agent_span = next(s for s in spans if s["name"] == "invoke_agent support")
    labels = {
        e["attributes"]["gen_ai.evaluation.name"]: e["attributes"]["gen_ai.evaluation.score.label"]
        for e in agent_span["events"]
        if e["name"] == "gen_ai.evaluation.result"
    }
    assert labels == {"tool_selection": "pass", "answer": "pass"}
    assert any(s["name"] == "execute_tool lookup_order" for s in spans)  # a real journaled step


async def test_tool_calls_of_runs_the_eval_did_not_submit_run_the_real_tool() -> None:
    from steward.evals.harness import ToolRecorder
    from steward.tools.registry import ToolContext

    app = load_app(str(ROOT / "examples" / "support.py"))
    recorder = ToolRecorder()
    recorder.install(app)
    tool = app.tools["lookup_order"]

    def context(run_id: str) -> ToolContext:
        return ToolContext(run_id=run_id, tenant_id="default", step=1,
                           idempotency_key=f"{run_id}:1", call_id="c")  # fmt: skip

    # A run recovered by the runtime, not submitted by the eval: the real tool answers.
    assert (await tool.invoke({"order_id": 7}, context("foreign")))["status"] == "processing"
    assert "foreign" not in recorder.calls
    # A run of the eval, replayed: the recording answers.
    replay = [RecordedToolCall(name="lookup_order", arguments=None, result={"status": "x"})]
    async with recorder.submitting() as register:
        register("ours", replay)
    assert await tool.invoke({"order_id": 7}, context("ours")) == {"status": "x"}
    assert recorder.calls["ours"][0].arguments == {"order_id": 7}
