"""Tail sampling: synthetic span trees through the real processor and trace store, and real runs
through a real server; errors always kept, the share honoured, every process deciding alike."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from steward.models.types import Message, ModelRequest, ModelResponse, Usage
from steward.observe.context import run_scope
from steward.observe.sampling import SamplingPolicy, in_share
from steward.observe.tracing import Tracing
from steward.store.database import Database
from steward.store.migrate import upgrade
from steward.store.schema import Span as SpanRow
from tests.conftest import StewardProcess, make_process

RUNS = 1_000
SHARE = 0.10
REQUEST = ModelRequest(model="gpt-4.1-mini", messages=(Message(role="user", content="hi"),))


def response(cost_tokens: int = 3) -> ModelResponse:
    return ModelResponse(
        provider="openai",
        model="gpt-4.1-mini",
        id="chatcmpl-1",
        content="hello",
        tool_calls=(),
        finish_reason="stop",
        provider_finish_reason="stop",
        usage=Usage(input_tokens=12, output_tokens=cost_tokens),
    )


@pytest.fixture(autouse=True)
def _no_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)


def database(path: Path) -> Database:
    url = f"sqlite:///{path}"
    upgrade(url)
    return Database(url)


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    first, second = database(tmp_path / "a.db"), database(tmp_path / "b.db")
    yield first, second
    first.dispose()
    second.dispose()


def emit_run(tracing: Tracing, run_id: str, *, fail: bool, cost_usd: float = 0.001) -> None:
    """A three-span run: agent, model call, tool call; a failing run's tool raises."""
    with run_scope(run_id, "tenant-a"), tracing.invoke_agent("support", conversation_id=None):
        with tracing.chat("openai", REQUEST) as recorder:
            recorder.record(response(), cost_usd=cost_usd, cost_known=True)
        try:
            with tracing.execute_tool("lookup_order", "call_1", step=2):
                if fail:
                    raise RuntimeError("order service down")
        except RuntimeError:
            pass


def stored_runs(db: Database) -> dict[str, int]:
    """Spans per run id in the trace store."""
    counts: dict[str, int] = {}
    with db.session() as session:
        for run_id in session.scalars(select(SpanRow.run_id)):
            assert run_id is not None
            counts[run_id] = counts.get(run_id, 0) + 1
    return counts


def test_a_thousand_runs_keep_every_failure_and_a_tenth_of_the_rest(
    dbs: tuple[Database, Database],
) -> None:
    run_ids = [str(uuid.uuid4()) for _ in range(RUNS)]
    failing = set(run_ids[:: RUNS // 50])  # 5%
    assert len(failing) == 50
    policy = SamplingPolicy(share=SHARE)
    otlp = InMemorySpanExporter()
    first = Tracing(dbs[0], flush_interval_ms=50, sampling=policy)
    # A second process's tracer: its own store, plus an exporter standing for OTLP.
    second = Tracing(dbs[1], flush_interval_ms=50, sampling=policy, extra_exporters=[otlp])
    try:
        for run_id in run_ids:
            emit_run(first, run_id, fail=run_id in failing)
        for run_id in reversed(run_ids):  # another order, another process: the same decisions
            emit_run(second, run_id, fail=run_id in failing)
        assert first.force_flush(10_000) and second.force_flush(10_000)
        kept = stored_runs(dbs[0])

        assert failing <= set(kept)
        assert set(kept.values()) == {3}  # a kept trace is kept whole
        successes = set(kept) - failing
        ratio = len(successes) / (RUNS - len(failing))
        assert 0.07 <= ratio <= 0.13, ratio
        assert successes == {
            r for r in run_ids if r not in failing and in_share(uuid.UUID(r).int, SHARE)
        }
        assert stored_runs(dbs[1]) == kept
        exported = {str(uuid.UUID(int=span.context.trace_id)) for span in otlp.get_finished_spans()}
        assert exported == set(kept)
        assert first.sampler.counts["error"] == 50
        assert first.sampler.kept() == len(kept)
        assert first.sampler.dropped() == RUNS - len(kept)
        assert second.sampler.counts == first.sampler.counts
    finally:
        first.shutdown()
        second.shutdown()


def test_another_interpreter_with_another_hash_seed_decides_the_same() -> None:
    ids = [uuid.uuid4().int for _ in range(2_000)]
    here = "".join("1" if in_share(trace_id, SHARE) else "0" for trace_id in ids)
    code = (
        "import sys\nfrom steward.observe.sampling import in_share\n"
        "ids = [int(line) for line in sys.stdin.read().split()]\n"
        f"print(''.join('1' if in_share(i, {SHARE}) else '0' for i in ids))\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        input="\n".join(map(str, ids)),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert there == here
    assert 0.08 <= here.count("1") / len(ids) <= 0.12


def test_slow_and_costly_runs_are_kept_with_a_zero_share(
    dbs: tuple[Database, Database],
) -> None:
    tracing = Tracing(
        dbs[0], flush_interval_ms=50, sampling=SamplingPolicy(0.0, latency_s=5.0, cost_usd=0.5)
    )
    cheap, costly, slow = (str(uuid.uuid4()) for _ in range(3))
    try:
        emit_run(tracing, cheap, fail=False, cost_usd=0.01)
        emit_run(tracing, costly, fail=False, cost_usd=0.75)
        with run_scope(slow, "tenant-a"):
            root = tracing.tracer.start_span("invoke_agent slow", start_time=1_000_000_000)
            root.end(end_time=7_000_000_000)  # six seconds, stated rather than waited for
        assert tracing.force_flush(5_000)
        assert set(stored_runs(dbs[0])) == {costly, slow}
        assert tracing.sampler.counts == {
            "error": 0,
            "latency": 1,
            "cost": 1,
            "share": 0,
            "dropped": 1,
        }
    finally:
        tracing.shutdown()


def test_a_kept_trace_keeps_the_spans_of_its_later_segment(
    dbs: tuple[Database, Database],
) -> None:
    """A paused run ends one root and resumes under another in the same trace."""
    tracing = Tracing(dbs[0], flush_interval_ms=50, sampling=SamplingPolicy(0.0))
    run_id = str(uuid.uuid4())
    try:
        emit_run(tracing, run_id, fail=True)
        emit_run(tracing, run_id, fail=False)
        assert tracing.force_flush(5_000)
        assert stored_runs(dbs[0]) == {run_id: 6}
    finally:
        tracing.shutdown()


@pytest.fixture
def sampled_server(tmp_path: Path) -> Iterator[StewardProcess]:
    process = make_process(tmp_path, STEWARD_TRACE_SAMPLE_SHARE="0")
    process.start()
    yield process
    process.stop()


def test_real_runs_keep_their_records_and_only_failures_keep_traces(
    sampled_server: StewardProcess,
) -> None:
    key = sampled_server.create_key("sampling")
    with httpx.Client(
        base_url=sampled_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        ok = [
            http.post("/runs/wait", json={"assistant_id": "multistep", "input": {"steps": 2}})
            for _ in range(3)
        ]
        bad = http.post("/runs/wait", json={"assistant_id": "broken", "input": {}})
        ok_ids = [r.headers["content-location"].rsplit("/", 1)[-1] for r in ok]
        bad_id = bad.headers["content-location"].rsplit("/", 1)[-1]

        deadline = time.monotonic() + 30
        bad_spans: list[dict[str, object]] = []
        while time.monotonic() < deadline and not bad_spans:
            bad_spans = http.get(f"/runs/{bad_id}/trace").json()["spans"]
            time.sleep(0.1)
        assert {span["name"] for span in bad_spans} >= {"invoke_agent broken"}
        for run_id in ok_ids:
            assert http.get(f"/runs/{run_id}").json()["status"] == "success"  # record kept
            assert http.get(f"/runs/{run_id}/trace").json()["spans"] == []  # trace dropped
        assert http.get(f"/runs/{bad_id}").json()["status"] == "error"
        metrics = http.get("/metrics").text
    assert 'steward_traces_sampled_total{decision="dropped",reason=""} 3.0' in metrics
    assert 'steward_traces_sampled_total{decision="kept",reason="error"} 1.0' in metrics
