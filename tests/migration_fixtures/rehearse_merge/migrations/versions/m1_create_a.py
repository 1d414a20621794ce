"""create a

Revision ID: m1_create_a
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m1_create_a"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("a", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("a")
