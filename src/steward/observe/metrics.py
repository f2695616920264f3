"""Prometheus metrics of the model gateway, in the OpenTelemetry GenAI names (dots become
underscores in Prometheus): token usage, operation duration, time to first chunk, spend.

Each `GatewayMetrics` owns its registry, so several runtimes in one process stay apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics", "ToolMetrics"]

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

    def breaker_changed(self, tool: str, tenant: str, state: str) -> None:
        self.breaker.labels(tool, tenant).set(_BREAKER_VALUES.get(state, 0))
        self.breaker_transitions.labels(tool, tenant, state).inc()
