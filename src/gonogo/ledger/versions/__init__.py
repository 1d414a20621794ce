"""The ledger's schema revisions (alembic), shipped inside gonogo.

`gonogo.ledger.versioning` runs them on open with a programmatic configuration (no
alembic.ini): this folder is the script location (env.py) and `revisions/` holds the
revision scripts. To change the ledger's tables:

1. change `gonogo/ledger/schema.py`;
2. add `revisions/vNNNN_<what>.py` with `revision = "NNNN"`, `down_revision` = the previous
   one and an `upgrade()` that only adds (new tables, nullable columns, indexes; use
   `op.batch_alter_table` for anything SQLite cannot ALTER) so history is never lost;
3. set `versioning.HEAD` and append to `versioning.KNOWN_REVISIONS`.

tests/unit/test_ledger_schema.py checks that upgrading an empty database through every
revision gives exactly `schema.metadata`, and that HEAD/KNOWN_REVISIONS match this folder.
"""
