"""Idempotency keys in the durable store, so a retry reaching any API server finds its answer.

A key is scoped to (tenant, API key) and claimed by inserting its row: the database's unique
constraint decides between concurrent duplicates. The row then holds the stored response until
it expires; a request that died mid-way keeps its key locked only until its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.store.database import Database
from steward.store.schema import IdempotencyRecord, utcnow

ClaimOutcome = Literal["claimed", "replay", "in_progress", "mismatch"]


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, Any]
    body: bytes


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    expires_at: datetime
    response: StoredResponse | None = None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class IdempotencyStore:
    def __init__(self, db: Database, *, ttl_s: float, lease_s: float) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_s)
        self.lease = timedelta(seconds=lease_s)
        self._claims = 0

    def claim(self, tenant_id: str, principal: str, key: str, fingerprint: str) -> Claim:
        """Claim `key` for this request, or say why not (stored, in progress, other payload)."""
        self._claims += 1
        if self._claims % 256 == 1:
            self.purge_expired()
        for _ in range(5):  # each pass either decides or removed a stale row
            now = utcnow()
            try:
                with self.db.session() as session:
                    session.add(
                        IdempotencyRecord(
                            tenant_id=tenant_id,
                            principal=principal,
                            key=key,
                            fingerprint=fingerprint,
                            state="processing",
                            locked_until=now + self.lease,
                            expires_at=now + self.ttl,
                            created_at=now,
                        )
                    )
                return Claim("claimed", now + self.ttl)
            except IntegrityError:
                pass
            decided = self._existing(tenant_id, principal, key, fingerprint, now)
            if decided is not None:
                return decided
        raise RuntimeError("idempotency key kept changing under concurrent requests")

    def _existing(
        self, tenant_id: str, principal: str, key: str, fingerprint: str, now: datetime
    ) -> Claim | None:
        with self.db.session() as session:
            row = session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.tenant_id == tenant_id,
                    IdempotencyRecord.principal == principal,
                    IdempotencyRecord.key == key,
                )
            )
            if row is None:
                return None  # removed meanwhile: try to insert again
            expires_at = _aware(row.expires_at)
            if expires_at <= now:
                session.delete(row)
                return None
            if row.fingerprint != fingerprint:
                return Claim("mismatch", expires_at)
            if row.state == "done" and row.status_code is not None:
                stored = StoredResponse(row.status_code, row.headers or {}, row.body or b"")
                return Claim("replay", expires_at, stored)
            if _aware(row.locked_until) > now:
                return Claim("in_progress", expires_at)
            # The request holding the key died without answering: take its place.
            taken = _execute(
                session,
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.id == row.id,
                    IdempotencyRecord.state == "processing",
                    IdempotencyRecord.locked_until == row.locked_until,
                )
                .values(locked_until=now + self.lease),
            )
            return Claim("claimed" if taken.rowcount == 1 else "in_progress", expires_at)

    def complete(self, tenant_id: str, principal: str, key: str, response: StoredResponse) -> None:
        with self.db.session() as session:
            session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.tenant_id == tenant_id,
                    IdempotencyRecord.principal == principal,
                    IdempotencyRecord.key == key,
                )
                .values(
                    state="done",
                    status_code=response.status_code,
                    headers=response.headers,
                    body=response.body,
                )
            )

    def release(self, tenant_id: str, principal: str, key: str) -> None:
        """Forget a claim whose request failed on the server's side, so a retry runs again."""
        with self.db.session() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.tenant_id == tenant_id,
                    IdempotencyRecord.principal == principal,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.state == "processing",
                )
            )

    def purge_expired(self) -> int:
        with self.db.session() as session:
            result = _execute(
                session, delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow())
            )
            return int(result.rowcount or 0)


def _execute(session: Session, statement: Any) -> CursorResult[Any]:
    """Run an UPDATE or DELETE; its result carries the affected row count."""
    return cast(CursorResult[Any], session.execute(statement))
