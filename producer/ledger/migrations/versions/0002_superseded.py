"""Decisions the write-back applied nowhere (a person's label kept, a newer revision written).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: every decision recorded before was one the write-back applied.
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("superseded", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("superseded")
