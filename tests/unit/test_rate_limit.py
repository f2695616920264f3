"""The token bucket: bursts up to capacity, then refuses with the time until a token returns."""

from __future__ import annotations

from steward.policy.rate_limit import MemoryRateLimiter


def test_bucket_allows_a_burst_then_refuses_with_retry_after() -> None:
    limiter = MemoryRateLimiter(rate_per_minute=60, burst=3)
    assert [limiter.take("k").allowed for _ in range(3)] == [True, True, True]
    refused = limiter.take("k")
    assert not refused.allowed
    assert 0 < refused.retry_after_s <= 1.0


def test_buckets_are_per_key() -> None:
    limiter = MemoryRateLimiter(rate_per_minute=60, burst=1)
    assert limiter.take("a").allowed
    assert limiter.take("b").allowed
    assert not limiter.take("a").allowed
