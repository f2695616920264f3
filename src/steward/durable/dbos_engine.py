"""`DurableEngine` on DBOS Transact: the only module in Steward that imports `dbos`.

Steward pins the application version (so runs recover across restarts of new code), stores
step results as portable JSON instead of pickle, and gives each worker a stable executor id.

Steps are not DBOS steps: `steward.durable.journal` records them (one `INSERT` each, group
committed), fenced by the ownership token DBOS gives each execution. DBOS starts, queues,
recovers and finishes runs, and carries `receive`/`send`.

Private DBOS symbols used here (the version is pinned; tests/integration/test_dbos_contract.py
checks each): `DBOS._recover_pending_workflows` (the sweeper hands a dead worker's runs back),
`dbos._dbos._dbos_global_instance` and its `_active_workflows_set` (shutdown waits for
outcomes being written), `dbos._context.get_local_dbos_context()` and its `owner_xid` (the
execution's ownership token, which the journal's `INSERT` requires), and the columns
`workflow_status.owner_xid` and `status` that the journal reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSPortableJSONSerializer, EnqueueOptions, SetWorkflowID
from dbos import error as dbos_errors

from steward.durable import steps
from steward.durable.journal import StepJournal
from steward.durable.types import JsonObject, RunBody, StepFence, StepFenced
from steward.errors import RunCancelled, UserError
from steward.store.database import switch_to_wal

WORKFLOW_NAME = "steward.run"
QUEUE_NAME = "steward-runs"
APP_NAME = "steward"
# How often a process that starts its own runs looks at the queue, which then holds only runs
# recovered from dead workers and runs accepted by a process that crashed before starting them.
RECOVERY_POLL_S = 5.0

_run_body: RunBody | None = None
_journal: StepJournal | None = None


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=1_000_000)
async def _run_workflow(run_id: str, payload: JsonObject) -> JsonObject:
    if _run_body is None or _journal is None:  # pragma: no cover - launch() installs both
        raise UserError("no run body installed")
    token = steps.CURRENT.set(steps.RunSteps(_journal, run_id, _owner_xid(run_id)))
    try:
        return await _run_body(run_id, payload)
    except StepFenced as exc:
        # DBOS parks an execution that lost its workflow and leaves the run to the owner.
        raise dbos_errors.DBOSWorkflowConflictIDError(run_id) from exc
    finally:
        steps.CURRENT.reset(token)


def _owner_xid(run_id: str) -> str:
    from dbos._context import get_local_dbos_context

    ctx = get_local_dbos_context()
    owner = None if ctx is None or ctx.workflow_id != run_id else ctx.owner_xid
    if owner is None:  # pragma: no cover - DBOS sets the token before any workflow runs
        raise UserError(f"run {run_id} has no ownership token")
    return str(owner)


class DBOSEngine:
    """One per process (DBOS keeps global state); `shutdown` releases it for the next."""

    def __init__(
        self,
        database_url: str,
        *,
        executor_id: str = "local",
        application_version: str = "steward-1",
        queue_poll_interval_s: float = 0.05,
        worker_concurrency: int = 64,
        pool_size: int = 10,
    ) -> None:
        self._url = _dbos_url(database_url)
        self._executor_id = executor_id
        self._version = application_version
        self._poll = queue_poll_interval_s
        self._concurrency = worker_concurrency
        self._pool_size = pool_size
        self._client: DBOSClient | None = None
        self._launched = False
        self._fence: StepFence | None = None
        self._journal: StepJournal | None = None

    def set_executor_id(self, executor_id: str) -> None:
        """The id this process claimed in the worker registry; call before `launch`."""
        self._executor_id = executor_id

    def set_fence(self, fence: StepFence) -> None:
        """Gate every step that really executes (not replays) on this worker's lease."""
        self._fence = fence

    def set_run_body(self, body: RunBody) -> None:
        global _run_body
        _run_body = body

    async def launch(self, *, execute: bool) -> None:
        global _journal
        if execute:
            logging.getLogger("dbos").setLevel(logging.WARNING)
            DBOS(
                config={
                    "name": APP_NAME,
                    "system_database_url": self._url,
                    "system_database_engine": _sqlite_engine(self._url),
                    "application_version": self._version,
                    "executor_id": self._executor_id,
                    "sys_db_pool_size": self._pool_size,
                    "serializer": DBOSPortableJSONSerializer(),
                    "log_level": "WARNING",
                }
            )
            # Launched from inside the running loop, so DBOS runs recovered and queued
            # workflows on this loop rather than on a background thread's.
            DBOS.launch()
            self._launched = True
            # No await before the journal opens: runs DBOS recovered start on this loop only
            # once this coroutine yields.
            journal = StepJournal(self._url)
            journal.migrate()
            journal.open()
            self._journal = _journal = journal
            await DBOS.register_queue_async(
                QUEUE_NAME,
                worker_concurrency=self._concurrency,
                polling_interval_sec=self._poll,
                on_conflict="always_update",
            )
        else:
            # An API-only process may start before any worker created DBOS's tables.
            await asyncio.to_thread(migrate_durable, self._url)
            self._client = DBOSClient(
                system_database_url=self._url,
                serializer=DBOSPortableJSONSerializer(),
                # An API request must answer 503 while the database is down, not hang.
                retry_connection_errors=False,
            )

    async def shutdown(self) -> None:
        if self._launched:
            await _wait_for_outcomes(timeout_s=5.0)
            DBOS.destroy(destroy_registry=False)
            self._launched = False
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._client is not None:
            self._client.destroy()
            self._client = None

    async def start(self, run_id: str, payload: JsonObject) -> None:
        with SetWorkflowID(run_id):
            await DBOS.start_workflow_async(_run_workflow, run_id, payload)

    async def enqueue(self, run_id: str, payload: JsonObject) -> None:
        options: EnqueueOptions = {
            "workflow_name": WORKFLOW_NAME,
            "queue_name": QUEUE_NAME,
            "workflow_id": run_id,
            "app_version": self._version,
        }
        if self._client is not None:
            await self._client.enqueue_async(options, run_id, payload)
        else:
            await DBOS.enqueue_workflow_with_options_async(options, run_id, payload)

    async def step(self, name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
        return await steps.run_step(name, fn, self._fence)

    async def receive(self, topic: str, timeout_s: float) -> JsonObject | None:
        try:
            message: JsonObject | None = await DBOS.recv_async(topic, timeout_seconds=timeout_s)
        except dbos_errors.DBOSWorkflowCancelledError as exc:
            raise RunCancelled(str(exc)) from exc
        return message

    async def send(self, run_id: str, topic: str, message: JsonObject) -> None:
        if self._client is not None:
            await self._client.send_async(run_id, message, topic)
        else:
            await DBOS.send_async(run_id, message, topic)

    async def cancel(self, run_id: str) -> None:
        if self._client is not None:
            await self._client.cancel_workflow_async(run_id)
        else:
            await DBOS.cancel_workflow_async(run_id)

    def recover(self, executor_ids: list[str]) -> int:
        """Return the pending runs of these (dead) executors to the queue; blocking."""
        return len(DBOS._recover_pending_workflows(executor_ids))

    async def missing(self, run_ids: list[str]) -> list[str]:
        """The run ids the engine has no record of (accepted, then a crash before the start)."""
        known: set[str] = set()
        for start in range(0, len(run_ids), 500):
            found = await DBOS.list_workflows_async(
                workflow_ids=run_ids[start : start + 500], load_input=False, load_output=False
            )
            known.update(status.workflow_id for status in found)
        return [run_id for run_id in run_ids if run_id not in known]

    async def exists(self, run_id: str) -> bool:
        if self._client is not None:
            try:
                await self._client.retrieve_workflow_async(run_id)
            except dbos_errors.DBOSNonExistentWorkflowError:
                return False
            return True
        return await DBOS.get_workflow_status_async(run_id) is not None


def migrate_durable(database_url: str) -> None:
    """Create or upgrade the durable core's own tables (DBOS's `dbos` schema on PostgreSQL)."""
    url = _dbos_url(database_url)
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
    DBOS.migrate(url)
    StepJournal(url).migrate()


async def _wait_for_outcomes(timeout_s: float) -> None:
    """Let workflows that are finishing record their outcome before connections close.

    DBOS's own `workflow_completion_timeout_sec` polls once a second; this polls every 10 ms.
    A run still executing at the deadline stays pending and is recovered at the next start.
    """
    active = getattr(_dbos_instance(), "_active_workflows_set", None)
    deadline = time.monotonic() + timeout_s
    # DBOS offers no event for "outcome written"; its writers are tasks on this loop.
    while active is not None and active.activeList() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def _dbos_instance() -> Any:
    from dbos._dbos import _dbos_global_instance

    return _dbos_global_instance


BUSY_TIMEOUT_S = 30.0


def _sqlite_engine(url: str) -> sa.Engine | None:
    """DBOS's SQLite engine, in WAL mode with `synchronous=NORMAL`.

    DBOS's own engine keeps SQLite's rollback journal with a full fsync per commit (~3 ms a
    step here). WAL + NORMAL survives any process crash (what the journal is for); only an OS
    crash or power loss can lose the last commits. PostgreSQL keeps DBOS's defaults.
    """
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Processes starting side by side (`serve` beside `worker`) meet on this file while one of
    # them migrates it: every statement, the journal-mode switch included, waits for the lock
    # instead of failing after sqlite3's default 5 s and taking the process down with it.
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    )

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = "IMMEDIATE"  # as DBOS does: serialize writers
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        switch_to_wal(dbapi_connection, BUSY_TIMEOUT_S)
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    return engine


def _dbos_url(url: str) -> str:
    if url.startswith("postgresql+psycopg://"):
        return "postgresql://" + url.split("://", 1)[1]
    return url
