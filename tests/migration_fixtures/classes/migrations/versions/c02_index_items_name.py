"""reversible: index on items.name

Revision ID: c02_index_items_name
Revises: c01_create_items
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "c02_index_items_name"
down_revision = "c01_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_name", "items", ["name"])


def downgrade() -> None:
    op.drop_index("ix_items_name", table_name="items")
