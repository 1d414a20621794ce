"""lossy: drop items.note

Revision ID: c03_drop_items_note
Revises: c02_index_items_name
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c03_drop_items_note"
down_revision = "c02_index_items_name"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("items", "note")


def downgrade() -> None:
    op.add_column("items", sa.Column("note", sa.Text(), nullable=True))
