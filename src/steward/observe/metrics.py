"""Prometheus metrics: the model gateway's in the OpenTelemetry GenAI names (dots become
underscores in Prometheus: token usage, operation duration, time to first chunk, spend) and the
runtime's own under `steward_` names (runs, tools, HTTP, rate limits).

Each `GatewayMetrics` owns its registry, so several runtimes in one process stay apart; the
others register into it. State kept in the database (queue, workers, sandboxes, approvals,
webhooks) is read at scrape time by `steward.observe.store_metrics`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

__all__ = [
    "CONTENT_TYPE_LATEST",
    "OPENMETRICS_CONTENT_TYPE",
    "GatewayMetrics",
    "RuntimeMetrics",
    "ToolMetrics",
    "current_exemplar",
]

_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
_BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per model call (gen_ai.client.token.usage).",
            [*labels, "gen_ai_token_type"],
            buckets=_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of model calls (gen_ai.client.operation.duration).",
            [*labels, "error_type"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first streamed content chunk "
            "(gen_ai.client.operation.time_to_first_chunk).",
            labels,
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.spend = Counter(
            "steward_gateway_spend_usd",
            "USD spent on model calls.",
            ["tenant", "gen_ai_provider_name", "gen_ai_request_model", "source"],
            registry=self.registry,
        )
        self.retries = Counter(
            "steward_gateway_retries",
            "Retried model call attempts.",
            ["deployment"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "steward_gateway_fallbacks",
            "Calls answered by a fallback deployment.",
            ["deployment"],
            registry=self.registry,
        )
        self.refused = Counter(
            "steward_gateway_spend_cap_refusals",
            "Calls refused by a spend cap.",
            ["cap"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "steward_gateway_breaker_state",
            "Circuit breaker per deployment and model: 0 closed, 1 half-open, 2 open.",
            ["deployment", "model"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "steward_gateway_breaker_transitions",
            "Breaker state changes.",
            ["deployment", "model", "state"],
            registry=self.registry,
        )
        self.runtime = RuntimeMetrics(self.registry)

    def breaker_changed(self, deployment: str, model: str, state: str) -> None:
        self.breaker.labels(deployment, model).set(_BREAKER_VALUES.get(state, 0))
        self.breaker_transitions.labels(deployment, model, state).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ToolMetrics:
    """Tool resilience: retries, breaker refusals and breaker state per (tool, tenant).

    Registered in the gateway's registry so `/metrics` serves them with the rest.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.retries = Counter(
            "steward_tool_retries",
            "Retried tool call attempts.",
            ["tool"],
            registry=self.registry,
        )
        self.timeouts = Counter(
            "steward_tool_timeouts",
            "Tool call attempts that ran past their timeout_s.",
            ["tool"],
            registry=self.registry,
        )
        self.refused = Counter(
            "steward_tool_breaker_refusals",
            "Tool calls answered at once because the tool's breaker was open.",
            ["tool", "tenant"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "steward_tool_breaker_state",
            "Circuit breaker per tool and tenant: 0 closed, 1 half-open, 2 open.",
            ["tool", "tenant"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "steward_tool_breaker_transitions",
            "Tool breaker state changes.",
            ["tool", "tenant", "state"],
            registry=self.registry,
        )
        self.tool_duration = Histogram(
            "steward_tool_call_duration_seconds",
            "Duration of tool calls, retries included.",
            ["tool"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.tool_errors = Counter(
            "steward_tool_call_errors",
            "Tool calls that ended in an error, by tool and error type.",
            ["tool", "error_type"],
            registry=self.registry,
        )

    def breaker_changed(self, tool: str, tenant: str, state: str) -> None:
        self.breaker.labels(tool, tenant).set(_BREAKER_VALUES.get(state, 0))
        self.breaker_transitions.labels(tool, tenant, state).inc()

    def tool_call_ended(self, tool: str, started: float, error: BaseException | None) -> None:
        """Called from a `finally:` with `sys.exc_info()[1]`; inside the tool's span."""
        exemplar = current_exemplar()
        self.tool_duration.labels(tool).observe(time.perf_counter() - started, exemplar)
        if error is not None:
            self.tool_errors.labels(tool, type(error).__name__).inc(exemplar=exemplar)


class EndedRun(Protocol):
    @property
    def tenant_id(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def started_at(self) -> datetime | None: ...


class RunOutcome(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def stop_reason(self) -> str | None: ...


class RunTotals(Protocol):
    @property
    def steps(self) -> int: ...
    @property
    def cost_usd(self) -> float: ...


_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_STEP_BUCKETS = (1, 2, 3, 5, 8, 12, 20, 30, 50, 100)


def current_exemplar() -> dict[str, str] | None:
    """`{"trace_id": …}` of the span being recorded, so a scrape links a bucket to a trace
    (served only in the OpenMetrics format); None outside any recorded span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return {"trace_id": format(context.trace_id, "032x")}


class RuntimeMetrics:
    """The run engine's, tools' and HTTP server's own metrics (`steward_` names), registered
    in the gateway's registry so `/metrics` serves them with the GenAI ones."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runs_started = Counter(
            "steward_runs_started", "Runs whose execution began.", ["agent"], registry=registry
        )
        self.runs = Counter(
            "steward_runs",
            "Runs that ended, by agent, status and stop reason.",
            ["agent", "status", "stop_reason"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "steward_run_duration_seconds",
            "Wall time from a run's first start to its end.",
            ["agent", "status"],
            buckets=_RUN_BUCKETS,
            registry=registry,
        )
        self.run_steps = Histogram(
            "steward_run_steps",
            "Steps (model and tool calls) per ended run.",
            ["agent"],
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.run_spend = Counter(
            "steward_run_spend_usd",
            "USD spent by ended runs, by tenant and agent.",
            ["tenant", "agent"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "steward_rate_limit_refusals",
            "Requests refused by a rate limit, by scope (key or user).",
            ["scope"],
            registry=registry,
        )
        self.sandbox_exec = Histogram(
            "steward_sandbox_exec_duration_seconds",
            "Duration of commands run in sandboxes, by backend.",
            ["backend"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.sandbox_exec_errors = Counter(
            "steward_sandbox_exec_errors",
            "Sandbox commands that could not run or finish (not a non-zero exit).",
            ["backend", "error_type"],
            registry=registry,
        )
        self.http_requests = Counter(
            "steward_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "steward_http_request_duration_seconds",
            "Time to answer an HTTP request (to the end of the body).",
            ["method", "route"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )

        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def run_started(self, agent: str) -> None:
        self.runs_started.labels(agent).inc()

    def run_ended(self, run: EndedRun, outcome: RunOutcome, totals: RunTotals) -> None:
        self.runs.labels(run.agent, outcome.status, outcome.stop_reason or "").inc()
        self.run_steps.labels(run.agent).observe(totals.steps)
        if totals.cost_usd:
            self.run_spend.labels(run.tenant_id, run.agent).inc(totals.cost_usd)
        if run.started_at is not None:
            began = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
            elapsed = max((datetime.now(UTC) - began).total_seconds(), 0.0)
            self.run_duration.labels(run.agent, outcome.status).observe(elapsed)

    def sandbox_exec_ended(self, backend: str, started: float, error: BaseException | None) -> None:
        """Called from a `finally:` with `sys.exc_info()[1]`."""
        exemplar = current_exemplar()
        self.sandbox_exec.labels(backend).observe(time.perf_counter() - started, exemplar)
        if error is not None and not isinstance(error, GeneratorExit):
            self.sandbox_exec_errors.labels(backend, type(error).__name__).inc(exemplar=exemplar)

    def http_answered(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        # On every request: the labelled children are looked up once, not through `labels()`.
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(elapsed_s)

    def exposition(self, openmetrics: bool) -> tuple[bytes, str]:
        """The registry's text in the format asked for: OpenMetrics carries the exemplars."""
        if openmetrics:
            return openmetrics_latest(self.registry), OPENMETRICS_CONTENT_TYPE  # type: ignore[no-untyped-call]
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
