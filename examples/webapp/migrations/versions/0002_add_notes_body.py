"""add notes.body

Revision ID: 0002_add_notes_body
Revises: 0001_create_notes
Create Date: 2025-01-13 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_add_notes_body"
down_revision: str | None = "0001_create_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _notes_with_body() -> sa.Table:
    # The shape of notes at this revision. Batch mode on SQLite recreates the table from
    # it, which also makes the downgrade work offline (--sql), where nothing can be reflected.
    return sa.Table(
        "notes",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
    )


def upgrade() -> None:
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notes", copy_from=_notes_with_body()) as batch:
        batch.drop_column("body")
