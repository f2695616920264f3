"""The batch driver: in every process that executes runs, claims batch items and starts a run
for each through `start_run` (the runs API's own door), then records the runs' results.

Exactly once across crashes: an item's attempt runs on a thread whose id is derived from the
batch id, the item's index and the attempt number (`item_thread_id`). A driver that claims an
item whose previous claimer died looks on that thread first and adopts the run it finds instead
of starting a second one; two drivers racing to start it meet the thread's `reject` strategy,
and the loser adopts the winner's run. A run, once started, is the run engine's to finish or
recover on another worker, and any driver records its end (`BatchStore.settle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from steward.batch.store import BatchStore, Claimed, item_thread_id
from steward.batch.tables import BatchRow
from steward.errors import ApiError, Conflict, UserError
from steward.runs.engine import RunEngine, RunRequest
from steward.runs.launch import start_run
from steward.store.assistants import AssistantStore
from steward.store.database import Database

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.runs.platform import Platform

log = logging.getLogger(__name__)


class BatchDriver:
    def __init__(
        self,
        db: Database,
        engine: RunEngine,
        assistants: AssistantStore,
        *,
        interval_s: float = 0.2,
        lease_s: float = 30.0,
        per_tick: int = 64,
    ) -> None:
        self.store = BatchStore(db)
        self.engine = engine
        self.assistants = assistants
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.per_tick = per_tick
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-driver")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self.tick()
            except Exception:  # a lost database: the next tick tries again
                log.exception("batch driver tick failed")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    async def tick(self) -> bool:
        """One pass over the active batches; whether it claimed anything."""
        claimed_any = False
        for batch in await asyncio.to_thread(self.store.active):
            await asyncio.to_thread(self.store.settle, batch)
            if batch.status != "running":
                continue
            claimed = await asyncio.to_thread(
                self.store.claim, batch, self.owner, self.lease_s, self.per_tick
            )
            claimed_any = claimed_any or bool(claimed)
            await asyncio.gather(*(self._launch(batch, item) for item in claimed))
        return claimed_any

    async def _launch(self, batch: BatchRow, item: Claimed) -> None:
        thread_id = item_thread_id(item.batch_id, item.idx, item.attempt)
        run_id = await self._existing_run(item, thread_id)
        if run_id is None:
            try:
                run = await start_run(
                    self.engine,
                    self.assistants,
                    RunRequest(
                        tenant_id=item.tenant_id,
                        agent=item.agent,
                        input=item.input,
                        thread_id=thread_id,
                        metadata={"batch_id": item.batch_id, "batch_index": item.idx},
                        multitask_strategy="reject",
                    ),
                )
                run_id = run.id
            except Conflict:  # another driver started it a moment ago: that run is the one
                run_id = await self._existing_run(item, thread_id)
                if run_id is None:
                    return  # it is still being recorded; the claim lapses and is looked at again
            except (UserError, ApiError) as exc:
                await asyncio.to_thread(self.store.refused, item, self.owner, str(exc))
                return
        if not await asyncio.to_thread(self.store.submitted, item, self.owner, thread_id, run_id):
            # The batch was cancelled (or the claim taken over) while the run started.
            fresh = await asyncio.to_thread(self.store.get, batch.tenant_id, batch.id)
            if fresh is not None and fresh.status == "cancelled":
                with contextlib.suppress(ApiError):
                    await self.engine.cancel(item.tenant_id, run_id)

    async def _existing_run(self, item: Claimed, thread_id: str) -> str | None:
        """The run already started for this attempt; None (and a new thread) if there is none.

        The thread is created first: on the common path (a fresh attempt) that one insert is
        the whole look; only a thread that exists already is searched for its run.
        """
        store = self.engine.store
        metadata = {"batch_id": item.batch_id, "batch_index": item.idx}
        try:
            await asyncio.to_thread(store.create_thread, item.tenant_id, thread_id, metadata)
            return None
        except IntegrityError:
            pass
        runs = await asyncio.to_thread(
            store.list_runs, item.tenant_id, thread_id=thread_id, limit=1
        )
        return runs[0].id if runs else None


def build_driver(
    settings: Settings, db: Database, engine: RunEngine, platform: Platform
) -> BatchDriver:
    return BatchDriver(
        db,
        engine,
        platform.assistants,
        interval_s=settings.batch_poll_interval_s,
        lease_s=settings.batch_lease_s,
    )
