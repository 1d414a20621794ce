"""lossy: narrow items.name

Revision ID: c05_narrow_items_name
Revises: c04_delete_empty_items
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c05_narrow_items_name"
down_revision = "c04_delete_empty_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column(
        "items",
        "name",
        existing_type=sa.String(length=255),
        type_=sa.String(length=50),
        existing_nullable=False,
    )


def downgrade() -> None:
    op.alter_column(
        "items",
        "name",
        existing_type=sa.String(length=50),
        type_=sa.String(length=255),
        existing_nullable=False,
    )
