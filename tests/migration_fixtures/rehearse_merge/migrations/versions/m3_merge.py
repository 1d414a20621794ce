"""merge b and c

Revision ID: m3_merge
Revises: m2a_create_b, m2b_create_c
"""

from __future__ import annotations

revision = "m3_merge"
down_revision = ("m2a_create_b", "m2b_create_c")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
