"""create tags without IF NOT EXISTS: running it twice fails

Revision ID: n2_create_tags
Revises: n1_create_items
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "n2_create_tags"
down_revision = "n1_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("label", sa.String(50), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tags")
