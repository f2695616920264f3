"""the default tenant exists from the first migration on

Runs, threads and approvals reference their tenant; before this, only creating an API key
made the `default` tenant, so a runtime embedded in a process could not insert a run.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

DEFAULT_TENANT = "default"  # steward.security.keys.DEFAULT_TENANT, frozen at this revision

tenants = sa.table(
    "tenants",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("created_at", sa.DateTime),
)


def upgrade() -> None:
    exists = (
        op.get_bind().execute(sa.select(tenants.c.id).where(tenants.c.id == DEFAULT_TENANT)).first()
    )
    if exists is None:
        op.bulk_insert(
            tenants,
            [{"id": DEFAULT_TENANT, "name": DEFAULT_TENANT, "created_at": datetime.now(UTC)}],
        )


def downgrade() -> None:
    # Left in place: rows of every other table may reference it by now.
    pass
