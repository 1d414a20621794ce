"""The ledger as first released: runs, steps, artifacts, releases, migrations, approvals,
environment locks and the hash-chained events.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

from alembic import op

from gonogo.ledger.versions.baseline import baseline_metadata

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    baseline_metadata().create_all(op.get_bind())


def downgrade() -> None:
    # Dropping the ledger would drop its history; gonogo never downgrades its own schema.
    raise NotImplementedError("the ledger schema is never downgraded")
