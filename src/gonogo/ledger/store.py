"""Ledger store: every write is one transaction that also appends a hash-chained event.

SQLite (a file, or memory for dry runs) is the default; a PostgreSQL URL gives a team one
shared ledger. Either way appends are serialised by a database-wide write lock taken at
the start of the write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction
advisory lock), so every event's prev_hash is the true head, whichever machine wrote it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from gonogo.errors import GonogoError
from gonogo.ledger import chain, lock
from gonogo.ledger.reader import ReadSpec, ShortRead, Snapshot, driver_errors
from gonogo.ledger.schema import (
    VERSION_TABLE,
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

if TYPE_CHECKING:
    from gonogo.ledger.audit import AuditReport
    from gonogo.ledger.versioning import Schema

# pg_advisory_xact_lock key of the ledger's write lock ("gonogo" in ASCII): every write
# transaction of a PostgreSQL ledger takes it first, like SQLite's BEGIN IMMEDIATE.
WRITE_LOCK_KEY = 0x676F6E6F676F


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

    def stale_reason(
        self,
        host: str,
        *,
        now: datetime | None = None,
        stale_after: float = lock.DEFAULT_STALE_AFTER,
    ) -> str | None:
        """Why this lock's holder is gone, seen from `host` at `now`; None if it looks alive.

        Same host: its pid is gone. Another host: no heartbeat for `stale_after` seconds.
        Pass `now` from `Ledger.now()` so a team ledger compares with the database's clock.
        """
        return lock.stale_reason(self, host, now=now or datetime.now(UTC), stale_after=stale_after)

    def stale(
        self,
        host: str,
        *,
        now: datetime | None = None,
        stale_after: float = lock.DEFAULT_STALE_AFTER,
    ) -> bool:
        return self.stale_reason(host, now=now, stale_after=stale_after) is not None

    def heartbeat_age(self, now: datetime | None = None) -> float:
        return lock.heartbeat_age(self, now or datetime.now(UTC))


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


@dataclass(frozen=True)
class NewEvent:
    """An event to append with `Ledger.record_many` (what `Ledger.record` takes, as a value)."""

    kind: str
    actor: str
    env: str | None = None
    run_id: str | None = None
    payload: Mapping[str, Any] | None = None


_LEDGER_TABLES = {*metadata.tables, VERSION_TABLE}
_HEAD = select(events.c.hash).order_by(events.c.seq.desc()).limit(1)
_INSERT_EVENT = insert(events)


def _sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE below is the only BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=15000")
        (mode,) = cur.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            # WAL is a lasting property of the file: set it on a new ledger (or an old one),
            # never on another application's database (opening that is refused anyway).
            names = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not names or names & _LEDGER_TABLES:
                cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers serialise at BEGIN, so reading the chain head and appending are atomic.
        # Readers take a plain (deferred) snapshot and never wait for a writer (WAL).
        write = conn.get_execution_options().get("gonogo_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: str) -> Engine:
    from gonogo.migrations.alembic import normalise_url

    return create_engine(
        normalise_url(url),
        # READ COMMITTED whatever the server's default: after waiting for the write lock,
        # each statement must see what the previous holder committed.
        isolation_level="READ COMMITTED",
        connect_args={"connect_timeout": 10, "application_name": "gonogo ledger"},
    )


_PG_PREFIXES = ("postgres://", "postgresql://", "postgresql+psycopg://")


class Ledger:
    def __init__(
        self,
        engine: Engine,
        *,
        location: str,
        stale_after: float = lock.DEFAULT_STALE_AFTER,
        schema: Schema | None = None,
    ) -> None:
        self.engine = engine
        self.location = location
        self.stale_after = stale_after
        self.postgres = engine.dialect.name == "postgresql"
        # What opening did to the schema (None: it was already current), for tests and logs.
        self.schema_change: str | None = None
        from gonogo.ledger import versioning

        try:
            self.schema_change = versioning.ensure_schema(engine, self.tx, location, schema)
        except DBAPIError as exc:
            engine.dispose()
            raise _cannot_open(location, exc, postgres=self.postgres) from None
        except (ValueError, ImportError) as exc:
            # A port that is not a number, or a missing driver, shows at the first connect.
            engine.dispose()
            raise GonogoError(
                f"ledger {location} is not usable: {' '.join(str(exc).split())}; check "
                "GONOGO_LEDGER_URL"
            ) from None
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def open(
        cls,
        url: str | None,
        default_path: Path,
        *,
        stale_after: float = lock.DEFAULT_STALE_AFTER,
    ) -> Ledger:
        if url == "sqlite://":
            # One shared connection, so gates evaluated in threads see the same database.
            from sqlalchemy.pool import StaticPool

            memory = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
            return cls(memory, location="memory", stale_after=stale_after)
        if not url:
            return cls(
                _sqlite_engine(default_path), location=str(default_path), stale_after=stale_after
            )
        shown = shown_url(url)
        path = sqlite_file(url)
        if path is not None:
            return cls(_sqlite_engine(path), location=url, stale_after=stale_after)
        if not url.startswith(_PG_PREFIXES):
            raise GonogoError(
                f"GONOGO_LEDGER_URL {shown} is not a ledger gonogo can use: give "
                "sqlite:///PATH or postgresql://USER@HOST/DATABASE"
            )
        try:
            engine = _postgres_engine(url)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise GonogoError(f"GONOGO_LEDGER_URL {shown} is not usable: {exc}") from None
        # The location shows in messages and evidence: never with its password.
        return cls(engine, location=shown, stale_after=stale_after)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction holding the ledger's write lock until it commits."""
        with self._write(chain_lock=True) as conn:
            yield conn

    @contextmanager
    def _write(self, *, chain_lock: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(gonogo_write=True)
            with conn.begin():
                if self.postgres and chain_lock:
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY}
                    )
                yield conn

    def now(self) -> datetime:
        """The time locks are judged by: the database server's clock on PostgreSQL (runners'
        clocks disagree), this machine's on SQLite (a SQLite ledger has one machine)."""
        if not self.postgres:
            return datetime.now(UTC)
        with self.engine.connect() as conn:
            return lock.parse_ts(_server_now(conn))

    def _clock(self, conn: Connection) -> str:
        return _server_now(conn) if self.postgres else now_iso()

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
        return self._append_many(conn, [NewEvent(kind, actor, env, run_id, payload)])[-1]

    def _append_many(self, conn: Connection, batch: Iterable[NewEvent]) -> list[str]:
        """Chain `batch` onto the head, in order; the caller holds the write lock."""
        prev = conn.execute(_HEAD).scalar_one_or_none() or chain.GENESIS
        rows: list[dict[str, Any]] = []
        for new in batch:
            ts = now_iso()
            body = chain.canonical_json(dict(new.payload or {}))
            digest = chain.fields_hash(prev, ts, new.kind, new.env, new.run_id, new.actor, body)
            rows.append(
                {
                    "ts": ts,
                    "kind": new.kind,
                    "env": new.env,
                    "run_id": new.run_id,
                    "actor": new.actor,
                    "payload": body,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        if rows:
            # Statements built once, values as parameters: SQLAlchemy's compiled cache.
            conn.execute(_INSERT_EVENT, rows[0] if len(rows) == 1 else rows)
        return [row["hash"] for row in rows]

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

    def record_many(self, batch: Iterable[NewEvent]) -> list[str]:
        """Append several events in one write transaction, in order; returns their hashes.

        All or none are recorded, and no other writer's event comes between them. Far
        faster than `record` per event (one commit, one head look-up, one multi-row insert)
        for whoever has many events at hand (an import, a test, a benchmark).
        """
        with self.tx() as conn:
            return self._append_many(conn, batch)

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

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Every event in seq order, streamed (never all in memory)."""
        try:
            with self.snapshot() as snap:
                for rows in snap.event_batches():
                    for row in rows:
                        yield chain.as_dict(row)
        except database_errors() as exc:
            raise reading_failed(self, exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One consistent, read-only view of the whole ledger until the block ends.

        SQLite: one deferred read transaction (WAL: writers go on, unseen). PostgreSQL: a
        REPEATABLE READ, READ ONLY transaction, so events and tables are read as of one
        instant however long the reading takes.
        """
        with self.engine.connect() as conn:
            if self.postgres:
                conn = conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            with conn.begin():
                raw = conn.connection.driver_connection
                yield Snapshot(raw, postgres=self.postgres, dialect=conn.dialect)

    def read_spec(self, *, upto: int | None, snapshot: str | None) -> ReadSpec | None:
        """How another process reads this ledger as a snapshot of it sees it (None for
        the in-memory ledger of a dry run, which no other process can see)."""
        url = self.engine.url
        if self.postgres:
            target = url.set(drivername="postgresql").render_as_string(hide_password=False)
            return ReadSpec("postgresql", target, upto=upto, snapshot=snapshot)
        if self.location == "memory" or not url.database:
            return None
        return ReadSpec("sqlite", url.database, upto=upto)

    def event_by_hash(self, digest: str) -> dict[str, Any] | None:
        with self.snapshot() as snap:
            return snap.event_by_hash(digest)

    def event_after(self, seq: int) -> dict[str, Any] | None:
        with self.snapshot() as snap:
            return snap.event_after(seq)

    def verify_chain(self) -> tuple[bool, int | None, str]:
        """Recompute every hash; returns (intact, first bad seq, what happened there)."""
        try:
            with self.snapshot() as snap:
                walker = chain.ChainWalker(snap.event_by_hash, snap.event_after)
                batches = snap.event_batches()
                for rows in batches:
                    walker.feed_many(rows)
                    if walker.stopped:
                        break
                batches.close()  # before `finish` looks events up on the same connection
                broken = walker.finish()
        except database_errors() as exc:
            raise reading_failed(self, exc) from None
        if broken is None:
            return True, None, "intact"
        return False, broken.seq, f"{broken.problem}: {broken.detail}"

    def audit(self, *, parallel: bool | None = None) -> AuditReport:
        """The hash chain and every table cross-checked against the events that record it.

        `parallel`: check the chain in a second process while this one replays the tables
        (None: when the ledger is large and this machine has a CPU to spare).
        """
        from gonogo.ledger.audit import audit

        return audit(self, parallel=parallel)

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
        origin: Mapping[str, Any] | None = None,
    ) -> None:
        """`origin` says where the run ran (a CI run's URL, workflow, actor and ref, or the
        local user and host); it lives in the run.started event."""
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
                payload={
                    "command": command,
                    "host": host,
                    "pid": pid,
                    "sha": sha,
                    "plan": plan,
                    **({"origin": dict(origin)} if origin else {}),
                },
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
        """Take the environment lock; returns the current holder if someone has it.

        Atomic across machines: the insert does nothing if the env already has a row (its
        primary key), and the write lock orders it with every other ledger write.
        """
        values = dict(lock.__dict__)
        with self.tx() as conn:
            if self.postgres:
                # Heartbeats of a team ledger are on the server's clock (see `now`).
                values["heartbeat_at"] = self._clock(conn)
            claim = _insert_ignoring_conflict(conn, env_locks, ["env"]).values(**values)
            if self.postgres:
                # psycopg's rowcount is not 0 for an insert that did nothing; RETURNING is
                # exact (and SQLite before 3.35 has no RETURNING, so not there).
                taken = conn.execute(claim.returning(env_locks.c.env)).first() is not None
            else:
                taken = conn.execute(claim).rowcount == 1
            if not taken:
                held = conn.execute(select(env_locks).where(env_locks.c.env == lock.env)).one()
                return LockRow(**held._mapping)
            self._append(
                conn,
                "lock.acquired",
                actor=actor,
                env=lock.env,
                run_id=lock.run_id,
                payload={"holder": lock.holder, "pid": lock.pid, "host": lock.host},
            )
        return None

    def lock_holder(self, env: str) -> LockRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(env_locks).where(env_locks.c.env == env)).one_or_none()
        return LockRow(**row._mapping) if row else None

    def heartbeat(self, env: str, run_id: str) -> bool:
        """Refresh the lock's heartbeat; False when `run_id` no longer holds `env`."""
        # No event and no chain lock: a heartbeat is liveness, not history.
        with self._write(chain_lock=False) as conn:
            beat = self._clock(conn)
            touched = conn.execute(
                update(env_locks)
                .where(env_locks.c.env == env, env_locks.c.run_id == run_id)
                .values(heartbeat_at=beat)
            ).rowcount
        return bool(touched)

    def keep_alive(self, env: str, run_id: str) -> lock.Heartbeat | None:
        """Start beating `run_id`'s lock on `env` from a thread (stop() it before release).

        None for the in-memory ledger of a dry run: nobody else can see its locks, and its
        one shared connection must not be written from two threads.
        """
        if self.location == "memory":
            return None
        every = self.stale_after / lock.BEATS_PER_WINDOW
        return lock.Heartbeat(self, env, run_id, every=every).start()

    def lock_staleness(self, held: LockRow, host: str) -> str | None:
        """Why `held`'s holder is gone, seen from `host` now; None while it looks alive."""
        now = self.now() if held.host != host else None
        return held.stale_reason(host, now=now, stale_after=self.stale_after)

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
                    # The state it starts in, so `audit verify` can replay later changes.
                    "state": rel.state,
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

    def applied_revisions(self, env: str) -> set[tuple[str, str]]:
        """(revision, sha256 of its SQL) of every revision applied successfully on env."""
        query = select(migrations.c.to_revision, migrations.c.sql_sha256).where(
            migrations.c.env == env,
            migrations.c.status == "ok",
            migrations.c.to_revision.is_not(None),
            migrations.c.sql_sha256.is_not(None),
        )
        with self.engine.connect() as conn:
            return {(str(r[0]), str(r[1])) for r in conn.execute(query)}

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


def _insert_ignoring_conflict(conn: Connection, table: Table, keys: list[str]) -> Insert:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)


def _server_now(conn: Connection) -> str:
    """The PostgreSQL server's wall clock in the ledger's timestamp format."""
    stamp = conn.execute(
        text(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
        )
    ).scalar_one()
    return str(stamp)


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///PATH` ledger URL (query options such as `?mode=ro` are not
    part of the path); None for any other URL."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def shown_url(url: str) -> str:
    """A ledger URL as messages and evidence show it: no password, in either place."""
    from gonogo.migrations.alembic import display_url

    return _QUERY_PASSWORD.sub(r"\g<1><redacted>", display_url(url))


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def _cannot_open(location: str, exc: DBAPIError, *, postgres: bool) -> GonogoError:
    return explain(location, _first_line(exc), postgres=postgres, doing="open")


def explain(location: str, reason: str, *, postgres: bool, doing: str) -> GonogoError:
    """One line naming the ledger, what is wrong with it and what to do."""
    if postgres:
        return GonogoError(
            f"cannot {doing} ledger {location}: {reason} (check GONOGO_LEDGER_URL, and that "
            "the server is up and lets this machine in)"
        )
    path = location.removeprefix("sqlite:///")
    low = reason.lower()
    if "not a database" in low or "encrypted" in low:
        return GonogoError(
            f"{path} is not a gonogo ledger (it is not an SQLite database): move it out of "
            "the way (gonogo starts a new ledger where there is none) or restore the ledger "
            "from a backup"
        )
    if "malformed" in low or "corrupt" in low or "stopped at seq" in low:
        return GonogoError(f"ledger {path} is damaged ({reason}): restore it from a backup")
    if Path(path).is_dir():
        return GonogoError(f"ledger {path} is a folder, not a file: move it out of the way")
    return GonogoError(f"cannot {doing} ledger {path}: {reason}")


def database_errors() -> tuple[type[Exception], ...]:
    """What a database can raise while a ledger is read, through SQLAlchemy or not (and
    a scan cut short by damage)."""
    return (DBAPIError, ShortRead, *driver_errors())


def reading_failed(ledger: Ledger, exc: BaseException) -> GonogoError:
    """A database error while reading a ledger, as one line (see `explain`)."""
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    reason = text_.splitlines()[0] if text_ else type(exc).__name__
    return explain(ledger.location, reason, postgres=ledger.postgres, doing="read")


def _first_line(exc: DBAPIError) -> str:
    text_ = str(exc.orig or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
