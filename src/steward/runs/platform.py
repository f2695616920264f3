"""LangGraph Platform's resources beside the run engine: assistants, the store, crons.

Built by the runtime for every process; the cron scheduler runs only in processes that execute
runs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from steward.errors import NotFound
from steward.runs import agent_store
from steward.runs.crons import CronScheduler
from steward.runs.engine import RunEngine, RunRequest
from steward.runs.launch import start_run
from steward.store.assistants import AssistantStore
from steward.store.crons import Cron, CronStore, tick_label
from steward.store.database import Database
from steward.store.items import ItemStore, SemanticIndex


class Platform:
    def __init__(
        self,
        db: Database,
        engine: RunEngine,
        *,
        cron_interval_s: float,
        schedule: bool,
        index: SemanticIndex | None = None,
    ) -> None:
        self.engine = engine
        self.assistants = AssistantStore(
            db,
            lambda: (
                (a.name, a.description, {"limits": a.limits.to_json()})
                for a in engine.app.agents.values()
            ),
        )
        self.items = ItemStore(db, index)
        self.crons = CronStore(db)
        agent_store.install(self.items)
        self.scheduler = (
            CronScheduler(self.crons, self.fire, interval_s=cron_interval_s, items=self.items)
            if schedule
            else None
        )

    async def fire(self, cron: Cron, tick: datetime) -> str:
        """Start the run of one cron tick, marked with the cron and tick it belongs to."""
        payload = cron.payload
        if cron.thread_id is not None:
            thread = await asyncio.to_thread(
                self.engine.store.get_thread, cron.tenant_id, cron.thread_id
            )
            if thread is None:
                raise NotFound("thread", cron.thread_id)
        metadata = {
            **(payload.get("metadata") or {}),
            "cron_id": cron.id,
            "cron_tick": tick_label(tick),
        }
        run = await start_run(
            self.engine,
            self.assistants,
            RunRequest(
                tenant_id=cron.tenant_id,
                agent=cron.assistant_id,
                input=payload.get("input"),
                thread_id=cron.thread_id,
                metadata=metadata,
                user_id=cron.user_id,
                webhook=payload.get("webhook"),
                multitask_strategy=payload.get("multitask_strategy") or "enqueue",
            ),
            config=payload.get("config"),
            context=payload.get("context"),
        )
        return run.id

    def wake(self) -> None:
        """Crons changed in this process: its scheduler looks again at once."""
        if self.scheduler is not None:
            self.scheduler.wake()

    def start(self) -> None:
        if self.scheduler is not None:
            self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
