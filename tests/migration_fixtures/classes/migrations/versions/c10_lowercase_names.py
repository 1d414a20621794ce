"""lossy: UPDATE via sa.text

Revision ID: c10_lowercase_names
Revises: c09_batch_drop_price
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c10_lowercase_names"
down_revision = "c09_batch_drop_price"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE items SET name = lower(name)"))


def downgrade() -> None:
    pass
