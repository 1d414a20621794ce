"""add items.sku with an index; the downgrade drops the column first, which fails

Revision ID: b2_items_sku
Revises: b1_create_items
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b2_items_sku"
down_revision = "b1_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("sku", sa.String(32), nullable=True))
    op.create_index("ix_items_sku", "items", ["sku"])


def downgrade() -> None:
    # Wrong order: SQLite refuses to drop an indexed column, and on PostgreSQL the
    # column's index goes with it, so drop_index fails there.
    op.drop_column("items", "sku")
    op.drop_index("ix_items_sku", table_name="items")
