"""gateway spend counters and spend records

Revision ID: 0003
Revises: 0004, 0005
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend_counters",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("spend_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spend_counters_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "spend_records",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cost_estimated", sa.Boolean(), nullable=False),
        sa.Column("price_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("spend_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_spend_records_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_spend_records_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("spend_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_records_run_id"))
        batch_op.drop_index("ix_spend_records_tenant_created")
    op.drop_table("spend_records")
    with op.batch_alter_table("spend_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_counters_expires_at"))
    op.drop_table("spend_counters")
