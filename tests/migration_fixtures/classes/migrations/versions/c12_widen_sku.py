"""lossy: widening upgrade, narrowing downgrade

Revision ID: c12_widen_sku
Revises: c11_rename_items
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c12_widen_sku"
down_revision = "c11_rename_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column(
        "products", "sku", existing_type=sa.String(length=32), type_=sa.String(length=64)
    )


def downgrade() -> None:
    op.alter_column(
        "products", "sku", existing_type=sa.String(length=64), type_=sa.String(length=32)
    )
