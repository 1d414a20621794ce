"""lossy: delete rows with op.execute

Revision ID: c04_delete_empty_items
Revises: c03_drop_items_note
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "c04_delete_empty_items"
down_revision = "c03_drop_items_note"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM items WHERE qty = 0")


def downgrade() -> None:
    pass
