"""index items.name; the downgrade also drops revision 1's index

Revision ID: d2_index_name
Revises: d1_create_items
"""

from __future__ import annotations

from alembic import op

revision = "d2_index_name"
down_revision = "d1_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_name", "items", ["name"])


def downgrade() -> None:
    op.drop_index("ix_items_name", table_name="items")
    op.drop_index("ix_items_created_at", table_name="items")  # a mistake: not ours
