"""more on the left

Revision ID: t4_left_more
Revises: t2_left
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "t4_left_more"
down_revision = "t2_left"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_a_left2", "a", ["id"])


def downgrade() -> None:
    op.drop_index("ix_a_left2", table_name="a")
