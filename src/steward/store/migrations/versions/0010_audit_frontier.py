"""audit checkpoints keep the Merkle frontier, so the next checkpoint reads only newer records

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-06 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: checkpoints signed before this column existed have none; the next checkpoint
    # then rebuilds the frontier from the records once and stores it.
    op.add_column("audit_checkpoints", sa.Column("frontier", sa.Text(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy would lose the append-only triggers.
    op.drop_column("audit_checkpoints", "frontier")
