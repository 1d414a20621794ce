"""The ledger's tables as revision 0001 defines them: frozen, never edit.

Revision 0001 creates exactly these, and ledgers made before the schema was versioned
(plain `create_all`, no version table) are checked against them before being stamped
0001. Later revisions change the schema with their own operations, never here.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)


def baseline_metadata() -> MetaData:
    """A fresh MetaData holding the 0001 tables."""
    md = MetaData()
    runs = Table(
        "runs",
        md,
        Column("id", String(64), primary_key=True),
        Column("command", String(64), nullable=False),
        Column("env", String(64)),
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
    Table(
        "steps",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
        Column("idx", Integer, nullable=False),
        Column("name", String(64), nullable=False),
        Column("description", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("detail", JSON),
        Column("started_at", String(32), nullable=False),
        Column("finished_at", String(32)),
    )
    Table(
        "artifacts",
        md,
        Column("digest", String(128), primary_key=True),
        Column("sha", String(64), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("location", Text, nullable=False),
        Column("size", Integer),
        Column("created_at", String(32), nullable=False),
    )
    Table(
        "releases",
        md,
        Column("env", String(64), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
        Column("sha", String(64), nullable=False),
        Column("artifact", String(128), nullable=False),
        Column("vars", JSON, nullable=False),
        Column("state", String(16), nullable=False),
        Column("description", Text, nullable=False),
        Column("created_at", String(32), nullable=False),
        Column("verified_at", String(32)),
        Column("live_since", String(32)),
    )
    Table(
        "migrations",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("env", String(64), nullable=False),
        Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
        Column("from_revision", String(128)),
        Column("to_revision", String(128)),
        Column("status", String(16), nullable=False),
        Column("sql_sha256", String(64)),
        Column("applied_at", String(32), nullable=False),
    )
    Table(
        "approvals",
        md,
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
    Table(
        "env_locks",
        md,
        Column("env", String(64), primary_key=True),
        Column("run_id", String(64), nullable=False),
        Column("command", String(64), nullable=False),
        Column("holder", String(255), nullable=False),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("acquired_at", String(32), nullable=False),
        Column("heartbeat_at", String(32), nullable=False),
    )
    Table(
        "events",
        md,
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
    return md
