"""create tags and an index, IF NOT EXISTS: safe to run twice

Revision ID: i2_create_tags
Revises: i1_create_items
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i2_create_tags"
down_revision = "i1_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("label", sa.String(50), nullable=False),
        if_not_exists=True,
    )
    op.create_index("ix_tags_label", "tags", ["label"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_tags_label", table_name="tags", if_exists=True)
    op.drop_table("tags", if_exists=True)
