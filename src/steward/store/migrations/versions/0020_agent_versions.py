"""deployed agent versions (source, hash, manifest, recorded eval) and rollout state

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-06 10:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0017"
branch_labels = None
depends_on = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_versions",
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("modules", sa.JSON(), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("app_attr", sa.String(length=200), nullable=True),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("agent", "version"),
    )
    op.create_table(
        "agent_rollouts",
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("stable_version", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("agent"),
    )


def downgrade() -> None:
    op.drop_table("agent_rollouts")
    op.drop_table("agent_versions")
