"""Which failures are retried, how long the gateway waits, and the breaker's state machine."""

from __future__ import annotations

import random

import pytest

from steward.errors import ModelError, ModelHTTPError, ModelStreamError
from steward.models.resilience import (
    CircuitBreaker,
    RetryPolicy,
    is_deployment_failure,
    is_retryable,
)


def _http(status: int, body: object = None, error_type: str | None = None) -> ModelHTTPError:
    return ModelHTTPError(
        "x", provider="p", status_code=status, retryable=True, body=body, error_type=error_type
    )


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable(_http(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_client_errors_are_never_retried(status: int) -> None:
    assert not is_retryable(_http(status))


def test_quota_and_spend_limit_429s_are_never_retried() -> None:
    openai_quota = _http(
        429, {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}
    )
    anthropic_limit = _http(
        429,
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "details": {"error_code": "enforced_spend_limit_reached"},
            },
        },
    )
    assert not is_retryable(openai_quota)
    assert not is_retryable(anthropic_limit)


def test_a_rate_limit_is_retried_but_says_nothing_about_the_endpoints_health() -> None:
    quota = _http(429, {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}})

    assert not is_deployment_failure(_http(429))
    assert is_deployment_failure(quota)  # an exhausted account fails every call
    assert all(is_deployment_failure(_http(status)) for status in (408, 500, 503, 529))
    assert is_deployment_failure(ModelError("refused", retryable=True))


def test_connection_errors_and_cut_streams_follow_their_flag() -> None:
    assert is_retryable(ModelError("refused", retryable=True))
    assert is_retryable(ModelStreamError("cut", retryable=True))
    assert not is_retryable(ModelStreamError("bad json", retryable=False))


def test_backoff_is_full_jitter_capped_and_at_most_three_retries() -> None:
    policy = RetryPolicy(max_retries=3, base_s=0.5, max_s=8.0, rng=random.Random(1))
    for retry in range(3):
        delays = [policy.delay(retry, None) for _ in range(200)]
        ceiling = min(8.0, 0.5 * 2**retry)
        assert all(d is not None and 0 <= d <= ceiling for d in delays)
        assert max(d for d in delays if d is not None) > ceiling / 2  # spread, not fixed
    assert policy.delay(3, None) is None


def test_retry_after_is_a_floor_and_too_long_a_wait_gives_up() -> None:
    policy = RetryPolicy(base_s=0.01, max_retry_after_s=30)
    assert policy.delay(0, 2.5) == pytest.approx(2.5, abs=0.011)
    assert policy.delay(0, 120) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_consecutive_failures_then_probes_once_and_closes() -> None:
    clock = Clock()
    changes: list[str] = []
    breaker = CircuitBreaker(
        "d",
        failure_threshold=3,
        cooloff_s=10,
        clock=clock,
        on_change=lambda _name, state: changes.append(state),
    )
    breaker.failure()
    breaker.failure()
    breaker.success()  # not consecutive: the count starts over
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()

    clock.now = 10
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.failure()
    assert breaker.state == "open"

    clock.now = 20
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert changes == ["open", "half_open", "open", "half_open", "closed"]
