"""Durable sandbox metadata: every read filters by tenant, so another tenant's sandbox is a 404.

State machine: starting -> running <-> standby -> deleted | failed (with a reason).
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from steward.errors import NotFound
from steward.sandbox.options import CreateOptions
from steward.store.database import Database
from steward.store.schema import SandboxRecord, utcnow

LIVE = ("starting", "running", "standby")
UID_BASE = 1_500_000_000  # far above any login or subordinate-uid range
UID_SPAN = 1 << 24


@dataclass(frozen=True)
class SandboxInfo:
    id: str
    tenant_id: str
    backend: str
    state: str
    standby_mode: str | None
    limits: dict[str, Any]
    env_keys: list[str]
    volumes: list[str]
    idle_timeout_s: float
    timeout_s: float | None
    run_id: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


def _info(row: SandboxRecord) -> SandboxInfo:
    return SandboxInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        backend=row.backend,
        state=row.state,
        standby_mode=row.standby_mode,
        limits=dict(row.limits),
        env_keys=list(row.env_keys.get("keys", [])),
        volumes=list(row.volumes.get("names", [])),
        idle_timeout_s=row.idle_timeout_s,
        timeout_s=row.timeout_s,
        run_id=row.run_id,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SandboxRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(
        self,
        *,
        sandbox_id: str,
        tenant_id: str,
        backend: str,
        options: CreateOptions,
        owner: str,
        host_uid: int | None = None,
        state: str = "starting",
    ) -> tuple[int, SandboxInfo]:
        """Insert the record with `host_uid` or a fresh unique host uid; returns that uid and
        the record as inserted (no second read).

        An explicit `host_uid` already in use raises IntegrityError (uids are never shared)."""
        for _ in range(20):
            uid = host_uid if host_uid is not None else UID_BASE + secrets.randbelow(UID_SPAN)
            row = SandboxRecord(
                id=sandbox_id,
                tenant_id=tenant_id,
                backend=backend,
                state=state,
                limits=dataclasses.asdict(options.limits),
                env_keys={"keys": sorted(options.env)},
                volumes={"names": sorted(options.volumes)},
                idle_timeout_s=options.idle_timeout_s,
                timeout_s=options.timeout_s,
                run_id=options.run_id,
                host_uid=uid,
                owner=owner,
            )
            try:
                with self.db.session() as session:
                    session.add(row)
                return uid, _info(row)
            except IntegrityError:
                if host_uid is not None or self.find(sandbox_id) is not None:
                    raise
        raise RuntimeError("could not allocate a free host uid for the sandbox")

    def find(self, sandbox_id: str) -> SandboxRecord | None:
        with self.db.session() as session:
            return session.get(SandboxRecord, sandbox_id)

    def get(self, tenant_id: str, sandbox_id: str) -> SandboxInfo:
        row = self.find(sandbox_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound("sandbox", sandbox_id)
        return _info(row)

    def list_sandboxes(self, tenant_id: str, *, include_ended: bool = False) -> list[SandboxInfo]:
        query = select(SandboxRecord).where(SandboxRecord.tenant_id == tenant_id)
        if not include_ended:
            query = query.where(SandboxRecord.state.in_(LIVE))
        with self.db.session() as session:
            rows = session.scalars(query.order_by(SandboxRecord.created_at.desc())).all()
            return [_info(row) for row in rows]

    def set_state(
        self,
        sandbox_id: str,
        state: str,
        *,
        standby_mode: str | None = None,
        reason: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "state": state,
            "standby_mode": standby_mode,
            "updated_at": utcnow(),
        }
        if state not in LIVE:
            values.update(ended_at=utcnow(), host_uid=None, reason=reason)
        with self.db.session() as session:
            session.execute(
                update(SandboxRecord).where(SandboxRecord.id == sandbox_id).values(**values)
            )

    def uid_in_use(self, uid: int) -> bool:
        with self.db.session() as session:
            query = select(SandboxRecord.id).where(SandboxRecord.host_uid == uid)
            return session.scalars(query).first() is not None

    def live_of_owner_prefix(self, prefix: str) -> list[str]:
        with self.db.session() as session:
            query = select(SandboxRecord.id).where(
                SandboxRecord.state.in_(LIVE), SandboxRecord.owner.startswith(prefix)
            )
            return list(session.scalars(query).all())
