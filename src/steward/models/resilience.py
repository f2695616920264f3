"""Retries with exponential backoff and full jitter, and a circuit breaker per deployment and
model (one model's trouble says nothing about the others served by the same endpoint).

Retried: 408, 429, 5xx (529 included) and connection errors or timeouts, at most 3 times,
waiting at least what `Retry-After` asks. Never retried: any other 4xx, and a 429 that means the
account is out of quota or over its provider-side spend limit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from steward.errors import ModelError, ModelHTTPError, ModelStreamError
from steward.policy.breaker import BreakerState, CircuitBreaker

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "RetryPolicy",
    "is_deployment_failure",
    "is_quota_exhausted",
    "is_rate_limited",
    "is_retryable",
]

# OpenAI `error.code`/`type` and Anthropic `error.details.error_code` values meaning "out of
# money", which no amount of waiting fixes.
QUOTA_CODES = frozenset({"insufficient_quota", "enforced_spend_limit_reached", "billing_error"})


def _codes(body: Any) -> set[str]:
    codes: set[str] = set()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        for key in ("code", "type"):
            if isinstance(error.get(key), str):
                codes.add(error[key])
        details = error.get("details")
        if isinstance(details, dict) and isinstance(details.get("error_code"), str):
            codes.add(details["error_code"])
    return codes


def is_quota_exhausted(exc: BaseException) -> bool:
    if not isinstance(exc, ModelHTTPError) or exc.status_code not in (402, 429):
        return False
    return bool(({exc.error_type or ""} | _codes(exc.body)) & QUOTA_CODES)


def is_retryable(exc: BaseException) -> bool:
    """The gateway's rule, stricter than the SDKs' (no 409, no `x-should-retry`)."""
    if isinstance(exc, ModelHTTPError):
        if is_quota_exhausted(exc):
            return False
        return exc.status_code in (408, 429) or exc.status_code >= 500
    if isinstance(exc, ModelStreamError):
        return exc.retryable
    if isinstance(exc, ModelError):
        return exc.retryable  # transport errors and timeouts are marked retryable
    return False


def is_rate_limited(exc: BaseException) -> bool:
    """A 429 that waiting fixes: the retry logic honours it, so it says nothing about health."""
    return (
        isinstance(exc, ModelHTTPError) and exc.status_code == 429 and not is_quota_exhausted(exc)
    )


def is_deployment_failure(exc: BaseException) -> bool:
    """Failures that say the endpoint is unhealthy (and count towards opening its breaker):
    errors, timeouts, cut streams and an exhausted quota, but not a rate limit."""
    if is_rate_limited(exc):
        return False
    return is_retryable(exc) or is_quota_exhausted(exc)


@dataclass
class RetryPolicy:
    max_retries: int = 3
    base_s: float = 0.5
    max_s: float = 8.0
    max_retry_after_s: float = 60.0  # longer asks are not waited for: fall back instead
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int, retry_after_s: float | None) -> float | None:
        """Seconds before retry number `retry` (0-based), or None to give up on this deployment:
        full jitter over min(max, base·2ⁿ), never less than the server's Retry-After."""
        if retry >= self.max_retries:
            return None
        if retry_after_s is not None and retry_after_s > self.max_retry_after_s:
            return None
        backoff = self.rng.uniform(0, min(self.max_s, self.base_s * 2**retry))
        return max(backoff, retry_after_s or 0.0)
