"""reversible: nullable widening

Revision ID: c15_nullable_sku
Revises: c14_seed_tags
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c15_nullable_sku"
down_revision = "c14_seed_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("products", "sku", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    op.alter_column("products", "sku", existing_type=sa.String(length=64), nullable=False)
