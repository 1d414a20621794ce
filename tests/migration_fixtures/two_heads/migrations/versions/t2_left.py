"""left branch

Revision ID: t2_left
Revises: t1_base
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "t2_left"
down_revision = "t1_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_a_left", "a", ["id"])


def downgrade() -> None:
    op.drop_index("ix_a_left", table_name="a")
