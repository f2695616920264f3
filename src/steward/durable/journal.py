"""Steward's step journal: one `INSERT` per completed step, group-committed by one writer thread.

The table lives beside DBOS's `workflow_status` (the durable database: `durable.db` on SQLite,
the `dbos` schema on PostgreSQL). A step is recorded only while the execution that ran it still
owns its run: the `INSERT` selects from the run's `workflow_status` row, requiring it to be
`PENDING` and to carry this execution's ownership token (`owner_xid`, which DBOS replaces on every
hand-off: recovery, cancel, resume). On PostgreSQL the row is share-locked until the commit, so a
hand-off cannot land between the check and the write; on SQLite the write lock serializes them.

One thread owns the only connection. It takes every request waiting in its queue and commits
them in one transaction (group commit): under concurrency, one commit covers many runs' steps.
A request's future resolves only after its commit, so a step's result is durable before use.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("steward.journal")

TABLE = "steward_steps"
BUSY_TIMEOUT_S = 30.0
_RETRY_MAX_S = 5.0
_MIGRATE_LOCK_KEY = 0x5354_4A4E  # "STJN"

Verdict = Literal["recorded", "cancelled", "fenced"]


@dataclass(frozen=True)
class Recorded:
    """What `record` found when the `INSERT` did not land."""

    verdict: Verdict
    output: str | None = None  # the result already recorded for this step (`recorded`)


@dataclass
class _Request:
    kind: Literal["read", "write"]
    run_id: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    seq: int = 0
    name: str = ""
    output: str = ""
    owner: str = ""
    result: Any = field(default=None)


class _Dialect:
    """The statements of one database, each written once (the drivers cache them prepared)."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        mark = "%s" if postgres else "?"
        prefix = "dbos." if postgres else ""
        table, status = f"{prefix}{TABLE}", f"{prefix}workflow_status"
        lock = " FOR SHARE" if postgres else ""
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " run_id TEXT NOT NULL"
            f" REFERENCES {status} (workflow_uuid) ON DELETE CASCADE,"
            " seq INTEGER NOT NULL, name TEXT NOT NULL, output TEXT NOT NULL,"
            " recorded_at BIGINT NOT NULL, PRIMARY KEY (run_id, seq))"
        )
        self.insert = (
            f"INSERT INTO {table} (run_id, seq, name, output, recorded_at)"
            f" SELECT {mark}, {mark}, {mark}, {mark}, {mark} FROM {status}"
            f" WHERE workflow_uuid = {mark} AND owner_xid = {mark} AND status = 'PENDING'{lock}"
            " ON CONFLICT DO NOTHING"
        )
        self.read_all = f"SELECT seq, output FROM {table} WHERE run_id = {mark}"
        self.read_named = (
            f"SELECT seq, name, output FROM {table} WHERE run_id = {mark} ORDER BY seq"
        )
        self.read_one = f"SELECT output FROM {table} WHERE run_id = {mark} AND seq = {mark}"
        # Steps a run recorded through DBOS's own `run_step` before this journal existed.
        self.read_legacy = (
            f"SELECT function_name, output, error FROM {prefix}operation_outputs"
            f" WHERE workflow_uuid = {mark} ORDER BY function_id"
        )
        self.status = f"SELECT status, owner_xid FROM {status} WHERE workflow_uuid = {mark}"


class StepJournal:
    """The journal of one process; `open` before use, `close` at shutdown."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._postgres = not url.startswith("sqlite")
        self._sql = _Dialect(self._postgres)
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    # -- lifecycle ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the table (idempotent); the durable database's own tables must exist."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            if self._postgres:  # concurrent `CREATE TABLE IF NOT EXISTS` can collide
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK_KEY,))
            conn.execute(self._sql.create)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def open(self) -> None:
        if self._thread is not None:
            return
        self._conn = self._connect()
        self._thread = threading.Thread(target=self._serve, name="steward-journal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def read_steps(self, run_id: str) -> list[tuple[int, str, str]]:
        """The run's recorded steps in order, `(seq, name, JSON output)`, read on a connection of
        its own: for tools outside a running engine (`steward eval capture`). Blocking."""
        conn = self._connect()
        try:
            rows = list(conn.execute(self._sql.read_named, (run_id,)))
            if rows:
                return [(int(seq), str(name), str(output)) for seq, name, output in rows]
            legacy = list(conn.execute(self._sql.read_legacy, (run_id,)))
        finally:
            conn.close()
        names = [str(name) for name, _, _ in legacy if not str(name).startswith("DBOS.")]
        return [(seq, names[seq - 1], output) for seq, output in legacy_steps(legacy).items()]

    # -- the two requests ---------------------------------------------------------------------

    async def recorded(self, run_id: str) -> dict[int, str]:
        """Every step recorded for the run: sequence number -> JSON output. One `SELECT`."""
        result: dict[int, str] = await self._submit(_Request("read", run_id, *self._pending()))
        return result

    async def record(self, run_id: str, seq: int, name: str, output: str, owner: str) -> Recorded:
        """Commit one step's JSON result; returns once it is durable (or refused)."""
        request = _Request(
            "write", run_id, *self._pending(), seq=seq, name=name, output=output, owner=owner
        )
        result: Recorded = await self._submit(request)
        return result

    def _pending(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        return loop, loop.create_future()

    async def _submit(self, request: _Request) -> Any:
        if self._thread is None:
            raise RuntimeError("the step journal is not open")
        self._queue.put(request)
        return await request.future

    # -- the writer thread --------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while True:  # everything already waiting joins this commit
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit_with_retry(batch)
            if stop:
                return

    def _commit_with_retry(self, batch: list[_Request]) -> None:
        """Commit the batch; while the database is unreachable, wait and retry (the runs
        pause, as with DBOS's own journal). An error that is not about reaching the database
        fails only the requests it belongs to."""
        delay = 0.05
        while True:
            try:
                self._commit(batch)
            except Exception as exc:
                self._rollback()
                if not self._transient(exc):
                    if len(batch) == 1:
                        _resolve(batch[0], exc)
                        return
                    for request in batch:  # find the culprit: one transaction each
                        self._commit_with_retry([request])
                    return
                log.warning("step journal: %s; retrying in %.2fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                self._reconnect()
                continue
            for request in batch:
                _resolve(request, None)
            return

    def _commit(self, batch: list[_Request]) -> None:
        conn, sql = self._conn, self._sql
        if conn is None:
            raise sqlite3.OperationalError("no connection to the journal database")
        # Reads first, outside any transaction: on SQLite (WAL) a read takes no write lock.
        writes = []
        for request in batch:
            if request.kind == "read":
                rows = self._execute(conn, sql.read_all, (request.run_id,)).fetchall()
                request.result = {int(seq): output for seq, output in rows}
                if not rows:
                    legacy = self._execute(conn, sql.read_legacy, (request.run_id,)).fetchall()
                    request.result = legacy_steps(legacy)
            else:
                writes.append(request)
        if not writes:
            return
        # One write alone on PostgreSQL is one autocommitted statement: one round trip, no
        # BEGIN/COMMIT. SQLite always takes the write lock first (BEGIN IMMEDIATE): a statement
        # that upgrades its lock midway fails at once on contention instead of waiting.
        explicit = not self._postgres or len(writes) > 1
        if explicit:
            conn.execute("BEGIN IMMEDIATE" if not self._postgres else "BEGIN")
        for request in writes:
            now_ms = int(time.time() * 1000)
            args = (
                *(request.run_id, request.seq, request.name, request.output, now_ms),
                *(request.run_id, request.owner),
            )
            if self._execute(conn, sql.insert, args).rowcount == 1:
                request.result = Recorded("recorded")
                continue
            request.result = self._refused(conn, request)
        if explicit:
            conn.execute("COMMIT")

    def _refused(self, conn: Any, request: _Request) -> Recorded:
        """Why the `INSERT` did not land: the run was cancelled or moved, or (while this
        execution still owns it) the step is there already, from a commit retried after
        its answer was lost."""
        sql = self._sql
        row = self._execute(conn, sql.status, (request.run_id,)).fetchone()
        if row is None or row[0] == "CANCELLED":
            return Recorded("cancelled")
        if row[0] != "PENDING" or row[1] != request.owner:
            return Recorded("fenced")
        found = self._execute(conn, sql.read_one, (request.run_id, request.seq)).fetchone()
        if found is None:  # pragma: no cover - owned, pending and absent: the INSERT lands
            raise RuntimeError(f"step {request.seq} of run {request.run_id} was not recorded")
        return Recorded("recorded", found[0])

    def _execute(self, conn: Any, statement: str, args: tuple[Any, ...]) -> Any:
        if self._postgres:
            return conn.execute(statement, args, prepare=True)
        return conn.execute(statement, args)

    def _rollback(self) -> None:
        try:
            if self._conn is not None and self._in_transaction():
                self._conn.execute("ROLLBACK")
        except Exception:  # the connection is gone; `_reconnect` replaces it
            log.debug("step journal rollback failed", exc_info=True)

    def _in_transaction(self) -> bool:
        conn = self._conn
        if self._postgres:
            import psycopg

            return bool(conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)
        return bool(conn.in_transaction)

    def _reconnect(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:
            log.debug("closing the journal connection failed", exc_info=True)
        self._conn = None
        try:
            self._conn = self._connect()
        except Exception as exc:
            log.warning("step journal cannot reconnect yet: %s", exc)

    def _transient(self, exc: Exception) -> bool:
        if isinstance(exc, sqlite3.OperationalError):
            return "locked" in str(exc) or "busy" in str(exc) or "no connection" in str(exc)
        if self._postgres:
            import psycopg

            return isinstance(exc, psycopg.OperationalError) and not isinstance(
                exc, psycopg.errors.QueryCanceled
            )
        return False

    def _connect(self) -> Any:
        if self._postgres:
            import psycopg

            return psycopg.connect(_postgres_dsn(self._url), autocommit=True)
        path = self._url.split("///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        from steward.store.database import switch_to_wal

        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        switch_to_wal(conn, BUSY_TIMEOUT_S)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn


def legacy_steps(rows: list[Any]) -> dict[int, str]:
    """A run's steps as DBOS's `run_step` recorded them (before an upgrade), numbered as this
    journal numbers them: in call order, DBOS's own operations (`DBOS.recv`, …) left out. The
    numbering stops at the first step DBOS recorded as an exception: that step runs again."""
    steps: dict[int, str] = {}
    for name, output, error in rows:
        if str(name).startswith("DBOS."):
            continue
        if error is not None or output is None:
            break
        steps[len(steps) + 1] = str(output)
    return steps


def _resolve(request: _Request, error: BaseException | None) -> None:
    def settle() -> None:
        if request.future.done():  # the waiting step was cancelled meanwhile
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(request.result)

    callback: Callable[[], None] = settle
    try:
        request.loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop closed: nobody waits for this answer any more
        log.debug("step journal answer dropped: its loop is closed")


def _postgres_dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    del scheme
    return "postgresql://" + rest
