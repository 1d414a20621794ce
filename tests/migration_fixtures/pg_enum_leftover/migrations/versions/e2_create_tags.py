"""create tags with an enum column; the downgrade leaves the enum type behind

Revision ID: e2_create_tags
Revises: e1_create_items
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e2_create_tags"
down_revision = "e1_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On PostgreSQL, create_table also runs CREATE TYPE tag_kind for the enum.
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.Enum("label", "topic", name="tag_kind"), nullable=False),
    )


def downgrade() -> None:
    # A mistake: drop_table does not drop the type; upgrading again would fail on it.
    op.drop_table("tags")
