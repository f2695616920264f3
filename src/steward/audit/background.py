"""Audit events from the hot path: queued in order and appended by one writer thread, which takes
every event already waiting and appends them in one transaction (group commit): under load one
commit covers many events, of many runs and tenants, each tenant's in queue order.

A run's tool decisions happen on the event loop, where a database append (a few ms) would stall
every other run; the queue keeps their order, and `drain` empties it before shutdown signs the
final checkpoints. While the database is unreachable the writer retries the oldest batch with
backoff and never skips it; the queue is bounded, so a long outage makes producers wait
(back-pressure) instead of growing memory or dropping events.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from steward.audit.log import AuditLog, Pending, now_text
from steward.store.outage import DATABASE_UNREACHABLE

log = logging.getLogger("steward.audit")

DEFAULT_CAPACITY = 10_000
MAX_BATCH = 500  # events in one transaction
_BACKOFF_START_S = 0.05
_BACKOFF_CAP_S = 2.0


@dataclass
class _Event:
    tenant_id: str
    kind: str
    data: dict[str, Any]
    at: str = field(default_factory=now_text)  # when it happened, not when it was written


_STOP = object()


class BackgroundRecorder:
    def __init__(self, audit_log: AuditLog, capacity: int = DEFAULT_CAPACITY) -> None:
        self._log = audit_log
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._give_up_at: float | None = None
        self._thread = threading.Thread(target=self._write, name="steward-audit", daemon=True)
        self._thread.start()

    def record(self, tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        """Queue one event; waits while the queue is full (the database is down for long)."""
        event = _Event(tenant_id, kind, AuditLog.payload(data))
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.error("audit queue full (%d events): waiting for the database", self._queue.maxsize)
            self._queue.put(event)

    def pending(self) -> int:
        return self._queue.qsize()

    def wait_written(self, timeout_s: float = 30.0) -> bool:
        """Block until everything queued before this call is written; False on timeout."""
        marker = threading.Event()
        self._queue.put(marker)
        return marker.wait(timeout_s)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Write everything queued so far, then stop the writer."""
        self._give_up_at = time.monotonic() + timeout_s
        self._queue.put(_STOP)
        self._thread.join(timeout_s + 1.0)
        if self._thread.is_alive():
            log.error("audit writer did not finish within %ss", timeout_s)

    def _write(self) -> None:
        while True:
            batch, markers, stop = self._take(self._queue.get())
            pending = [Pending(e.tenant_id, e.kind, e.data, e.at) for e in batch]
            if pending and not self._append(pending):
                self._abandon(pending, markers)
                return
            for marker in markers:  # everything queued before them is written now
                marker.set()
            if stop:
                return

    def _take(self, first: Any) -> tuple[list[_Event], list[threading.Event], bool]:
        """`first` and everything already waiting behind it (up to `MAX_BATCH` events): one
        transaction for all of them. Markers wait until the batch they arrived in is written."""
        batch: list[_Event] = []
        markers: list[threading.Event] = []
        item = first
        while True:
            if item is _STOP:
                return batch, markers, True
            if isinstance(item, threading.Event):
                markers.append(item)
            else:
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    return batch, markers, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, markers, False

    def _append(self, pending: list[Pending]) -> bool:
        """Append the batch in order, each event exactly once, retrying through outages; False
        only when giving up (then nothing from the first unwritten event on is written)."""
        delay = _BACKOFF_START_S
        while True:
            try:
                self._log.append_many(pending)
                return True
            except DATABASE_UNREACHABLE as exc:
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    return False
                log.warning(
                    "audit log unreachable (%s); retrying %d events in %.2fs",
                    type(exc).__name__,
                    len(pending),
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_CAP_S)
            except Exception:  # not an outage: retrying cannot help
                if len(pending) > 1:  # find the culprit: one transaction each, in order
                    for index, event in enumerate(pending):
                        if not self._append([event]):
                            del pending[:index]  # the caller reports the rest as unwritten
                            return False
                    return True
                log.exception(
                    "could not append %s to the audit log of %s: %r",
                    pending[0].kind,
                    pending[0].tenant_id,
                    pending[0].data,
                )
                return True

    def _abandon(self, unwritten: list[Pending], markers: list[threading.Event]) -> None:
        """Shutdown while the database stays down: every unwritten event goes to the log."""
        events: list[Pending | _Event] = list(unwritten)
        for marker in markers:
            marker.set()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            elif item is not _STOP:
                events.append(item)
        for event in events:
            log.error(
                "audit event NOT written (database unreachable at shutdown): %s %s %s %r",
                event.at,
                event.tenant_id,
                event.kind,
                event.data,
            )
