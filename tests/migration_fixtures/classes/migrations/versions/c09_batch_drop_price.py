"""lossy: batch drop column

Revision ID: c09_batch_drop_price
Revises: c08_batch_sku_unique
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c09_batch_drop_price"
down_revision = "c08_batch_sku_unique"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("price")


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("price", sa.Numeric(10, 2), nullable=True))
