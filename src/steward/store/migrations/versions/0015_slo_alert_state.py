"""SLO burn-rate alert state: one row per (tenant, agent, objective, rule), so each firing is
sent exactly once however many processes evaluate the alerts

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slo_alert_state",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(200), primary_key=True),
        sa.Column("objective", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(64), primary_key=True),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("slo_alert_state")
