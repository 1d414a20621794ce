"""right branch

Revision ID: t3_right
Revises: t1_base
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "t3_right"
down_revision = "t1_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("a", sa.Column("right", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("a", "right")
