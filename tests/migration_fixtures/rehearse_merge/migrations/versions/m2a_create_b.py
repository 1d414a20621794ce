"""create b

Revision ID: m2a_create_b
Revises: m1_create_a
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m2a_create_b"
down_revision = "m1_create_a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("b", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("b")
