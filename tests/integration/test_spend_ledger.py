"""The spend ledger on a real SQLite file: a flush returns only once every record added before
it is readable, including a batch the background writer already has in flight."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event

from steward.store import migrate
from steward.store.database import Database
from steward.store.schema import SpendRecord
from steward.store.spend import SpendLedger


def _record(tenant: str) -> SpendRecord:
    return SpendRecord(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        source="proxy",
        provider="openai",
        deployment="openai",
        model="gpt-4.1-mini",
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.001,
    )


async def test_a_flush_waits_for_the_batch_the_background_writer_has_in_flight(
    tmp_path: Path,
) -> None:
    path = tmp_path / "steward.db"
    migrate.upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    writing = threading.Event()

    def on_execute(*_: Any) -> None:
        writing.set()

    event.listen(db.engine, "before_cursor_execute", on_execute)
    ledger = SpendLedger(db, interval_s=0.0)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment
    release = threading.Timer(0.5, blocker.rollback)
    try:
        for _ in range(20):
            ledger.add(_record("t"))
        # The background writer took the whole batch and is waiting on the lock with it.
        assert await asyncio.to_thread(writing.wait, 10)
        release.start()

        await ledger.flush()
        (total,) = ledger.totals("t", "tenant")
    finally:
        release.join()
        blocker.close()
        await ledger.aclose()
        db.dispose()

    assert total.calls == 20
