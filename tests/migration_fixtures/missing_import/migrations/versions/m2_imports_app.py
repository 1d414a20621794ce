"""a revision that imports the app

Revision ID: m2_imports_app
Revises: m1_base
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from gonogo_fixture_app.models import metadata  # noqa: F401  (no such module)

revision = "m2_imports_app"
down_revision = "m1_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("a", sa.Column("x", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("a", "x")
