"""SQLAlchemy Core tables of the ledger, as of the newest schema revision (versioning.HEAD).

Timestamps are ISO-8601 UTC strings with microseconds so they sort correctly as text on
every backend and read the same in SQLite and PostgreSQL.

Changing a table here needs a new revision in `gonogo/ledger/versions/revisions/` and a new
`versioning.HEAD`; tests/unit/test_ledger_schema.py fails until both agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("command", String(64), nullable=False),
    Column("env", String(64)),
    # running | succeeded | refused | failed | rolled_back | halted | interrupted
    Column("status", String(16), nullable=False),
    Column("exit_code", Integer),
    Column("actor", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("sha", String(64)),
    Column("artifact", String(128)),
    Column("plan", JSON),
    Column("summary", Text),
    Column("evidence", Text),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
)
Index("ix_runs_env_started", runs.c.env, runs.c.started_at)

steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False),
    # running | ok | failed | skipped
    Column("status", String(16), nullable=False),
    Column("detail", JSON),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(128), primary_key=True),
    Column("sha", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("location", Text, nullable=False),
    Column("size", Integer),
    Column("created_at", String(32), nullable=False),
)

releases = Table(
    "releases",
    metadata,
    Column("env", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("artifact", String(128), nullable=False),
    Column("vars", JSON, nullable=False),
    # pending | live | failed | retired
    Column("state", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("verified_at", String(32)),
    Column("live_since", String(32)),
)

migrations = Table(
    "migrations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("env", String(64), nullable=False),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("from_revision", String(128)),
    Column("to_revision", String(128)),
    # ok | failed (upgrades), downgraded | downgrade-failed (`rollback --db`)
    Column("status", String(16), nullable=False),
    Column("sql_sha256", String(64)),
    Column("applied_at", String(32), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("env", String(64), nullable=False),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("from_revision", String(128), nullable=False),
    Column("to_revision", String(128), nullable=False),
    Column("sql_sha256", String(64), nullable=False),
    Column("approved_by", String(255), nullable=False),
    Column("note", Text, nullable=False),
    Column("approved_at", String(32), nullable=False),
)

env_locks = Table(
    "env_locks",
    metadata,
    Column("env", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("command", String(64), nullable=False),
    Column("holder", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", String(32), nullable=False),
    Column("heartbeat_at", String(32), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("ts", String(32), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("env", String(64)),
    Column("run_id", String(64)),
    Column("actor", String(255), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("hash", name="uq_events_hash"),
)

# The ledger's own alembic version table. Not `alembic_version`: a team may point the ledger
# at a database whose application schema is managed by alembic too.
VERSION_TABLE = "gonogo_ledger_version"

# Kept out of `metadata`: alembic owns this table (same shape as the one alembic creates).
version_metadata = MetaData()
ledger_version = Table(
    VERSION_TABLE,
    version_metadata,
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)
