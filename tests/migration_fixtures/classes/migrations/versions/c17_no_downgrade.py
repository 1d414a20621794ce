"""irreversible: no downgrade() at all

Revision ID: c17_no_downgrade
Revises: c16_core_update
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "c17_no_downgrade"
down_revision = "c16_core_update"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_products_sku", "products", ["sku"])
