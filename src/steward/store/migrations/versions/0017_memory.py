"""memory: the outbox from durable records to the semantic index, and end-user ownership

Revision ID: 0017
Revises: 0019
Create Date: 2026-12-06 10:00:00.000000

The vector tables themselves are created by the index on first use (pgvector's extension may
be absent where semantic memory is never used, and the width follows the embedding model).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memory_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("op", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=1000), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("end_user", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "memory_subjects",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("end_user", sa.String(length=200), nullable=False),
        sa.Column("namespace", sa.String(length=1000), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "end_user", "namespace", "key"),
    )
    op.create_index("ix_memory_subjects_item", "memory_subjects", ["tenant_id", "namespace", "key"])


def downgrade() -> None:
    op.drop_index("ix_memory_subjects_item", table_name="memory_subjects")
    op.drop_table("memory_subjects")
    op.drop_table("memory_outbox")
