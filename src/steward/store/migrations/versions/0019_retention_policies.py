"""retention policies: per tenant, days and maximum count for spans, captured content and
run payloads, enforced by the retention job

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 10:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("spans_days", sa.Integer(), nullable=True),
        sa.Column("spans_max", sa.Integer(), nullable=True),
        sa.Column("content_days", sa.Integer(), nullable=True),
        sa.Column("content_max", sa.Integer(), nullable=True),
        sa.Column("payloads_days", sa.Integer(), nullable=True),
        sa.Column("payloads_max", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The retention job walks a tenant's spans oldest first.
    op.create_index("ix_spans_tenant_start", "spans", ["tenant_id", "start_ns"])


def downgrade() -> None:
    op.drop_index("ix_spans_tenant_start", table_name="spans")
    op.drop_table("retention_policies")
