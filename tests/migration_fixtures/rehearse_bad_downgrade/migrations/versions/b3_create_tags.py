"""create tags

Revision ID: b3_create_tags
Revises: b2_items_sku
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b3_create_tags"
down_revision = "b2_items_sku"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("tags")
