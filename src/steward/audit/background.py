"""Audit events from the hot path: queued in order and appended by one writer thread.

A run's tool decisions happen on the event loop, where a database append (a few ms) would stall
every other run; the queue keeps their order, and `drain` empties it before shutdown signs the
final checkpoints.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from steward.audit.log import AuditLog

log = logging.getLogger("steward.audit")

_STOP = object()


class BackgroundRecorder:
    def __init__(self, audit_log: AuditLog) -> None:
        self._log = audit_log
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="steward-audit", daemon=True)
        self._thread.start()

    def record(self, tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        self._queue.put((tenant_id, kind, data))

    def drain(self, timeout_s: float = 10.0) -> None:
        """Write everything queued so far, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("audit writer did not finish within %ss; events may be missing", timeout_s)

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            tenant_id, kind, data = item
            try:
                self._log.record(tenant_id, kind, data)
            except Exception:
                log.exception("could not append %s to the audit log of %s", kind, tenant_id)
