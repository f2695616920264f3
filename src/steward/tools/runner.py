"""How the run engine calls tools: plain `def` tools in a bounded thread pool, and every call
with its tool's timeout, retries and circuit breaker (`steward.tools.resilience`).

A `ToolError` the tool raises itself is its answer (say, "no such order"): it is neither retried
nor counted against the tool's health. `Retryable` and the tool's `retry_on` classes are retried;
any other exception, a timeout, or retries running out count as one failure of the call. A
timed-out `def` tool cannot be stopped: its thread runs on, holding one slot of the pool.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry.trace import Span

from steward.errors import Retryable, ToolError, UserError
from steward.observe.metrics import ToolMetrics
from steward.policy.breaker import CircuitBreaker
from steward.tools.registry import Tool, ToolContext
from steward.tools.resilience import ToolResilience
from steward.tools.settings import ToolSettings

# Attributes on `execute_tool` spans (Steward's own, beside the GenAI conventions' names).
BREAKER_STATE = "steward.tool.breaker.state"
ATTEMPTS = "steward.tool.attempts"

DEFAULT_THREADS = 16


class ToolTimeout(TimeoutError):
    """One attempt ran past the tool's `timeout_s` (retried when `retry_on` has TimeoutError)."""


class ToolRunner:
    """One per engine: the tool thread pool and the breakers, shared by every run it executes."""

    def __init__(
        self,
        *,
        threads: int = DEFAULT_THREADS,
        overrides: Mapping[str, ToolSettings] | None = None,
        metrics: ToolMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if threads < 1:
            raise UserError(f"tool_threads must be at least 1, not {threads}")
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="steward-tool")
        self.metrics = metrics or ToolMetrics()
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._rng = rng or random.Random()
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def close(self) -> None:
        """Stop taking work; threads still inside a tool finish on their own."""
        self.threads.shutdown(wait=False, cancel_futures=True)

    def resilience(self, tool: Tool) -> ToolResilience:
        """The tool's declaration with this deployment's overrides for its name applied."""
        return tool.resilience.overridden(self._overrides.get(tool.name))

    def breaker(self, tool: str, tenant_id: str, resilience: ToolResilience) -> CircuitBreaker:
        key = (tool, tenant_id)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                tool,
                failure_threshold=resilience.breaker_failures,
                cooloff_s=resilience.breaker_cooloff_s,
                clock=self._clock,
                on_change=lambda _, state: self.metrics.breaker_changed(tool, tenant_id, state),
            )
            self._breakers[key] = breaker
        return breaker

    async def invoke(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        context: ToolContext,
        *,
        span: Span | None = None,
    ) -> Any:
        """Validate and call `tool`; a JSON-ready result, or `ToolError` for the model to see."""
        kwargs = tool.validate(arguments)  # the model's mistake: neither retried nor counted
        policy = self.resilience(tool)
        breaker = None
        if policy.breaker_failures > 0:
            breaker = self.breaker(tool.name, context.tenant_id, policy)
            if not breaker.allow():
                self.metrics.refused.labels(tool.name, context.tenant_id).inc()
                _mark(span, breaker, attempts=0)
                wait_s = breaker.retry_in_s()
                until = (
                    f"for the next {math.ceil(wait_s)} s"
                    if wait_s > 0
                    else "until a call in flight shows it has recovered"
                )
                raise ToolError(
                    f"tool {tool.name!r} is unavailable: it failed {policy.breaker_failures} "
                    f"times in a row, so it is not called {until}. Carry on without it or use "
                    "another tool."
                )
        attempts = 0
        started = time.perf_counter()
        try:
            while True:
                attempts += 1
                try:
                    result = await self._attempt(tool, kwargs, context, policy)
                except Exception as exc:
                    answer = isinstance(exc, ToolError) and not isinstance(exc, Retryable)
                    if not answer and attempts <= policy.retries and policy.is_retryable(exc):
                        self.metrics.retries.labels(tool.name).inc()
                        await asyncio.sleep(policy.backoff_s(attempts - 1, self._rng))
                        continue
                    if answer:
                        if breaker is not None:
                            breaker.release()
                        raise
                    if breaker is not None:
                        breaker.failure()
                    raise _final_error(tool, exc, attempts) from exc
                if breaker is not None:
                    breaker.success()
                return result
        except BaseException:
            if breaker is not None:
                breaker.release()  # cancelled mid-probe: let the next caller probe instead
            raise
        finally:
            _mark(span, breaker, attempts)
            self.metrics.tool_call_ended(tool.name, started, sys.exc_info()[1])

    async def _attempt(
        self, tool: Tool, kwargs: dict[str, Any], context: ToolContext, policy: ToolResilience
    ) -> Any:
        if policy.timeout_s is None:
            return await tool.call(kwargs, context, threads=self.threads)
        try:
            async with asyncio.timeout(policy.timeout_s) as scope:
                return await tool.call(kwargs, context, threads=self.threads)
        except TimeoutError:
            if not scope.expired():
                raise  # the tool's own TimeoutError
            self.metrics.timeouts.labels(tool.name).inc()
            raise ToolTimeout(
                f"tool {tool.name!r} did not answer within {policy.timeout_s:g} s"
            ) from None


def _final_error(tool: Tool, exc: Exception, attempts: int) -> ToolError:
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, ToolTimeout | ToolError):
        return ToolError(f"{exc}{tried}")
    return ToolError(f"tool {tool.name!r} failed{tried}: {type(exc).__name__}: {exc}")


def _mark(span: Span | None, breaker: CircuitBreaker | None, attempts: int) -> None:
    if span is None:
        return
    span.set_attribute(ATTEMPTS, attempts)
    if breaker is not None:
        span.set_attribute(BREAKER_STATE, breaker.state)


_default: ToolRunner | None = None


def default_runner() -> ToolRunner:
    """The process's runner for a `Context` built without one (tests, benchmarks)."""
    global _default
    if _default is None:
        _default = ToolRunner()
    return _default
