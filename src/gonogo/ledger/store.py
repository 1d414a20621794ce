"""Ledger store: every write is one transaction that also appends a hash-chained event."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gonogo.ledger import chain
from gonogo.ledger.schema import (
    approvals,
    artifacts,
    env_locks,
    events,
    metadata,
    migrations,
    releases,
    runs,
    steps,
)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RunRow:
    id: str
    command: str
    env: str | None
    status: str
    exit_code: int | None
    actor: str
    host: str
    pid: int
    sha: str | None
    artifact: str | None
    plan: Any
    summary: str | None
    evidence: str | None
    started_at: str
    finished_at: str | None


@dataclass(frozen=True)
class ReleaseRow:
    env: str
    version: int
    run_id: str
    sha: str
    artifact: str
    vars: dict[str, str]
    state: str
    description: str
    created_at: str
    verified_at: str | None
    live_since: str | None

    @property
    def label(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class LockRow:
    env: str
    run_id: str
    command: str
    holder: str
    host: str
    pid: int
    acquired_at: str
    heartbeat_at: str


@dataclass(frozen=True)
class ArtifactRow:
    digest: str
    sha: str
    kind: str
    location: str
    size: int | None
    created_at: str


@dataclass(frozen=True)
class MigrationRow:
    env: str
    run_id: str
    from_revision: str | None
    to_revision: str | None
    status: str
    applied_at: str
    sql_sha256: str | None = None


@dataclass(frozen=True)
class ApprovalRow:
    env: str
    run_id: str
    from_revision: str
    to_revision: str
    sql_sha256: str
    approved_by: str
    note: str
    approved_at: str


def _sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE below is the only BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers serialise at BEGIN, so reading the chain head and appending are atomic.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Ledger:
    def __init__(self, engine: Engine, *, location: str) -> None:
        self.engine = engine
        self.location = location
        metadata.create_all(engine)

    @classmethod
    def open(cls, url: str | None, default_path: Path) -> Ledger:
        if url == "sqlite://":
            # One shared connection, so gates evaluated in threads see the same database.
            from sqlalchemy.pool import StaticPool

            memory = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
            return cls(memory, location="memory")
        if url:
            if url.startswith("sqlite:///"):
                return cls(_sqlite_engine(Path(url.removeprefix("sqlite:///"))), location=url)
            return cls(create_engine(url, future=True), location=url)
        return cls(_sqlite_engine(default_path), location=str(default_path))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- events ------------------------------------------------------------------------

    def _append(
        self,
        conn: Connection,
        kind: str,
        *,
        actor: str,
        env: str | None = None,
        run_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> str:
        head = conn.execute(select(events.c.hash).order_by(events.c.seq.desc()).limit(1))
        prev = head.scalar_one_or_none() or chain.GENESIS
        ts = now_iso()
        body = chain.canonical_json(dict(payload or {}))
        digest = chain.event_hash(prev, chain.hashed_fields(ts, kind, env, run_id, actor, body))
        conn.execute(
            insert(events).values(
                ts=ts,
                kind=kind,
                env=env,
                run_id=run_id,
                actor=actor,
                payload=body,
                prev_hash=prev,
                hash=digest,
            )
        )
        return digest

    def record(
        self,
        kind: str,
        *,
        actor: str,
        env: str | None = None,
        run_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> str:
        with self.tx() as conn:
            return self._append(conn, kind, actor=actor, env=env, run_id=run_id, payload=payload)

    def events(
        self, *, run_id: str | None = None, kind: str | None = None, env: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(events).order_by(events.c.seq)
        if run_id is not None:
            query = query.where(events.c.run_id == run_id)
        if kind is not None:
            query = query.where(events.c.kind == kind)
        if env is not None:
            query = query.where(events.c.env == env)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def verify_chain(self) -> tuple[bool, int | None, str]:
        """Recompute every hash; returns (intact, first bad seq, reason)."""
        prev = chain.GENESIS
        for row in self.events():
            if row["prev_hash"] != prev:
                return False, row["seq"], "prev_hash does not match the previous event"
            fields = chain.hashed_fields(
                row["ts"], row["kind"], row["env"], row["run_id"], row["actor"], row["payload"]
            )
            if chain.event_hash(prev, fields) != row["hash"]:
                return False, row["seq"], "content does not match its hash"
            prev = row["hash"]
        return True, None, "intact"

    # -- runs and steps ----------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        command: str,
        env: str | None,
        actor: str,
        host: str,
        pid: int,
        plan: Any = None,
        evidence: str | None = None,
        sha: str | None = None,
    ) -> None:
        with self.tx() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    command=command,
                    env=env,
                    status="running",
                    actor=actor,
                    host=host,
                    pid=pid,
                    plan=plan,
                    evidence=evidence,
                    sha=sha,
                    started_at=now_iso(),
                )
            )
            self._append(
                conn,
                "run.started",
                actor=actor,
                env=env,
                run_id=run_id,
                payload={"command": command, "host": host, "pid": pid, "sha": sha, "plan": plan},
            )

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.tx() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        exit_code: int,
        summary: str,
        actor: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        with self.tx() as conn:
            row = conn.execute(select(runs.c.env).where(runs.c.id == run_id)).one()
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, exit_code=exit_code, summary=summary, finished_at=now_iso())
            )
            self._append(
                conn,
                "run.finished",
                actor=actor,
                env=row.env,
                run_id=run_id,
                payload={
                    "status": status,
                    "exit_code": exit_code,
                    "summary": summary,
                    **dict(details or {}),
                },
            )

    def run(self, run_id: str) -> RunRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).one_or_none()
        return RunRow(**row._mapping) if row else None

    def runs(self, env: str | None = None, *, limit: int = 50) -> list[RunRow]:
        query = select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if env is not None:
            query = query.where(runs.c.env == env)
        with self.engine.connect() as conn:
            return [RunRow(**r._mapping) for r in conn.execute(query)]

    def step_started(
        self, run_id: str, idx: int, name: str, description: str, *, actor: str
    ) -> int:
        with self.tx() as conn:
            result = conn.execute(
                insert(steps).values(
                    run_id=run_id,
                    idx=idx,
                    name=name,
                    description=description,
                    status="running",
                    started_at=now_iso(),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            step_id = int(key[0])
            self._append(
                conn,
                "step.started",
                actor=actor,
                run_id=run_id,
                payload={"idx": idx, "name": name, "description": description},
            )
        return step_id

    def step_finished(
        self, step_id: int, *, status: str, detail: Mapping[str, Any], actor: str
    ) -> None:
        with self.tx() as conn:
            conn.execute(
                update(steps)
                .where(steps.c.id == step_id)
                .values(status=status, detail=dict(detail), finished_at=now_iso())
            )
            row = conn.execute(select(steps).where(steps.c.id == step_id)).one()
            self._append(
                conn,
                "step.finished",
                actor=actor,
                run_id=row.run_id,
                payload={
                    "idx": row.idx,
                    "name": row.name,
                    "status": status,
                    "detail": dict(detail),
                },
            )

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(steps).where(steps.c.run_id == run_id).order_by(steps.c.id))
            return [dict(r._mapping) for r in rows]

    # -- locks -------------------------------------------------------------------------

    def try_lock(self, lock: LockRow, *, actor: str) -> LockRow | None:
        """Take the environment lock; returns the current holder if someone has it."""
        try:
            with self.tx() as conn:
                held = conn.execute(
                    select(env_locks).where(env_locks.c.env == lock.env)
                ).one_or_none()
                if held is not None:
                    return LockRow(**held._mapping)
                conn.execute(insert(env_locks).values(**lock.__dict__))
                self._append(
                    conn,
                    "lock.acquired",
                    actor=actor,
                    env=lock.env,
                    run_id=lock.run_id,
                    payload={"holder": lock.holder, "pid": lock.pid, "host": lock.host},
                )
        except IntegrityError:
            return self.lock_holder(lock.env)
        return None

    def lock_holder(self, env: str) -> LockRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(env_locks).where(env_locks.c.env == env)).one_or_none()
        return LockRow(**row._mapping) if row else None

    def heartbeat(self, env: str, run_id: str) -> None:
        with self.tx() as conn:
            conn.execute(
                update(env_locks)
                .where(env_locks.c.env == env, env_locks.c.run_id == run_id)
                .values(heartbeat_at=now_iso())
            )

    def release_lock(self, env: str, run_id: str, *, actor: str) -> bool:
        with self.tx() as conn:
            gone = conn.execute(
                env_locks.delete().where(env_locks.c.env == env, env_locks.c.run_id == run_id)
            ).rowcount
            if gone:
                self._append(conn, "lock.released", actor=actor, env=env, run_id=run_id)
        return bool(gone)

    def force_unlock(self, env: str, *, actor: str, reason: str) -> LockRow | None:
        with self.tx() as conn:
            row = conn.execute(select(env_locks).where(env_locks.c.env == env)).one_or_none()
            if row is None:
                return None
            held = LockRow(**row._mapping)
            conn.execute(env_locks.delete().where(env_locks.c.env == env))
            # A run whose lock is cleared by hand never finished on its own: its process died.
            conn.execute(
                update(runs)
                .where(runs.c.id == held.run_id, runs.c.status == "running")
                .values(
                    status="interrupted",
                    summary=f"never finished; its lock was cleared by {actor}: {reason}",
                    finished_at=now_iso(),
                )
            )
            self._append(
                conn,
                "lock.forced",
                actor=actor,
                env=env,
                run_id=held.run_id,
                payload={
                    "reason": reason,
                    "holder": held.holder,
                    "pid": held.pid,
                    "host": held.host,
                    "acquired_at": held.acquired_at,
                },
            )
        return held

    # -- artifacts and releases --------------------------------------------------------

    def add_artifact(self, art: ArtifactRow, *, actor: str, run_id: str | None) -> None:
        with self.tx() as conn:
            exists = conn.execute(
                select(artifacts.c.digest).where(artifacts.c.digest == art.digest)
            ).one_or_none()
            if exists is None:
                conn.execute(insert(artifacts).values(**art.__dict__))
                self._append(
                    conn,
                    "artifact.created",
                    actor=actor,
                    run_id=run_id,
                    payload={"digest": art.digest, "sha": art.sha, "kind": art.kind},
                )

    def artifact(self, digest: str) -> ArtifactRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(artifacts).where(artifacts.c.digest == digest)).one_or_none()
        return ArtifactRow(**row._mapping) if row else None

    def add_release(self, rel: ReleaseRow, *, actor: str) -> None:
        with self.tx() as conn:
            conn.execute(insert(releases).values(**rel.__dict__))
            self._append(
                conn,
                "release.created",
                actor=actor,
                env=rel.env,
                run_id=rel.run_id,
                payload={
                    "version": rel.version,
                    "sha": rel.sha,
                    "artifact": rel.artifact,
                    "description": rel.description,
                    "vars": sorted(rel.vars),
                },
            )

    def next_release_version(self, env: str) -> int:
        with self.engine.connect() as conn:
            top = conn.execute(
                select(func.max(releases.c.version)).where(releases.c.env == env)
            ).scalar_one_or_none()
        return int(top or 0) + 1

    def set_live(self, env: str, version: int, *, actor: str, run_id: str) -> None:
        """Make `version` the one live release of `env`; the previous live one retires."""
        with self.tx() as conn:
            conn.execute(
                update(releases)
                .where(
                    releases.c.env == env, releases.c.state == "live", releases.c.version != version
                )
                .values(state="retired")
            )
            conn.execute(
                update(releases)
                .where(releases.c.env == env, releases.c.version == version)
                .values(state="live", live_since=now_iso())
            )
            self._append(
                conn,
                "release.live",
                actor=actor,
                env=env,
                run_id=run_id,
                payload={"version": version},
            )

    def set_release_state(
        self, env: str, version: int, state: str, *, actor: str, run_id: str, reason: str = ""
    ) -> None:
        with self.tx() as conn:
            conn.execute(
                update(releases)
                .where(releases.c.env == env, releases.c.version == version)
                .values(state=state)
            )
            self._append(
                conn,
                f"release.{state}",
                actor=actor,
                env=env,
                run_id=run_id,
                payload={"version": version, "reason": reason},
            )

    def mark_verified(self, env: str, version: int, *, actor: str, run_id: str) -> None:
        with self.tx() as conn:
            conn.execute(
                update(releases)
                .where(releases.c.env == env, releases.c.version == version)
                .values(verified_at=now_iso())
            )
            self._append(
                conn,
                "release.verified",
                actor=actor,
                env=env,
                run_id=run_id,
                payload={"version": version},
            )

    def releases(self, env: str) -> list[ReleaseRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(releases).where(releases.c.env == env).order_by(releases.c.version.desc())
            )
            return [ReleaseRow(**r._mapping) for r in rows]

    def release(self, env: str, version: int) -> ReleaseRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(releases).where(releases.c.env == env, releases.c.version == version)
            ).one_or_none()
        return ReleaseRow(**row._mapping) if row else None

    def live_release(self, env: str) -> ReleaseRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(releases).where(releases.c.env == env, releases.c.state == "live")
            ).one_or_none()
        return ReleaseRow(**row._mapping) if row else None

    def last_good_release(self, env: str) -> ReleaseRow | None:
        """The newest release of env that passed verification and never failed it since."""
        for rel in self.releases(env):
            if rel.verified_at is not None and rel.state != "failed":
                return rel
        return None

    def verified_release_of(self, env: str, sha: str) -> ReleaseRow | None:
        """The newest release of `sha` in `env` that passed verification."""
        for rel in self.releases(env):
            if rel.sha == sha and rel.verified_at is not None:
                return rel
        return None

    # -- migrations --------------------------------------------------------------------

    def record_migration(self, mig: MigrationRow, *, actor: str) -> None:
        with self.tx() as conn:
            conn.execute(insert(migrations).values(**mig.__dict__))
            self._append(
                conn,
                _MIGRATION_EVENTS.get(mig.status, "migration.failed"),
                actor=actor,
                env=mig.env,
                run_id=mig.run_id,
                payload={
                    "from": mig.from_revision,
                    "to": mig.to_revision,
                    "status": mig.status,
                    "sql_sha256": mig.sql_sha256,
                },
            )

    def add_approval(self, row: ApprovalRow, *, actor: str) -> None:
        with self.tx() as conn:
            conn.execute(insert(approvals).values(**row.__dict__))
            self._append(
                conn,
                "migration.approved",
                actor=actor,
                env=row.env,
                run_id=row.run_id,
                payload={
                    "from": row.from_revision,
                    "to": row.to_revision,
                    "sql_sha256": row.sql_sha256,
                    "by": row.approved_by,
                    "note": row.note,
                },
            )

    def approval_for(
        self, env: str, from_revision: str, to_revision: str, sql_sha256: str
    ) -> ApprovalRow | None:
        query = (
            select(approvals)
            .where(
                approvals.c.env == env,
                approvals.c.from_revision == from_revision,
                approvals.c.to_revision == to_revision,
                approvals.c.sql_sha256 == sql_sha256,
            )
            .order_by(approvals.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return ApprovalRow(**{k: v for k, v in row._mapping.items() if k != "id"})

    def applied_sql(self, env: str, sql_sha256: str) -> MigrationRow | None:
        """The newest successful apply of exactly this SQL on env."""
        for mig in reversed(self.migrations_since(env, None)):
            if mig.status == "ok" and mig.sql_sha256 == sql_sha256:
                return mig
        return None

    def migrations_since(self, env: str, since: str | None) -> list[MigrationRow]:
        query = select(migrations).where(migrations.c.env == env).order_by(migrations.c.id)
        if since is not None:
            query = query.where(migrations.c.applied_at > since)
        with self.engine.connect() as conn:
            return [
                MigrationRow(**{k: v for k, v in r._mapping.items() if k != "id"})
                for r in conn.execute(query)
            ]


_MIGRATION_EVENTS = {
    "ok": "migration.applied",
    "failed": "migration.failed",
    "downgraded": "migration.downgraded",
    "downgrade-failed": "migration.downgrade_failed",
}


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
