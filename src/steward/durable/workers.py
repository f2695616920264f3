"""Worker registrations: stable executor ids, heartbeats, and the lease that fences steps.

A worker starts steps only while its lease (its last heartbeat plus half the stale time) holds;
one that loses the lease with a step in flight exits before any sweeper may take its runs over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from steward.store.database import Database
from steward.store.schema import Worker

log = logging.getLogger("steward.workers")

LEASE_LOST_EXIT_CODE = 75  # EX_TEMPFAIL: the process manager should start the worker again
_MAX_SLOTS = 4096


def db_now(conn: sa.Connection) -> float:
    """The database's clock in epoch seconds: one clock for every host's heartbeats."""
    if conn.dialect.name == "postgresql":
        sql = "SELECT extract(epoch FROM clock_timestamp())::float8"
    else:
        sql = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    return float(conn.execute(sa.text(sql)).scalar_one())


def lock_worker_row(conn: sa.Connection, executor_id: str) -> None:
    """Lock the row until the transaction ends (on SQLite: take the database's write lock)."""
    conn.execute(
        sa.update(Worker).where(Worker.executor_id == executor_id).values(beats=Worker.beats)
    )


def process_start(pid: int) -> str:
    """The kernel's start time of `pid`, so a reused pid is not mistaken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, started: str) -> bool:
    if started:
        return process_start(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerRegistry:
    """This process's claim on one executor id, kept alive by a heartbeat thread."""

    def __init__(
        self,
        db: Database,
        *,
        executor_id: str | None,
        slot: int | None,
        heartbeat_s: float,
        stale_after_s: float,
        on_lease_lost: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._explicit_id = executor_id
        self._slot = slot
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.lease_s = stale_after_s / 2
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.incarnation = uuid.uuid4().hex
        self.executor_id = ""
        self._on_lease_lost = on_lease_lost or _exit_process
        self._renewed_at: float | None = None  # monotonic start of the last successful beat
        self._connected_since: float | None = None
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._busy = threading.Event()  # set while a step is in flight: wakes the watchdog
        self._threads: list[threading.Thread] = []

    # -- claiming an executor id --------------------------------------------------------------

    def register(self) -> str:
        """Claim the executor id; waits while another live process holds an explicit one."""
        while True:
            for candidate in self._candidates():
                if self._claim(candidate):
                    self.executor_id = candidate
                    log.info("worker %s registered (pid %d)", candidate, self.pid)
                    return candidate
            log.warning("executor id %s is held by a live worker; waiting", self._candidates()[0])
            time.sleep(self.heartbeat_s)

    def _candidates(self) -> list[str]:
        if self._explicit_id:
            return [self._explicit_id]
        if self._slot is not None:
            return [f"{self.host}-{self._slot}"]
        return [f"{self.host}-{slot}" for slot in range(_MAX_SLOTS)]

    def _claim(self, executor_id: str) -> bool:
        started = time.monotonic()
        try:
            with self._db.engine.begin() as conn:
                lock_worker_row(conn, executor_id)
                now = db_now(conn)
                row = conn.execute(sa.select(Worker).where(Worker.executor_id == executor_id))
                existing = row.first()
                if existing is not None and not self._claimable(existing, now):
                    return False
                values = {
                    "incarnation": self.incarnation,
                    "host": self.host,
                    "pid": self.pid,
                    "process_start": process_start(self.pid),
                    "state": "live",
                    "started_at": now,
                    "heartbeat_at": now,
                    "beats": 0,
                    "swept_by": None,
                }
                if existing is None:
                    conn.execute(sa.insert(Worker).values(executor_id=executor_id, **values))
                else:
                    conn.execute(
                        sa.update(Worker).where(Worker.executor_id == executor_id).values(**values)
                    )
        except IntegrityError:  # another process inserted the same id first
            return False
        self._renewed_at = started
        self._connected_since = started
        return True

    def _claimable(self, row: sa.Row[Any], now: float) -> bool:
        worker = row._mapping
        if worker["incarnation"] == self.incarnation or worker["state"] in ("stopped", "swept"):
            return True
        if now - worker["heartbeat_at"] > self.stale_after_s:
            return True
        # On this host the kernel knows for sure whether the holder died (no need to wait).
        return bool(
            worker["host"] == self.host
            and not process_alive(worker["pid"], worker["process_start"])
        )

    # -- heartbeats and the lease -------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._beat_forever, "heartbeat"), (self._watch, "lease-watchdog")):
            thread = threading.Thread(target=target, name=f"steward-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop beating and mark the id free for the next start; runs left pending stay so."""
        self._stop.set()
        self._busy.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if not self.executor_id:
            return
        try:
            with self._db.engine.begin() as conn:
                conn.execute(
                    sa.update(Worker)
                    .where(
                        Worker.executor_id == self.executor_id,
                        Worker.incarnation == self.incarnation,
                    )
                    .values(state="stopped")
                )
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not mark worker %s stopped: %s", self.executor_id, exc)

    def beat(self) -> bool:
        """Record one heartbeat; False if the database could not be reached."""
        started = time.monotonic()
        try:
            with self._db.engine.begin() as conn:
                now = db_now(conn)
                updated = conn.execute(
                    sa.update(Worker)
                    .where(
                        Worker.executor_id == self.executor_id,
                        Worker.incarnation == self.incarnation,
                        Worker.state == "live",
                    )
                    .values(heartbeat_at=now, beats=Worker.beats + 1)
                ).rowcount
        except sa.exc.SQLAlchemyError as exc:
            self._connected_since = None
            log.warning("heartbeat of %s failed: %s", self.executor_id, exc)
            return False
        if updated == 0:
            self._on_lease_lost(f"executor id {self.executor_id} was taken over or swept")
            return False
        self._renewed_at = started
        if self._connected_since is None:
            self._connected_since = started
        return True

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.beat()

    def _watch(self) -> None:
        """Check the lease every 0.1 s while a step is in flight; sleep while none is."""
        while not self._stop.is_set():
            if not self._busy.wait(self.heartbeat_s):
                continue
            if self._stop.wait(min(0.1, self.heartbeat_s)):
                return
            if self._in_flight and not self.lease_valid():
                self._on_lease_lost(f"lease of {self.executor_id} lapsed with a step in flight")

    def lease_valid(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and time.monotonic() - renewed < self.lease_s

    def connected_for(self) -> float:
        """Seconds this worker has been beating without a gap: how long it has watched others."""
        since = self._connected_since
        return 0.0 if since is None else time.monotonic() - since

    # -- the step fence -----------------------------------------------------------------------

    async def enter_step(self) -> None:
        """Wait until the lease holds, then count a step in flight (see `exit_step`)."""
        # The heartbeat thread renews the lease; a thread cannot set an asyncio.Event cheaply.
        while not self.lease_valid():  # noqa: ASYNC110
            await asyncio.sleep(min(0.1, self.heartbeat_s))
        with self._count_lock:
            self._in_flight += 1
            if self._in_flight == 1:
                self._busy.set()

    def exit_step(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._busy.clear()


def _exit_process(reason: str) -> None:
    """Stop every step of this process at once: the only fence a blocked thread cannot ignore."""
    log.critical("%s: exiting so no other worker runs the same step concurrently", reason)
    sys.stderr.flush()
    os._exit(LEASE_LOST_EXIT_CODE)
