"""The watchdog over held sandboxes: ends those past their lifetime or CPU budget and puts idle
ones to standby."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from steward.sandbox.held import HeldSandboxes, LiveSandbox

log = logging.getLogger("steward.sandbox")
WATCH_INTERVAL_S = 0.25


class Watchdog:
    def __init__(self, held: HeldSandboxes, interval_s: float = WATCH_INTERVAL_S) -> None:
        self._held = held
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            for sandbox_id, live in list(self._held.live.items()):
                try:
                    await self.check(sandbox_id, live)
                except Exception:  # one broken sandbox must not stop the watchdog
                    log.exception("sandbox watchdog failed on %s", sandbox_id)

    async def check(self, sandbox_id: str, live: LiveSandbox) -> None:
        if self._held.live.get(sandbox_id) is not live:
            return  # ended while an earlier sandbox was checked
        now = time.monotonic()
        if live.deadline is not None and now >= live.deadline:
            await self._held.end(sandbox_id, "deleted", "its lifetime (timeout_s) ended")
            return
        budget = live.spec.limits.cpu_seconds
        if budget is not None and live.instance.cpu_seconds() > budget:
            await self._held.end(sandbox_id, "failed", f"it used its CPU budget of {budget}s")
            return
        idle = now - live.last_active >= live.idle_timeout_s
        if idle and live.busy == 0 and live.standby is None and live.backend.standby_modes:
            async with live.lock:
                if live.busy == 0 and live.standby is None:
                    await self._held.standby(sandbox_id, live, None)
