"""Standby and resume transitions written to the records after the caller has its answer.

One writer task keeps them in order; an end waits for it (`flush`) so an earlier transition
cannot overwrite the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from steward.sandbox.records import SandboxRecords

log = logging.getLogger("steward.sandbox")


class TransitionWriter:
    def __init__(self, records: SandboxRecords) -> None:
        self._records = records
        self._queue: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._write())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def record(self, sandbox_id: str, state: str, standby_mode: str | None = None) -> None:
        self._queue.put_nowait((sandbox_id, state, standby_mode))

    async def flush(self) -> None:
        """Wait until every queued transition is written (nothing to wait for once closed)."""
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def _write(self) -> None:
        while True:
            sandbox_id, state, mode = await self._queue.get()
            try:
                await asyncio.to_thread(
                    self._records.set_state, sandbox_id, state, standby_mode=mode
                )
            except Exception:
                log.exception("could not record sandbox %s as %s", sandbox_id, state)
            finally:
                self._queue.task_done()
