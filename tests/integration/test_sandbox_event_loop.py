"""The sandbox manager's database calls run off the event loop.

Another PostgreSQL session locks the sandboxes table (ACCESS EXCLUSIVE blocks reads too); each
manager call is started and the event loop must then see, by its own means, that the call's
query is waiting on that lock, and release it. A call that queried on the loop itself would
freeze the loop until the hang guard (a timer thread) released the lock instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from steward.errors import SandboxStateError
from steward.sandbox.manager import CreateOptions, SandboxManager
from steward.sandbox.types import ExecRequest
from steward.store import migrate
from steward.store.database import Database
from steward.store.schema import Tenant
from tests.integration.sandbox_support import TENANT

HANG_GUARD_S = 20.0
WAITING = "SELECT count(*) FROM pg_locks WHERE relation = 'sandboxes'::regclass AND NOT granted"


@pytest.fixture
async def ended(
    postgres_database: str, tmp_path: Path
) -> AsyncIterator[tuple[str, SandboxManager, str]]:
    """A manager on PostgreSQL and the id of a sandbox it created and deleted."""
    migrate.upgrade(postgres_database)
    db = Database(postgres_database)
    with db.session() as session:
        session.add(Tenant(id=TENANT, name=TENANT))
    manager = SandboxManager(db, tmp_path / "home", allow_unisolated=True)
    await manager.start()
    info = await manager.create(TENANT, CreateOptions(backend="process"))
    await manager.delete(TENANT, info.id)
    yield postgres_database, manager, info.id
    await manager.close()
    db.dispose()


async def released_by_the_loop(url: str, call: Callable[[], Awaitable[Any]]) -> str:
    """Run `call` with the table locked; who released the lock: "loop" or "hang guard"."""
    released: list[str] = []
    guard = threading.Lock()
    with psycopg.connect(url) as locker, psycopg.connect(url, autocommit=True) as observer:
        locker.execute("LOCK TABLE sandboxes IN ACCESS EXCLUSIVE MODE")

        def release(by: str) -> None:
            with guard:
                if not released:
                    released.append(by)
                    locker.commit()

        timer = threading.Timer(HANG_GUARD_S, release, args=("hang guard",))
        timer.start()
        task = asyncio.ensure_future(call())
        try:
            while not released:
                row = observer.execute(WAITING).fetchone()
                if row is not None and row[0] > 0:
                    release("loop")
                await asyncio.sleep(0.01)
            await task
        finally:
            timer.cancel()
    return released[0]


async def test_describe_reads_off_the_event_loop(ended: tuple[str, SandboxManager, str]) -> None:
    url, manager, sandbox_id = ended
    by = await released_by_the_loop(url, lambda: manager.describe(TENANT, sandbox_id))
    assert by == "loop"


async def test_listing_reads_off_the_event_loop(ended: tuple[str, SandboxManager, str]) -> None:
    url, manager, _ = ended
    listing = lambda: manager.describe_all(TENANT, include_ended=True)  # noqa: E731
    assert await released_by_the_loop(url, listing) == "loop"


async def test_deleting_an_ended_sandbox_reads_off_the_event_loop(
    ended: tuple[str, SandboxManager, str],
) -> None:
    url, manager, sandbox_id = ended
    assert await released_by_the_loop(url, lambda: manager.delete(TENANT, sandbox_id)) == "loop"


async def test_exec_in_an_ended_sandbox_reads_off_the_event_loop(
    ended: tuple[str, SandboxManager, str],
) -> None:
    url, manager, sandbox_id = ended

    async def exec_refused() -> None:
        with pytest.raises(SandboxStateError, match="is deleted"):
            await manager.run(TENANT, sandbox_id, ExecRequest(["true"]))

    assert await released_by_the_loop(url, exec_refused) == "loop"


async def test_create_writes_off_the_event_loop(ended: tuple[str, SandboxManager, str]) -> None:
    url, manager, _ = ended
    created: list[str] = []

    async def create() -> None:
        created.append((await manager.create(TENANT, CreateOptions(backend="process"))).id)

    assert await released_by_the_loop(url, create) == "loop"
    await manager.delete(TENANT, created[0])
