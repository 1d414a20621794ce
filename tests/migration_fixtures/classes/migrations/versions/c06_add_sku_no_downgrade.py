"""irreversible: empty downgrade

Revision ID: c06_add_sku_no_downgrade
Revises: c05_narrow_items_name
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c06_add_sku_no_downgrade"
down_revision = "c05_narrow_items_name"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("sku", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Nothing to do (wrong: the column stays)."""
