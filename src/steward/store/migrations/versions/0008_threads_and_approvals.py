"""runs hold threads explicitly (enqueue, approval pauses); approvals

Revision ID: 0008
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(
            sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE runs SET active = true WHERE status IN ('pending', 'running')")
    op.drop_index("ux_runs_one_active_per_thread", table_name="runs")
    op.create_index(
        "ux_runs_one_active_per_thread",
        "runs",
        ["tenant_id", "thread_id"],
        unique=True,
        sqlite_where=sa.text("active = true"),
        postgresql_where=sa.text("active = true"),
    )
    op.create_index(
        "ix_runs_tenant_thread_created", "runs", ["tenant_id", "thread_id", "created_at"]
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_arguments", sa.JSON(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("stream_after", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approvals_run_id", "approvals", ["run_id"])
    op.create_index("ix_approvals_tenant_status", "approvals", ["tenant_id", "status"])


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_index("ix_runs_tenant_thread_created", table_name="runs")
    op.drop_index("ux_runs_one_active_per_thread", table_name="runs")
    op.create_index(
        "ux_runs_one_active_per_thread",
        "runs",
        ["tenant_id", "thread_id"],
        unique=True,
        sqlite_where=sa.text("status IN ('pending', 'running')"),
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("active")
