"""Token-bucket rate limits per API key (and per end user when the caller names one).

The embedded bucket lives in process memory; the scale-out one (Redis) keeps the same contract.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0


class MemoryRateLimiter:
    """`rate_per_minute` tokens refill continuously; bursts up to `burst` are allowed."""

    def __init__(self, rate_per_minute: float, burst: int | None = None) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate_per_minute)))
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def take(self, key: str, cost: float = 1.0) -> Decision:
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return Decision(True)
        self._buckets[key] = (tokens, now)
        return Decision(False, retry_after_s=(cost - tokens) / self.rate)
