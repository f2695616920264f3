"""Spend counters in process memory, for embedded single-process use and tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from steward.models.budget.types import Limit


class MemorySpendCounters:
    """A dict under a lock; the lock (not the event loop) makes reservations atomic, so the
    counters are safe to share between threads too."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}  # counter -> (nano-USD, expires_at)
        self._lock = threading.Lock()
        self._writes = 0

    async def reserve(self, limits: Sequence[Limit], amount_nano: int) -> Limit | None:
        with self._lock:
            for limit in limits:
                if self._current(limit.counter) + amount_nano > limit.limit_nano:
                    return limit
            self._add(limits, amount_nano)
        return None

    async def adjust(self, limits: Sequence[Limit], delta_nano: int) -> None:
        with self._lock:
            self._add(limits, delta_nano)

    async def spent(self, counter: str) -> int:
        with self._lock:
            return self._current(counter)

    async def aclose(self) -> None:
        return None

    def _current(self, counter: str) -> int:
        value = self._values.get(counter)
        if value is None or value[1] < time.time():
            return 0
        return value[0]

    def _add(self, limits: Sequence[Limit], delta: int) -> None:
        for limit in limits:
            self._values[limit.counter] = (
                self._current(limit.counter) + delta,
                max(limit.expires_at, self._values.get(limit.counter, (0, 0.0))[1]),
            )
        self._writes += 1
        if self._writes % 1024 == 0:
            now = time.time()
            for name in [k for k, (_, expiry) in self._values.items() if expiry < now]:
                del self._values[name]
