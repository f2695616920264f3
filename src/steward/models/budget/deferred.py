"""Settlement off the request path: what a call gives back of its reservation is batched and
written every `interval_s`, instead of one counter transaction per call before it answers.

Only releases wait. A reservation is an upper bound, so a pending release only makes the
counters read higher than the truth (never lets a reservation pass a cap), and a reservation
refused while releases on its counters are pending is retried once they are written, so the
refusal is as exact as without batching. A rare settlement above the reservation is written at
once. Readers (`spent`) see every release made in this process; other processes see them
within `interval_s`. A process killed with releases pending leaves its counters high by them,
as a crash between reservation and settlement always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from steward.models.budget.types import Limit, SpendCounters

log = logging.getLogger("steward.spend")

DEFAULT_INTERVAL_S = 0.05


class DeferredReleases:
    """Wraps any `SpendCounters` backend and keeps its contract."""

    def __init__(self, inner: SpendCounters, *, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.inner = inner
        self.interval_s = interval_s
        self._pending: dict[tuple[Limit, ...], int] = {}  # the same scope's calls share a key
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def reserve(self, limits: Sequence[Limit], amount_nano: int) -> Limit | None:
        refused = await self.inner.reserve(limits, amount_nano)
        if refused is not None and (self._flushing.locked() or self._pending_on(limits)):
            await self.flush()
            refused = await self.inner.reserve(limits, amount_nano)
        return refused

    async def adjust(self, limits: Sequence[Limit], delta_nano: int) -> None:
        if delta_nano >= 0:  # more than reserved: counting it late could let a cap be passed
            if delta_nano:
                await self.inner.adjust(limits, delta_nano)
            return
        key = tuple(limits)
        self._pending[key] = self._pending.get(key, 0) + delta_nano
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def spent(self, counter: str) -> int:
        await self.flush()
        return await self.inner.spent(counter)

    async def flush(self) -> None:
        """Write every release made so far (waiting for one already being written)."""
        async with self._flushing:
            batch, self._pending = self._pending, {}
            for position, (limits, delta) in enumerate(batch.items()):
                try:
                    await self.inner.adjust(limits, delta)
                except BaseException:
                    self._requeue(list(batch.items())[position:])
                    raise

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        finally:
            await self.inner.aclose()

    def _pending_on(self, limits: Sequence[Limit]) -> bool:
        counters = {limit.counter for limit in limits}
        return any(limit.counter in counters for key in self._pending for limit in key)

    def _requeue(self, items: list[tuple[tuple[Limit, ...], int]]) -> None:
        for limits, delta in items:
            self._pending[limits] = self._pending.get(limits, 0) + delta

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except Exception:  # kept for the next round; the counters only read high meanwhile
                log.exception("could not write spend releases; retrying")
