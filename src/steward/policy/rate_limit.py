"""Token-bucket rate limits per API key and per end user, behind one `RateLimiter` protocol.

The embedded bucket lives in process memory; the scale-out one (`rate_limit_redis`) keeps the
same contract in Redis so every API server draws from the same bucket.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Limit:
    """`per_minute` tokens refill continuously; up to `burst` may be spent at once."""

    per_minute: float
    burst: int

    @classmethod
    def of(cls, per_minute: float, burst: int | None = None) -> Limit:
        return cls(per_minute, burst if burst is not None else max(1, math.ceil(per_minute)))

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    unavailable: bool = False  # the limiter's store could not be asked (refused: fail closed)


class RateLimiter(Protocol):
    async def take(self, bucket: str, limit: Limit, cost: float = 1.0) -> Decision:
        """Spend `cost` tokens from `bucket` if it holds them; else say when it will."""

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """Buckets in this process's memory (embedded mode: one process serves every request)."""

    def __init__(self, max_buckets: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, updated)
        self._max_buckets = max_buckets

    async def take(self, bucket: str, limit: Limit, cost: float = 1.0) -> Decision:
        return self.take_now(bucket, limit, cost)

    def take_now(self, bucket: str, limit: Limit, cost: float = 1.0) -> Decision:
        now = time.monotonic()
        tokens, updated = self._buckets.get(bucket, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - updated) * limit.per_second)
        if len(self._buckets) >= self._max_buckets and bucket not in self._buckets:
            self._forget_full_buckets(now, limit)
        if tokens >= cost:
            self._buckets[bucket] = (tokens - cost, now)
            return Decision(True)
        self._buckets[bucket] = (tokens, now)
        return Decision(False, retry_after_s=(cost - tokens) / limit.per_second)

    def _forget_full_buckets(self, now: float, limit: Limit) -> None:
        # A bucket idle long enough to have refilled is the same as no bucket at all.
        refill_s = limit.burst / limit.per_second
        for name in [b for b, (_, t) in self._buckets.items() if now - t > refill_s]:
            del self._buckets[name]

    async def aclose(self) -> None:
        self._buckets.clear()


@dataclass(frozen=True)
class RateLimits:
    """The configured defaults: one limit per API key, another per end user of a tenant."""

    per_key: Limit
    per_user: Limit

    def for_key(self, per_minute: float | None, burst: int | None) -> Limit:
        """A key's own limit where it has one, else the default."""
        if per_minute is None and burst is None:
            return self.per_key
        rate = per_minute if per_minute is not None else self.per_key.per_minute
        return Limit.of(rate, burst)
