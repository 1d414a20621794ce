"""reversible: seed rows, nothing destroyed

Revision ID: c14_seed_tags
Revises: c13_bind_purge
Create Date: 2025-02-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c14_seed_tags"
down_revision = "c13_bind_purge"
branch_labels = None
depends_on = None

tags = sa.table("tags", sa.column("id", sa.Integer()), sa.column("label", sa.String()))


def upgrade() -> None:
    op.bulk_insert(tags, [{"id": 1, "label": "new"}, {"id": 2, "label": "sale"}])


def downgrade() -> None:
    pass
