"""The audit trail: `record(tenant, kind, data)` appends a security event to the tenant's signed,
append-only Merkle log; `steward audit verify` proves it untouched.

Event kinds used by Steward (others may add their own, dotted and lower-case):
`auth.failure`, `key.created`, `key.revoked`, `secret.set`, `secret.accessed`, `secret.rotated`,
`webhook.accepted`, `webhook.rejected`, `webhook.replayed`, `hook.created`, `config.changed`,
`tool.decision`, `approval.decided`, `policy.blocked`, `cap.hit`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from steward.audit.background import BackgroundRecorder
from steward.audit.log import AuditLog, Checkpoint
from steward.audit.verify import Finding, Report, verify_export

__all__ = [
    "AuditLog",
    "Checkpoint",
    "Finding",
    "Report",
    "current",
    "install",
    "record",
    "record_async",
    "record_later",
    "verify_export",
    "wait_written",
]

log = logging.getLogger("steward.audit")
_installed: AuditLog | None = None
_background: BackgroundRecorder | None = None


def install(audit_log: AuditLog | None) -> None:
    """Make `audit_log` the process's log (the runtime does this when it starts); `None`
    first writes every event still queued by `record_later`."""
    global _installed, _background
    if _background is not None:
        _background.drain()
        _background = None
    _installed = audit_log
    if audit_log is not None:
        _background = BackgroundRecorder(audit_log)


def current() -> AuditLog | None:
    return _installed


def record(tenant_id: str, kind: str, data: dict[str, Any] | None = None) -> int | None:
    """Append a security event to the tenant's audit log; returns its sequence number.

    Without a running Steward runtime (plain unit tests of other modules) there is no log;
    the event is then logged at WARNING so it is never silently lost.
    """
    audit_log = _installed
    if audit_log is None:
        log.warning("no audit log installed; dropping %s event for tenant %s", kind, tenant_id)
        return None
    return audit_log.record(tenant_id, kind, data)


def record_later(tenant_id: str, kind: str, data: dict[str, Any] | None = None) -> None:
    """`record` without waiting: for the event loop's hot path; events keep their order."""
    background = _background
    if background is None:
        log.warning("no audit log installed; dropping %s event for tenant %s", kind, tenant_id)
        return
    background.record(tenant_id, kind, dict(data or {}))


def wait_written(timeout_s: float = 30.0) -> bool:
    """Block until every event queued by `record_later` so far is in the log (or timeout)."""
    background = _background
    return True if background is None else background.wait_written(timeout_s)


async def record_async(tenant_id: str, kind: str, data: dict[str, Any] | None = None) -> int | None:
    """`record` from async code, off the event loop."""
    return await asyncio.to_thread(record, tenant_id, kind, data)
