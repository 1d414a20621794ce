"""reversible: rename table

Revision ID: c11_rename_items
Revises: c10_lowercase_names
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "c11_rename_items"
down_revision = "c10_lowercase_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("items", "products")


def downgrade() -> None:
    op.rename_table("products", "items")
