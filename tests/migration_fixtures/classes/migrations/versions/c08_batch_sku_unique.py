"""reversible: batch constraint and NOT NULL

Revision ID: c08_batch_sku_unique
Revises: c07_create_tags_raises
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c08_batch_sku_unique"
down_revision = "c07_create_tags_raises"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.alter_column("qty", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("uq_items_sku", ["sku"])


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_constraint("uq_items_sku", type_="unique")
        batch.alter_column("qty", existing_type=sa.BigInteger(), nullable=True)
