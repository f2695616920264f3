"""Releases batched off the call's path (`DeferredReleases` over real SQLite counters): nothing
a call gives back is lost, refusals stay exact, and a cap is never passed meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from steward.models.budget import NANO_USD, Limit
from steward.models.budget.database import DatabaseSpendCounters
from steward.models.budget.deferred import DeferredReleases
from steward.store import migrate
from steward.store.database import Database


class CountingCounters(DatabaseSpendCounters):
    """The real SQLite counters, counting the adjustment transactions they are asked for."""

    adjustments = 0

    async def adjust(self, limits: Sequence[Limit], delta_nano: int) -> None:
        self.adjustments += 1
        await super().adjust(limits, delta_nano)


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[CountingCounters]:
    url = f"sqlite:///{tmp_path / 'steward.db'}"
    migrate.upgrade(url)
    db = Database(url)
    yield CountingCounters(db)
    db.dispose()


def _limit(counter: str, usd: float) -> Limit:
    return Limit(counter, "key_daily", round(usd * NANO_USD), time.time() + 3600, None)


async def test_a_release_is_written_by_the_background_writer_not_by_the_call(
    inner: CountingCounters,
) -> None:
    counters = DeferredReleases(inner, interval_s=0.01)
    limit = _limit("key:a:day", 1.0)
    assert await counters.reserve([limit], 600) is None

    await counters.adjust([limit], 250 - 600)

    assert inner.adjustments == 0
    assert await inner.spent(limit.counter) == 600  # the call answered before the release
    assert counters._task is not None
    await counters._task  # the writer stops once nothing is pending
    assert inner.adjustments == 1
    assert await inner.spent(limit.counter) == 250
    await counters.aclose()


async def test_releases_of_many_calls_on_one_scope_are_written_in_one_transaction(
    inner: CountingCounters,
) -> None:
    counters = DeferredReleases(inner, interval_s=3600)
    limit = _limit("key:b:day", 1.0)

    async def call() -> None:
        assert await counters.reserve([limit], 1000) is None
        await counters.adjust([limit], 400 - 1000)

    await asyncio.gather(*(call() for _ in range(50)))

    assert await counters.spent(limit.counter) == 50 * 400  # a reader sees every release
    assert inner.adjustments == 1
    await counters.aclose()


async def test_a_reservation_refused_only_because_releases_are_pending_is_granted(
    inner: CountingCounters,
) -> None:
    counters = DeferredReleases(inner, interval_s=3600)
    limit = _limit("run:c", 1.0)
    assert await counters.reserve([limit], NANO_USD * 8 // 10) is None
    await counters.adjust([limit], -(NANO_USD * 7 // 10))  # the call cost a tenth

    # Without the pending release the counter reads 0.8 and 0.8 more would pass $1.
    assert await counters.reserve([limit], NANO_USD * 8 // 10) is None
    assert await counters.spent(limit.counter) == NANO_USD * 9 // 10
    assert await counters.reserve([limit], NANO_USD * 2 // 10) == limit  # still capped
    await counters.aclose()


async def test_a_settlement_above_the_reservation_is_counted_at_once(
    inner: CountingCounters,
) -> None:
    counters = DeferredReleases(inner, interval_s=3600)
    limit = _limit("key:d:day", 1.0)
    assert await counters.reserve([limit], 100) is None

    await counters.adjust([limit], 50)

    assert await inner.spent(limit.counter) == 150
    await counters.aclose()


async def test_closing_writes_what_is_still_pending(inner: CountingCounters) -> None:
    counters = DeferredReleases(inner, interval_s=3600)
    limit = _limit("key:e:day", 1.0)
    assert await counters.reserve([limit], 900) is None
    await counters.adjust([limit], -800)

    await counters.aclose()

    assert await inner.spent(limit.counter) == 100
