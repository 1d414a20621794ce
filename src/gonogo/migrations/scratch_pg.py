"""The scratch PostgreSQL database `rehearse` runs on, and its schema snapshot.

A PostgreSQL target is never rehearsed on: the rehearsal gets a database of its own on the
same server.

- `ScratchDatabase.create` connects to the target database (the one database the
  credentials are known to reach) and runs ``CREATE DATABASE gonogo_rehearse_<UTC
  time>_<random> TEMPLATE template0`` with the target's encoding and locale. The role needs
  CREATEDB; without it the `GonogoError` names the role and the grant.
- `ScratchDatabase.copy_schema` copies the schema, not the rows: ``pg_dump --schema-only``
  of the target, so drift (an index made by hand) is rehearsed too, loaded in one
  transaction, plus the rows of ``alembic_version``; both are read in one snapshot
  (``pg_export_snapshot``). No table data is copied: the round trips run on empty tables.
  When pg_dump is missing, fails (a server newer than the client) or its output does not
  load (an extension the role may not create), it says why and the caller rebuilds the
  schema with ``alembic upgrade`` instead.
- `ScratchDatabase.drop` always runs (the caller's ``finally``): ``DROP DATABASE ... WITH
  (FORCE)`` on PostgreSQL 13+, which also ends what a killed alembic process left running
  on the server; before 13, end those sessions, then drop. A gonogo killed outright cannot
  drop it: leftovers are the databases named ``gonogo_rehearse_*`` (their comment says
  which database they copied, when, from which host and process); dropping one that is
  not in use is always safe.
- `snapshot` reads a database's schema from the catalog for the round-trip comparisons.

The password travels only in connect parameters and ``PGPASSWORD`` (for pg_dump), never in
a command line, message or result: `PgUrl.display` omits it. Needs PostgreSQL 12 or newer.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError
from gonogo.evidence import Redactor

if TYPE_CHECKING:
    from psycopg import Connection
    from sqlalchemy.engine import URL

PREFIX = "gonogo_rehearse_"
MIN_SERVER_VERSION = 120000
CONNECT_TIMEOUT_S = 10
ADMIN_STATEMENT_TIMEOUT_MS = 60_000
LOCK_TIMEOUT_MS = 30_000
DROP_WAIT_S = 10.0
APPLICATION_NAME = "gonogo-rehearse"

# Same shape as rehearse.Snapshot: {"table notes": {"column id": "integer NOT NULL", ...}}
Snapshot = dict[str, dict[str, str]]


def is_postgresql(scheme: str) -> bool:
    return scheme.split("+", 1)[0].lower() in ("postgres", "postgresql")


@dataclass(frozen=True)
class PgUrl:
    """A PostgreSQL URL as the app writes it: its scheme is what the app's env.py expects."""

    url: URL

    @classmethod
    def parse(cls, raw: str) -> PgUrl:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(raw)
        except (ArgumentError, ValueError) as exc:
            raise GonogoError(
                f"cannot read the database URL: {Redactor().text(_one_line(str(exc)))}"
            ) from None
        if not url.database:
            raise GonogoError("the PostgreSQL URL names no database")
        return cls(url)

    @property
    def database(self) -> str:
        return self.url.database or ""

    def params(self) -> dict[str, Any]:
        """psycopg ``connect()`` keywords: the URL's parts, then its query (``sslmode``,
        ``host=/socket/dir``...), as SQLAlchemy's PostgreSQL dialects read them."""
        url = self.url
        parts = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "dbname": url.database,
        }
        params: dict[str, Any] = {k: v for k, v in parts.items() if v not in (None, "")}
        for key, value in url.query.items():
            params[key] = value[-1] if isinstance(value, tuple) else value
        return params

    def with_database(self, name: str) -> PgUrl:
        return PgUrl(self.url.set(database=name))

    def render(self) -> str:
        """The full URL, password included: for DATABASE_URL only."""
        return self.url.render_as_string(hide_password=False)

    def display(self) -> str:
        """The URL without its password or query: safe for messages and results."""
        from sqlalchemy.engine import URL

        url = self.url  # URL.set() cannot unset a password: None there means "unchanged"
        bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database)
        return bare.render_as_string()

    def guard(self) -> dict[str, str]:
        """What the rehearsal's child process may connect to (see `allows`)."""
        params = self.params()
        return {
            "dialect": "postgresql",
            "url": self.render(),
            "display": self.display(),
            "host": str(params.get("host") or ""),
            "port": str(params.get("port") or ""),
            "dbname": self.database,
        }

    def redact(self, text: str) -> str:
        return Redactor([self.url.password or ""]).text(text)


def allows(guard: Mapping[str, str], cparams: Mapping[str, Any]) -> bool:
    """Whether a DBAPI connect with ``cparams`` (as SQLAlchemy's dialect built them) goes
    to the scratch database: same database name, host and port."""
    return _where(cparams) == (guard["dbname"], guard["host"], guard["port"])


def describe(cparams: Mapping[str, Any]) -> str:
    database, host, port = _where(cparams)
    return f"{database or '?'} on {host or 'the default host'}" + (f":{port}" if port else "")


def _where(cparams: Mapping[str, Any]) -> tuple[str, str, str]:
    database = cparams.get("dbname", cparams.get("database"))  # psycopg(2) / pg8000, asyncpg
    return (str(database or ""), str(cparams.get("host") or ""), str(cparams.get("port") or ""))


# -- the scratch database --------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaCopy:
    """What `ScratchDatabase.copy_schema` did. ``revisions``: the target's alembic_version
    rows. ``reason``: why the schema was not copied (None when it was)."""

    revisions: list[str]
    reason: str | None = None

    @property
    def copied(self) -> bool:
        return self.reason is None


class _NoDump(Exception):
    """pg_dump's copy is not available; the message says why."""


class ScratchDatabase:
    """A database of the rehearsal's own on the target's server. Call `drop` when done."""

    def __init__(self, target: PgUrl, name: str, admin: Connection[Any]) -> None:
        self.target = target
        self.name = name
        self.url = target.with_database(name)
        self._admin = admin

    @classmethod
    def create(cls, target: PgUrl) -> ScratchDatabase:
        admin = _connect(target, autocommit=True)
        try:
            version = admin.info.server_version
            if version < MIN_SERVER_VERSION:
                raise GonogoError(
                    f"rehearse needs PostgreSQL 12 or newer; {target.display()} runs "
                    f"{version // 10000}"
                )
            # Bounded: a lock or a busy server must not hang the rehearsal's set-up.
            admin.execute(f"SET statement_timeout = {ADMIN_STATEMENT_TIMEOUT_MS}")
            admin.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
            name = _create_database(admin, target)
        except BaseException:
            admin.close()
            raise
        return cls(target, name, admin)

    def copy_schema(self, *, timeout: float) -> SchemaCopy:
        """Copy the target's schema and alembic_version rows here, or say why not."""
        import psycopg

        pg_dump = shutil.which("pg_dump")
        with _connect(self.target) as reader:
            # One read-only snapshot for the alembic_version rows and the dump.
            reader.read_only = True
            reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with reader.transaction():
                # A migration running on the target holds alembic_version: wait, boundedly.
                reader.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
                table, revisions = _read_versions(reader, self.target)
                if pg_dump is None:
                    return SchemaCopy(revisions, "pg_dump was not found on PATH")
                try:
                    dump = self._dump(pg_dump, _export_snapshot(reader), timeout)
                except _NoDump as exc:
                    return SchemaCopy(revisions, str(exc))
        try:
            self._load(dump, table, revisions)
        except psycopg.Error as exc:
            return SchemaCopy(revisions, f"pg_dump's output did not load: {self._message(exc)}")
        return SchemaCopy(revisions)

    def revisions(self) -> list[str]:
        """The scratch database's alembic_version rows."""
        with _connect(self.url) as conn:
            return _read_versions(conn, self.url)[1]

    def drop(self) -> str | None:
        """Drop the scratch database. Never raises: returns what went wrong instead, so a
        failed clean-up cannot hide the rehearsal's result or the error being raised."""
        import psycopg

        try:
            try:
                _drop_database(self._admin, self.name)
            except psycopg.OperationalError:
                # The admin session may have died (server restart, network): once more.
                with _connect(self.target, autocommit=True) as conn:
                    _drop_database(conn, self.name)
        except (psycopg.Error, GonogoError) as exc:
            return (
                f"the scratch database {self.name} could not be dropped "
                f'({self._message(exc)}); drop it by hand: DROP DATABASE "{self.name}"'
            )
        finally:
            self._admin.close()
        return None

    def _dump(self, pg_dump: str, snapshot: str | None, timeout: float) -> str:
        from psycopg.conninfo import make_conninfo

        params = self.target.params()
        password = params.pop("password", None)
        argv = [
            pg_dump,
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--no-publications",
            "--no-subscriptions",
            "--no-security-labels",
            "--no-tablespaces",
            f"--lock-wait-timeout={LOCK_TIMEOUT_MS}",
            *(["--snapshot", snapshot] if snapshot else []),
            "--dbname",
            make_conninfo(**params),
        ]
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
        env["PGCLIENTENCODING"] = "UTF8"
        if password:
            env["PGPASSWORD"] = str(password)
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _NoDump(f"pg_dump timed out after {timeout:g} s") from None
        except OSError as exc:
            raise _NoDump(f"pg_dump could not run: {self._message(exc)}") from None
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace")
            lines = [" ".join(ln.split()) for ln in stderr.splitlines() if ln.strip()]
            why = "; ".join(lines) or f"exit status {proc.returncode}"
            raise _NoDump(f"pg_dump failed: {self.target.redact(_limit(why))}")
        return proc.stdout.decode("utf-8")

    def _load(self, dump: str, table: tuple[str, str] | None, revisions: list[str]) -> None:
        from psycopg import sql

        # pg_dump 17.6/16.10/15.14 and later wrap the dump in psql's \restrict; the rest of a
        # --schema-only dump is plain SQL, which the server runs as one simple query.
        body = "\n".join(
            ln for ln in dump.splitlines() if not ln.startswith(("\\restrict ", "\\unrestrict "))
        )
        with _connect(self.url) as conn:  # one transaction: all of it loads, or none
            conn.execute(body.encode("utf-8"))
            if table is not None and revisions:
                insert = sql.SQL("INSERT INTO {}.{} (version_num) VALUES (%s)").format(
                    sql.Identifier(table[0]), sql.Identifier(table[1])
                )
                conn.cursor().executemany(insert, [(r,) for r in revisions])

    def _message(self, exc: BaseException) -> str:
        return self.target.redact(_one_line(str(exc)) or type(exc).__name__)


def _connect(target: PgUrl, *, autocommit: bool = False) -> Connection[Any]:
    import psycopg

    params = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": APPLICATION_NAME,
        **target.params(),
    }
    try:
        return psycopg.connect(autocommit=autocommit, **params)
    except psycopg.Error as exc:
        raise GonogoError(
            f"cannot connect to PostgreSQL {target.display()}: {target.redact(_one_line(str(exc)))}"
        ) from None


def _create_database(admin: Connection[Any], target: PgUrl) -> str:
    import psycopg
    from psycopg import sql

    name = f"{PREFIX}{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_{secrets.token_hex(4)}"
    row = admin.execute(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
        "FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    # template0: nobody can be connected to it (CREATE DATABASE fails while the template
    # is in use, and template1 may be), and it carries nothing the target lacks.
    create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    attempts = [create]
    if row is not None:
        attempts.insert(
            0,
            create
            + sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                *(sql.Literal(str(v)) for v in row)
            ),
        )
    for attempt, statement in enumerate(attempts, 1):
        try:
            admin.execute(statement)
            break
        except psycopg.errors.InsufficientPrivilege:
            role = sql.Identifier(admin.info.user).as_string(admin)
            raise GonogoError(
                f"cannot create a scratch database to rehearse on: role {role} may not "
                f"create databases on {target.display()}; grant it with "
                f"ALTER ROLE {role} CREATEDB, or rehearse with a role that has CREATEDB"
            ) from None
        except psycopg.Error as exc:
            # The target's locale may not be one this server can give a new database
            # (an ICU cluster, say): the server's default locale still rehearses DDL.
            if attempt == len(attempts):
                raise GonogoError(
                    f"cannot create the scratch database {name} on {target.display()}: "
                    f"{target.redact(_one_line(str(exc)))}"
                ) from None
    note = (
        f"gonogo rehearse scratch copy of {target.database}, made "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} by pid {os.getpid()} "
        f"on {socket.gethostname()}; safe to drop"
    )
    with suppress(psycopg.Error):  # only a label for a leftover; its name says what it is
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(note))
        )
    return name


def _drop_database(conn: Connection[Any], name: str, *, force: bool | None = None) -> None:
    """DROP DATABASE, ending the sessions still in it (a killed alembic process's backend
    may still be running its statement). ``force``: None picks by server version."""
    import psycopg
    from psycopg import sql

    ident = sql.Identifier(name)
    if force is None:
        force = conn.info.server_version >= 130000
    if force:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        return
    deadline = time.monotonic() + DROP_WAIT_S
    while True:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
            return
        except psycopg.errors.ObjectInUse:
            # Terminated backends take a moment to exit.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _read_versions(conn: Connection[Any], where: PgUrl) -> tuple[tuple[str, str] | None, list[str]]:
    """The alembic_version table alembic would find (search_path), and its rows."""
    import psycopg
    from psycopg import sql

    try:
        found = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass('alembic_version')"
        ).fetchone()
        if found is None:
            return None, []
        table = (str(found[0]), str(found[1]))
        rows = conn.execute(
            sql.SQL("SELECT version_num FROM {}.{}").format(
                sql.Identifier(table[0]), sql.Identifier(table[1])
            )
        ).fetchall()
    except psycopg.Error as exc:
        raise GonogoError(
            f"cannot read alembic_version in {where.display()}: {where.redact(_one_line(str(exc)))}"
        ) from None
    return table, sorted(str(r[0]) for r in rows)


def _export_snapshot(conn: Connection[Any]) -> str | None:
    """The transaction's snapshot for pg_dump --snapshot, or None where the server cannot
    export one (the dump is then taken a moment later: good enough)."""
    import psycopg

    try:
        with conn.transaction():  # a savepoint: a failure must not abort the outer one
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def _one_line(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    return _limit(" ".join(first.split()))


def _limit(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- schema snapshot ---------------------------------------------------------------------------

# Every query keeps to the schemas the application owns: not the system's (pg_catalog,
# information_schema, pg_toast, pg_temp_N...); and leaves out what belongs to an extension
# (pg_depend's deptype 'e'), which the extension's own entry stands for.
_RELATIONS = r"""
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND c.relname <> 'alembic_version'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass
                  AND x.objid = c.oid AND x.deptype = 'e')
"""
_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""
# A primary key's or unique constraint's index is the constraint's: recorded with it.
_INDEXES = """
SELECT i.indrelid, c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY(%s) AND NOT EXISTS (
  SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
  AND k.contype IN ('p', 'u', 'x'))
"""
_CONSTRAINTS = """
SELECT conrelid, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = ANY(%s)
"""
_TRIGGERS = """
SELECT tgrelid, tgname, pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = ANY(%s) AND NOT tgisinternal
"""
_SEQUENCES = r"""
SELECT n.nspname, c.relname,
       format_type(s.seqtypid, NULL) || ' START ' || s.seqstart || ' INCREMENT ' ||
       s.seqincrement || ' MIN ' || s.seqmin || ' MAX ' || s.seqmax ||
       CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END ||
       COALESCE((SELECT ' OWNED BY ' || d.refobjid::regclass::text || '.'
                        || quote_ident(a.attname)
                 FROM pg_depend d JOIN pg_attribute a
                   ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype IN ('a', 'i') LIMIT 1), '')
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass
                  AND x.objid = c.oid AND x.deptype = 'e')
"""
_TYPES = r"""
SELECT n.nspname, t.typname, 'type',
       'ENUM (' || string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) || ')'
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
JOIN pg_enum e ON e.enumtypid = t.oid
WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_type'::regclass
                  AND x.objid = t.oid AND x.deptype = 'e')
GROUP BY n.nspname, t.typname
UNION ALL
SELECT n.nspname, t.typname, 'domain',
       format_type(t.typbasetype, t.typtypmod) ||
       CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END ||
       COALESCE(' DEFAULT ' || t.typdefault, '') ||
       COALESCE((SELECT ' ' || string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
                 FROM pg_constraint k WHERE k.contypid = t.oid), '')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'd'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_type'::regclass
                  AND x.objid = t.oid AND x.deptype = 'e')
UNION ALL
SELECT n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
       'md5 ' || md5(pg_get_functiondef(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                  AND x.objid = p.oid AND x.deptype = 'e')
UNION ALL
SELECT n.nspname, n.nspname, 'schema', ''
FROM pg_namespace n
WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_namespace'::regclass
                  AND x.objid = n.oid AND x.deptype = 'e')
UNION ALL
SELECT n.nspname, e.extname, 'extension', 'version ' || e.extversion
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql'
"""


def snapshot(url: str) -> Snapshot:
    """Tables (columns, indexes, constraints, triggers), views, sequences, enum and domain
    types, functions, schemas and extensions of the database at ``url``, every schema but
    the system's. Objects outside ``public`` are named ``schema.name``."""
    import psycopg

    target = PgUrl.parse(url)
    params = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": APPLICATION_NAME}
    with psycopg.connect(autocommit=True, **{**params, **target.params()}) as conn:
        # Whatever the role's search_path, every name in a definition comes out qualified
        # the same way, so two snapshots compare equal exactly when the schema is the same.
        conn.execute("SET search_path = pg_catalog")
        snap: Snapshot = {}
        tables = _relations(conn, snap)
        if tables:
            _table_parts(conn, tables)
        for schema, name, kind, definition in conn.execute(_TYPES):
            key = str(name) if kind in ("schema", "extension") else _name(schema, name)
            snap[f"{kind} {key}"] = {"definition": str(definition)} if definition else {}
        for schema, name, definition in conn.execute(_SEQUENCES):
            snap[f"sequence {_name(schema, name)}"] = {"definition": str(definition)}
        return snap


def _relations(conn: Connection[Any], snap: Snapshot) -> dict[int, dict[str, str]]:
    """Add the tables and views to ``snap``; return the tables' part dicts by oid."""
    kinds = {"r": "table", "p": "table", "f": "foreign table", "v": "view"}
    tables: dict[int, dict[str, str]] = {}
    for oid, schema, name, relkind, viewdef in conn.execute(_RELATIONS):
        kind = kinds.get(str(relkind), "materialized view")
        if viewdef is not None:
            snap[f"{kind} {_name(schema, name)}"] = {"sql": " ".join(str(viewdef).split())}
        else:
            tables[int(oid)] = snap[f"{kind} {_name(schema, name)}"] = {}
    return tables


def _table_parts(conn: Connection[Any], tables: dict[int, dict[str, str]]) -> None:
    oids = list(tables)
    for rel, name, type_, notnull, default, identity, generated in conn.execute(_COLUMNS, (oids,)):
        parts = [str(type_), "NOT NULL" if notnull else "NULL"]
        if generated:
            parts.append(f"GENERATED ALWAYS AS ({default}) STORED")
        elif default is not None:
            parts.append(f"DEFAULT {default}")
        if identity:
            parts.append("IDENTITY " + ("ALWAYS" if identity == "a" else "BY DEFAULT"))
        tables[int(rel)][f"column {name}"] = " ".join(parts)
    for query, kind in ((_INDEXES, "index"), (_CONSTRAINTS, "constraint"), (_TRIGGERS, "trigger")):
        for rel, name, definition in conn.execute(query, (oids,)):
            tables[int(rel)][f"{kind} {name}"] = str(definition)


def _name(schema: object, name: object) -> str:
    return str(name) if schema == "public" else f"{schema}.{name}"
