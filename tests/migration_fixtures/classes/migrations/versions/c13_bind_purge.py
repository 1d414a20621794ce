"""lossy: data migration through op.get_bind()

Revision ID: c13_bind_purge
Revises: c12_widen_sku
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c13_bind_purge"
down_revision = "c12_widen_sku"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    stale = conn.execute(sa.text("SELECT id FROM products WHERE qty < 0")).fetchall()
    conn.execute(sa.text("DELETE FROM products WHERE qty < 0"))
    assert stale == []


def downgrade() -> None:
    pass
