"""Tenant rows, made on first sight of a tenant: a key, a secret or a verified token's claim.

Runs, threads and keys carry a foreign key to their tenant, so the row must exist before any
of them is written.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from steward.store.database import Database
from steward.store.schema import Tenant

__all__ = ["TenantDirectory", "ensure_tenant"]


def ensure_tenant(session: Session, tenant_id: str) -> None:
    """Inside the caller's transaction: add the tenant's row unless it exists."""
    if session.get(Tenant, tenant_id) is None:
        session.add(Tenant(id=tenant_id, name=tenant_id))
        session.flush()


class TenantDirectory:
    """Tenants this process knows exist; the first sight of another inserts its row, racing
    writers included (INSERT … ON CONFLICT DO NOTHING)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: set[str] = set()

    def known(self, tenant_id: str) -> bool:
        return tenant_id in self._known

    def ensure(self, tenant_id: str) -> None:
        if tenant_id in self._known:
            return
        dialect = sqlite if self.db.is_sqlite else postgresql
        statement = (
            dialect.insert(Tenant)
            .values(id=tenant_id, name=tenant_id)
            .on_conflict_do_nothing(index_elements=[Tenant.id])
        )
        with self.db.engine.begin() as conn:
            conn.execute(statement)
        self._known.add(tenant_id)
