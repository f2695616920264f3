"""Tool calls through the engine's `ToolRunner`: a timeout per attempt, retries of what the
tool marks transient (same idempotency key each time), and a circuit breaker per tool and
tenant that answers at once while open, visible on `execute_tool` spans and in metrics."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from steward import Retryable, Steward, ToolContext, ToolError, UserError
from steward.observe.metrics import ToolMetrics
from steward.observe.tracing import Tracing
from steward.tools.resilience import ToolResilience
from steward.tools.runner import ATTEMPTS, BREAKER_STATE, ToolRunner
from steward.tools.settings import ToolSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def context(tenant: str = "acme", step: int = 1) -> ToolContext:
    return ToolContext("run-1", tenant, step, f"run-1:{step}", f"call_{step}")


@pytest.fixture
def runner() -> Iterator[ToolRunner]:
    runner = ToolRunner(threads=2, rng=random.Random(7))
    yield runner
    runner.close()


async def test_an_attempt_past_its_timeout_fails_the_call_with_a_clear_error(
    runner: ToolRunner,
) -> None:
    app = Steward()

    @app.tool(timeout_s=0.05)
    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(ToolError, match=r"'hangs' did not answer within 0.05 s"):
        await runner.invoke(app.tools["hangs"], {}, context())
    assert (
        runner.metrics.registry.get_sample_value("steward_tool_timeouts_total", {"tool": "hangs"})
        == 1
    )


async def test_a_blocking_def_tool_times_out_without_holding_the_caller(
    runner: ToolRunner,
) -> None:
    app = Steward()
    release = threading.Event()

    @app.tool(timeout_s=0.05)
    def blocks() -> bool:
        return release.wait(timeout=10)

    try:
        with pytest.raises(ToolError, match="did not answer"):
            await runner.invoke(app.tools["blocks"], {}, context())
    finally:
        release.set()


async def test_retryable_failures_are_retried_with_the_same_idempotency_key(
    runner: ToolRunner,
) -> None:
    app = Steward()
    keys: list[str] = []

    @app.tool(writes=True, retries=3, retry_on=[ConnectionError])
    def create_ticket(subject: str, ctx: ToolContext) -> dict[str, Any]:
        keys.append(ctx.idempotency_key)
        if len(keys) == 1:
            raise Retryable("CRM busy")
        if len(keys) == 2:
            raise ConnectionError("connection reset")
        return {"ticket": subject, "key": ctx.idempotency_key}

    tracing = Tracing(None, extra_exporters=[spans := InMemorySpanExporter()])
    with tracing.execute_tool("create_ticket", "call_1", step=1) as span:
        result = await runner.invoke(
            app.tools["create_ticket"], {"subject": "hi"}, context(step=4), span=span
        )
    tracing.shutdown()
    assert result == {"ticket": "hi", "key": "run-1:4"}
    assert keys == ["run-1:4"] * 3
    (finished,) = spans.get_finished_spans()
    assert finished.attributes is not None and finished.attributes[ATTEMPTS] == 3
    assert (
        runner.metrics.registry.get_sample_value(
            "steward_tool_retries_total", {"tool": "create_ticket"}
        )
        == 2
    )


async def test_failures_the_tool_does_not_mark_retryable_are_not_retried(
    runner: ToolRunner,
) -> None:
    app = Steward()
    calls: list[int] = []

    @app.tool(retries=3, retry_on=[ConnectionError])
    def lookup(order_id: int) -> str:
        calls.append(order_id)
        raise ValueError("bad row")

    @app.tool(retries=3)
    def answers(order_id: int) -> str:
        calls.append(order_id)
        raise ToolError(f"no order {order_id}")  # an answer, not an outage

    with pytest.raises(ToolError, match=r"'lookup' failed: ValueError: bad row"):
        await runner.invoke(app.tools["lookup"], {"order_id": 1}, context())
    with pytest.raises(ToolError, match="no order 2"):
        await runner.invoke(app.tools["answers"], {"order_id": 2}, context())
    assert calls == [1, 2]


async def test_retries_stop_after_the_declared_number_and_say_so(runner: ToolRunner) -> None:
    app = Steward()
    calls: list[int] = []

    @app.tool(retries=2)
    def flaky() -> str:
        calls.append(1)
        raise Retryable("still busy")

    with pytest.raises(ToolError, match="still busy after 3 attempts"):
        await runner.invoke(app.tools["flaky"], {}, context())
    assert len(calls) == 3


def test_more_than_three_retries_or_a_non_exception_retry_class_is_refused() -> None:
    app = Steward()
    with pytest.raises(UserError, match="retries must be between 0 and 3"):
        app.tool(retries=4)
    with pytest.raises(UserError, match="retry_on takes exception classes"):
        app.tool(retry_on=[int])  # type: ignore[list-item]


def test_backoff_is_full_jitter_over_a_doubling_bound() -> None:
    policy = ToolResilience(retry_backoff_s=0.5)
    rng = random.Random(1)
    for retry, bound in ((0, 0.5), (1, 1.0), (2, 2.0)):
        delays = [policy.backoff_s(retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound * 0.9 and min(delays) < bound * 0.1


async def test_the_breaker_opens_per_tenant_and_answers_at_once_until_its_cool_off() -> None:
    clock = Clock()
    metrics = ToolMetrics()
    runner = ToolRunner(threads=1, metrics=metrics, clock=clock)
    app = Steward()
    calls: list[str] = []
    healthy = False

    @app.tool(breaker_failures=2, breaker_cooloff_s=30)
    def crm(ctx: ToolContext) -> str:
        calls.append(ctx.tenant_id)
        if not healthy:
            raise ConnectionError("CRM down")
        return "ok"

    tool = app.tools["crm"]
    try:
        for _ in range(2):
            with pytest.raises(ToolError, match="CRM down"):
                await runner.invoke(tool, {}, context("acme"))
        tracing = Tracing(None, extra_exporters=[spans := InMemorySpanExporter()])
        with (
            pytest.raises(ToolError, match=r"'crm' is unavailable.*next 30 s.*another tool"),
            tracing.execute_tool("crm", "call_1", step=1) as span,
        ):
            await runner.invoke(tool, {}, context("acme"), span=span)
        tracing.shutdown()
        assert calls == ["acme", "acme"]  # the open breaker did not call the tool
        (refused,) = spans.get_finished_spans()
        assert refused.attributes is not None
        assert (refused.attributes[BREAKER_STATE], refused.attributes[ATTEMPTS]) == ("open", 0)
        exposition = _exposition(metrics)
        assert 'steward_tool_breaker_state{tenant="acme",tool="crm"} 2.0' in exposition

        # Another tenant's calls are not refused because of acme's failures.
        with pytest.raises(ToolError, match="CRM down"):
            await runner.invoke(tool, {}, context("globex"))

        clock.now += 30  # cooled off: one probe goes through, its success closes the breaker
        healthy = True
        assert await runner.invoke(tool, {}, context("acme")) == "ok"
        assert await runner.invoke(tool, {}, context("acme")) == "ok"
        assert 'steward_tool_breaker_state{tenant="acme",tool="crm"} 0.0' in _exposition(metrics)
    finally:
        runner.close()


async def test_settings_override_a_tools_declared_resilience_by_name() -> None:
    app = Steward()

    @app.tool(timeout_s=60, retries=0)
    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    runner = ToolRunner(overrides={"slow": ToolSettings(timeout_s=0.05, retries=1)})
    try:
        policy = runner.resilience(app.tools["slow"])
        assert (policy.timeout_s, policy.retries) == (0.05, 1)
        with pytest.raises(ToolError, match=r"within 0\.05 s"):
            await runner.invoke(app.tools["slow"], {}, context())
    finally:
        runner.close()


def _exposition(metrics: ToolMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def _sample(runner: ToolRunner, name: str, **labels: str) -> float | None:
    return runner.metrics.registry.get_sample_value(name, labels)


async def test_after_the_cool_off_one_call_probes_while_the_others_are_answered_at_once() -> None:
    clock = Clock()
    runner = ToolRunner(threads=1, clock=clock)
    app = Steward()
    probing = asyncio.Event()
    recovered = asyncio.Event()
    failing = True

    @app.tool(breaker_failures=1, breaker_cooloff_s=10)
    async def crm() -> str:
        if failing:
            raise ConnectionError("CRM down")
        probing.set()
        await recovered.wait()
        return "ok"

    tool = app.tools["crm"]
    try:
        with pytest.raises(ToolError, match="CRM down"):
            await runner.invoke(tool, {}, context())
        clock.now += 10
        failing = False
        probe = asyncio.create_task(runner.invoke(tool, {}, context()))
        await probing.wait()
        with pytest.raises(ToolError, match="until a call in flight shows it has recovered"):
            await runner.invoke(tool, {}, context())
        recovered.set()
        assert await probe == "ok"
        assert await runner.invoke(tool, {}, context()) == "ok"  # closed again
    finally:
        runner.close()
