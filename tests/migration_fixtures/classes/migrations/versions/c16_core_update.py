"""lossy: Core update() statement

Revision ID: c16_core_update
Revises: c15_nullable_sku
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c16_core_update"
down_revision = "c15_nullable_sku"
branch_labels = None
depends_on = None

products = sa.table("products", sa.column("label", sa.String()))


def upgrade() -> None:
    op.execute(products.update().values(label=op.inline_literal("x")))


def downgrade() -> None:
    pass
