"""Bulk reads of a ledger through its driver: events as plain tuples, tables row by row.

`audit verify` reads every event and every row; building SQLAlchemy rows and dicts for a
million events costs more than checking them, so these reads go to the DBAPI connection
itself (sqlite3, or psycopg with server-side cursors) and stream in batches: memory stays
a few megabytes whatever the ledger's size.

A `Snapshot` wraps one driver connection inside one read transaction. `ReadSpec` says
how another process opens the same ledger at the same point (`open_snapshot`), so the
hash chain can be checked there while this process replays the tables.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from typing import Any

from gonogo.ledger import chain

# Rows per fetch: large enough that fetching costs little per row, small enough that a
# batch of events is a few megabytes.
EVENT_BATCH = 5000

# The statements, spelled out per placeholder style (sqlite3: ?, psycopg: %s).
_SQLITE = {
    "all": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "ORDER BY seq"
    ),
    "upto": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "WHERE seq <= ? ORDER BY seq"
    ),
    "hash": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "WHERE hash = ? ORDER BY seq LIMIT 1"
    ),
    "after": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "WHERE seq > ? ORDER BY seq LIMIT 1"
    ),
    "last": "SELECT max(seq) FROM events",
}
_POSTGRES = {
    "all": _SQLITE["all"],
    "upto": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "WHERE seq <= %s ORDER BY seq"
    ),
    "hash": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "WHERE hash = %s ORDER BY seq LIMIT 1"
    ),
    "after": (
        "SELECT seq, kind, env, run_id, actor, payload, ts, prev_hash, hash FROM events "
        "WHERE seq > %s ORDER BY seq LIMIT 1"
    ),
    "last": _SQLITE["last"],
}


@dataclass(frozen=True)
class ReadSpec:
    """How another process opens this ledger as this snapshot sees it.

    `target` is the SQLite file, or the PostgreSQL URL (with its password: never put it
    on a command line or in a message). `snapshot` is PostgreSQL's exported snapshot, so
    that process sees exactly what this one does; on SQLite, where events are only ever
    appended, `upto` (the last seq seen here) does the same for the events.
    """

    backend: str  # "sqlite" | "postgresql"
    target: str
    upto: int | None = None
    snapshot: str | None = None
    connect_timeout: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": self.target,
            "upto": self.upto,
            "snapshot": self.snapshot,
            "connect_timeout": self.connect_timeout,
        }


class ShortRead(Exception):
    """Reading the events in seq order stopped before the last event: a damaged database
    (SQLite may end a scan early, silently, at a corrupt page)."""

    def __init__(self, seen: int | None, last: int) -> None:
        super().__init__(f"reading its events stopped at seq {seen or 0} of {last}")
        self.seen = seen
        self.last = last


class Snapshot:
    """Reads on one driver connection, inside the read transaction its opener began."""

    def __init__(self, raw: Any, *, postgres: bool, dialect: Any = None) -> None:
        self.raw = raw
        self.postgres = postgres
        self.dialect = dialect  # SQLAlchemy's, to spell table queries (`rows`)
        self._sql = _POSTGRES if postgres else _SQLITE
        self._cursors = 0

    def _cursor(self) -> Any:
        return self.raw.cursor()

    def _batches(
        self, sql: str, params: tuple[Any, ...] | None = None, *, json_as_text: bool = False
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        """The rows of a query, EVENT_BATCH at a time, never all of them in memory.

        PostgreSQL: streamed in chunks (libpq 17's chunked rows; else a server-side
        cursor, several times slower per row). No other query may run on the connection
        until the stream is read or closed.
        """
        if self.postgres and _pg_chunked_rows():
            cursor = self.raw.cursor()
            if json_as_text:
                _json_as_text(cursor)
            stream = cursor.stream(sql, params, size=EVENT_BATCH)
            try:
                while True:
                    batch = list(islice(stream, EVENT_BATCH))
                    if not batch:
                        return
                    yield batch
            finally:
                stream.close()
                cursor.close()
        if self.postgres:
            self._cursors += 1
            cursor = self.raw.cursor(name=f"gonogo_read_{self._cursors}")
            if json_as_text:
                _json_as_text(cursor)
        else:
            cursor = self.raw.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            while True:
                batch = cursor.fetchmany(EVENT_BATCH)
                if not batch:
                    return
                yield batch
        finally:
            cursor.close()

    def last_seq(self) -> int | None:
        cursor = self._cursor()
        try:
            cursor.execute(self._sql["last"])
            row = cursor.fetchone()
        finally:
            cursor.close()
        return int(row[0]) if row and row[0] is not None else None

    def export(self) -> str | None:
        """PostgreSQL: this transaction's snapshot, for another process to read the same."""
        if not self.postgres:
            return None
        cursor = self._cursor()
        try:
            cursor.execute("SELECT pg_export_snapshot()")
            row = cursor.fetchone()
        finally:
            cursor.close()
        return str(row[0]) if row else None

    def event_batches(
        self, *, upto: int | None = None, whole: bool = True
    ) -> Generator[list[chain.EventRow], None, None]:
        """Events in seq order (up to seq `upto`), EVENT_BATCH at a time.

        `whole`: raise ShortRead if the last event read is not the last there is (up to
        `upto`, or the last this snapshot has).
        """
        last = upto if upto is not None or not whole else self.last_seq()
        seen: int | None = None
        if upto is None:
            batches = self._batches(self._sql["all"])
        else:
            batches = self._batches(self._sql["upto"], (upto,))
        with closing(batches):  # the stream ends with this generator, however it ends
            for rows in batches:
                seen = rows[-1][0]
                yield rows
        if whole and last is not None and seen != last:
            raise ShortRead(seen, last)

    def replay_batches(
        self,
        *,
        upto: int | None = None,
        kinds: list[str],
        prefixes: list[str],
    ) -> Iterator[list[chain.EventRow]]:
        """Events of these kinds (or kind prefixes) in seq order, only their
        `chain.REPLAY_COLUMNS`: what a replay of some tables reads, and no more."""
        from sqlalchemy import or_, select

        from gonogo.ledger.schema import events

        query = select(*(events.c[name] for name in chain.REPLAY_COLUMNS)).where(
            or_(events.c.kind.in_(kinds), *(events.c.kind.startswith(p) for p in prefixes))
        )
        if upto is not None:
            query = query.where(events.c.seq <= upto)
        sql = query.order_by(events.c.seq).compile(
            dialect=self.dialect, compile_kwargs={"literal_binds": True}
        )
        # () though there is nothing to bind: psycopg then reads SQLAlchemy's "%%" as "%"
        yield from self._batches(str(sql), ())

    def _one(self, which: str, value: Any) -> dict[str, Any] | None:
        cursor = self._cursor()
        try:
            cursor.execute(self._sql[which], (value,))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return chain.as_dict(tuple(row)) if row is not None else None

    def event_by_hash(self, digest: str) -> dict[str, Any] | None:
        return self._one("hash", digest)

    def event_after(self, seq: int) -> dict[str, Any] | None:
        return self._one("after", seq)

    def rows(self, table: Any, *, order_by: str | None = None) -> Iterator[dict[str, Any]]:
        """Every row of `table` (a SQLAlchemy Table), as SQLAlchemy would give it: JSON
        columns decoded (psycopg does that itself; sqlite3 hands over the text)."""
        from sqlalchemy import JSON, select

        names = [column.name for column in table.c]
        # sqlite3 hands over JSON columns as text; so does psycopg, told to: `json_column`
        # decodes faster than its loader.
        decode = [i for i, column in enumerate(table.c) if isinstance(column.type, JSON)]
        query = select(table)
        if order_by is not None:
            query = query.order_by(table.c[order_by])
        sql = str(query.compile(dialect=self.dialect))
        for fetched in self._batches(sql, (), json_as_text=True):
            for values in fetched:
                row = dict(zip(names, values, strict=True))
                for i in decode:
                    row[names[i]] = json_column(values[i])
                yield row


def _pg_chunked_rows() -> bool:
    import psycopg

    return bool(psycopg.pq.version() >= 170000)


def _json_as_text(cursor: Any) -> None:
    from psycopg.types.string import TextLoader

    for name in ("json", "jsonb"):
        cursor.adapters.register_loader(name, TextLoader)


def driver_errors() -> tuple[type[Exception], ...]:
    """The drivers' own errors (reads here bypass SQLAlchemy, which would wrap them)."""
    import sqlite3

    errors: list[type[Exception]] = [sqlite3.Error]
    psycopg = sys.modules.get("psycopg")  # loaded if a PostgreSQL ledger is open
    if psycopg is not None:
        errors.append(psycopg.Error)
    return tuple(errors)


def json_column(stored: Any) -> Any:
    """A JSON column's value as SQLAlchemy decodes it, or as stored if it is not JSON."""
    if not isinstance(stored, str | bytes):
        return stored
    try:
        return chain.loads(stored)
    except ValueError:
        return stored  # only a hand-edited row has this; audit compares it as it is


def open_snapshot(spec: ReadSpec) -> Snapshot:
    """A new connection to `spec`'s ledger, in a read transaction seeing what it saw."""
    if spec.backend == "sqlite":
        import sqlite3

        raw: Any = sqlite3.connect(spec.target, isolation_level=None)
        raw.execute("PRAGMA busy_timeout=15000")
        raw.execute("BEGIN")
        return Snapshot(raw, postgres=False)
    import psycopg
    from psycopg import sql

    raw = psycopg.connect(
        spec.target,
        connect_timeout=spec.connect_timeout,
        application_name="gonogo audit",
    )
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    raw.read_only = True
    if spec.snapshot:
        raw.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(spec.snapshot)))
    return Snapshot(raw, postgres=True)
