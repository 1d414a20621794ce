"""irreversible: downgrade raises

Revision ID: c07_create_tags_raises
Revises: c06_add_sku_no_downgrade
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c07_create_tags_raises"
down_revision = "c06_add_sku_no_downgrade"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("label", sa.String(length=40), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("tags cannot be removed once items reference them")
