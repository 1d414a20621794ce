"""a revision file left with merge-conflict markers: it does not compile

Revision ID: b2_broken
Revises: b1_base
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b2_broken"
<<<<<<< HEAD
down_revision = "b1_base"
=======
down_revision = "b1_other"
>>>>>>> feature/other
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.add_column("a", sa.Column("x", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("a", "x")
