"""Per-tenant settings an admin changes over the API, updated atomically.

An update is a read-modify-write of one JSON object; two admins patching at once must not lose
each other's change, and the first update of a tenant must not fail because another created
the row in between. Each update therefore locks the tenant's row first (`lock_tenant`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from steward.store.database import Database
from steward.store.schema import Tenant, utcnow
from steward.store.security_tables import TenantSettings


def lock_tenant(session: Session, tenant_id: str) -> Tenant:
    """Create the tenant if it is missing, then hold its row until the transaction ends.

    Writing first takes SQLite's write lock (its busy timeout makes other writers wait) and
    PostgreSQL's row lock, so what the caller reads next cannot change under it.
    """
    is_postgres = session.get_bind().dialect.name == "postgresql"
    insert = pg_insert if is_postgres else sqlite_insert
    session.execute(
        insert(Tenant)
        .values(id=tenant_id, name=tenant_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(name=Tenant.name))
    tenant = session.get(Tenant, tenant_id, populate_existing=True)
    assert tenant is not None
    return tenant


class TenantSettingsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, tenant_id: str) -> dict[str, Any]:
        """The stored settings plus the tenant's `name`."""
        with self.db.session() as session:
            row = session.get(TenantSettings, tenant_id)
            tenant = session.get(Tenant, tenant_id)
            values = dict(row.settings) if row else {}
            values["name"] = tenant.name if tenant else tenant_id
            return values

    def update(self, tenant_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge `changes` into the tenant's settings (`name` renames the tenant), atomically."""
        changes = dict(changes)
        with self.db.session() as session:
            tenant = lock_tenant(session, tenant_id)
            if "name" in changes:
                tenant.name = changes.pop("name")
            row = session.get(TenantSettings, tenant_id, populate_existing=True)
            if row is None:
                row = TenantSettings(tenant_id=tenant_id, settings={})
                session.add(row)
            row.settings = {**row.settings, **changes}
            row.updated_at = utcnow()
        return self.load(tenant_id)
