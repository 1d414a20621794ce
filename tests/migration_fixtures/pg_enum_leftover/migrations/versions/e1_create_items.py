"""create items

Revision ID: e1_create_items
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e1_create_items"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("items")
