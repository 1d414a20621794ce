"""Alembic environment of the ledger schema: always run by gonogo.ledger.versioning.

gonogo hands over a connection already inside its own (locked) transaction, so the
upgrade and the version stamp commit together with nothing else writing in between.
"""

from __future__ import annotations

from alembic import context

from gonogo.ledger.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things; batch mode lets revisions use batch_alter_table.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
