"""Authentication failures are counted per tenant, source and reason over a window, with a
bounded number of buckets, and each finished window yields exactly one record."""

from __future__ import annotations

from typing import Any

from steward.audit.failures import OVERFLOW, AuthFailureAggregator, Failure


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _failure(source: str, reason: str = "the API key is unknown or revoked") -> Failure:
    return Failure("acme", source, reason, "GET", "/threads", None)


def test_one_record_per_source_and_reason_per_window() -> None:
    written: list[tuple[str, str, dict[str, Any]]] = []
    clock = Clock()
    aggregator = AuthFailureAggregator(lambda *event: written.append(event), clock=clock)
    for _ in range(500):
        aggregator.add(_failure("10.0.0.1"))
    aggregator.add(_failure("10.0.0.2"))
    assert aggregator.flush_due() == 0  # the window is still open
    clock.now += aggregator.window_s
    assert aggregator.flush_due() == 2
    counts = {data["client"]: data["count"] for _, _, data in written}
    assert counts == {"10.0.0.1": 500, "10.0.0.2": 1}
    assert aggregator.flush_all() == 0


def test_distinct_sources_beyond_the_bound_share_one_overflow_bucket() -> None:
    written: list[tuple[str, str, dict[str, Any]]] = []
    aggregator = AuthFailureAggregator(
        lambda *event: written.append(event), max_buckets=10, clock=Clock()
    )
    for n in range(1000):
        aggregator.add(_failure(f"10.0.{n // 256}.{n % 256}", reason=f"token alg {n!r}"))
    assert aggregator.flush_all() == 11
    overflow = [data for _, _, data in written if data["client"] == OVERFLOW]
    assert [data["count"] for data in overflow] == [990]
    assert len(overflow[0]["reasons"]) == 5  # a sample, not every attacker-chosen text
