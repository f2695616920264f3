"""Rate limiting at the edge: the API key's bucket, then the end user's, before any work.

Refusals are 429 problems with `Retry-After`; a limiter that cannot reach its store and is
configured to fail closed answers 503 with `Retry-After` instead.
"""

from __future__ import annotations

import math
from typing import Any

from steward.errors import ApiError
from steward.policy.rate_limit import Limit, RateLimiter, RateLimits
from steward.security.keys import Principal


def buckets(
    limits: RateLimits, principal: Principal, user: str | None
) -> list[tuple[str, str, Limit]]:
    """(what, bucket name, limit) for the key and, when named, the tenant's end user."""
    key_limit = limits.for_key(principal.rate_limit_per_minute, principal.rate_limit_burst)
    chosen = [("API key", f"key:{principal.key_id}", key_limit)]
    if user:
        chosen.append(("user", f"user:{principal.tenant_id}:{user}", limits.per_user))
    return chosen


async def enforce(state: Any, principal: Principal, user: str | None, *, key: bool = True) -> None:
    """Take one token from each bucket or raise the problem that refuses the request."""
    limiter: RateLimiter = state.rate_limiter
    limits: RateLimits = state.rate_limits
    for what, bucket, limit in buckets(limits, principal, user):
        if what == "API key" and not key:
            continue
        decision = await limiter.take(bucket, limit)
        if decision.unavailable:
            raise ApiError(
                503,
                "rate-limiter-unavailable",
                "Rate limiter unavailable",
                "the rate limiter's store cannot be reached and it is configured to fail closed",
                headers={"Retry-After": "1"},
            )
        if not decision.allowed:
            state.gateway.metrics.runtime.rate_limited.labels(what).inc()
            retry = max(1, math.ceil(decision.retry_after_s))
            raise ApiError(
                429,
                "rate-limited",
                "Too many requests",
                f"rate limit exceeded for this {what} ({limit.per_minute:g}/min, burst "
                f"{limit.burst}); retry in {retry}s",
                headers={"Retry-After": str(retry)},
            )
