"""The ledger's schema version: checked on every open, upgraded when gonogo is newer.

The version lives in its own table (`gonogo_ledger_version`, alembic's shape). Opening a
ledger that is already at HEAD costs one SELECT and never imports alembic. Anything else
happens inside one write transaction that holds the ledger's write lock, so concurrent
openers (many CI jobs starting at once) never race: the first creates or upgrades, the
others find it done.

- empty database: the HEAD tables are created and stamped HEAD (tests prove this equals
  running every revision from an empty database);
- tables from before versioning (no version table): checked against revision 0001, any
  missing nullable column or table added, stamped 0001, then upgraded;
- a known older revision: alembic upgrades it to HEAD (revisions only add, so history is
  kept);
- a revision this gonogo does not know: a one-line error, nothing touched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn

from gonogo.errors import GonogoError
from gonogo.ledger.schema import VERSION_TABLE, ledger_version, metadata, version_metadata

HEAD = "0001"
KNOWN_REVISIONS: tuple[str, ...] = ("0001",)
BASELINE = "0001"
VERSIONS_DIR = Path(__file__).resolve().parent / "versions"

WriteTx = Callable[[], AbstractContextManager[Connection]]


@dataclass(frozen=True)
class Schema:
    """Where the revisions are and which is newest; tests swap in their own revisions."""

    versions_dir: Path = VERSIONS_DIR
    head: str = HEAD
    known: tuple[str, ...] = KNOWN_REVISIONS
    # The tables at `head`, created directly in an empty database (no alembic import);
    # None runs every revision instead.
    head_metadata: MetaData | None = field(default=metadata)


def current_versions(engine: Engine) -> list[str] | None:
    """The stamped revisions, or None when there is no version table (or no database)."""
    try:
        with engine.connect() as conn:
            return [str(v) for v in conn.execute(select(ledger_version.c.version_num)).scalars()]
    except DBAPIError:
        # No version table yet, or the database cannot be reached: the locked slow path
        # finds out which, and says so.
        return None


def ensure_schema(
    engine: Engine, write_tx: WriteTx, location: str, schema: Schema | None = None
) -> str | None:
    """Bring the ledger at `location` to the schema's head; returns what was done, if any."""
    schema = schema or Schema()
    found = current_versions(engine)
    if found == [schema.head]:
        return None
    if found:
        _refuse_unknown(found, location, schema)
    with write_tx() as conn:
        return _ensure_locked(conn, location, schema)


def _refuse_unknown(found: list[str], location: str, schema: Schema) -> None:
    unknown = [v for v in found if v not in schema.known]
    if unknown or len(found) > 1:
        raise GonogoError(
            f"ledger {location} is at schema version {', '.join(found)}, newer than this "
            f"gonogo (knows up to {schema.head}); upgrade gonogo"
        )


def _ensure_locked(conn: Connection, location: str, schema: Schema) -> str | None:
    names = set(inspect(conn).get_table_names())
    found: list[str] = []
    if VERSION_TABLE in names:
        found = [str(v) for v in conn.execute(select(ledger_version.c.version_num)).scalars()]
    if found == [schema.head]:
        return None  # another process got here first
    if found:
        _refuse_unknown(found, location, schema)
        _upgrade(conn, location, schema, found[0])
        return f"upgraded from {found[0]} to {schema.head}"
    from gonogo.ledger.versions.baseline import baseline_metadata

    baseline = baseline_metadata()
    if not names & set(baseline.tables):
        if names and conn.dialect.name == "sqlite":
            # A ledger file holds a ledger and nothing else: this one is another
            # application's database. (A PostgreSQL ledger may share a team's database.)
            shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
            raise GonogoError(
                f"{location.removeprefix('sqlite:///')} is not a gonogo ledger: it is another "
                f"application's SQLite database (tables {shown}); move it out of the way, or "
                "point GONOGO_LEDGER_URL at a ledger of its own"
            )
        if schema.head_metadata is not None:
            schema.head_metadata.create_all(conn)
            _stamp(conn, schema.head)
        else:
            _upgrade(conn, location, schema, "an empty database")
        return f"created at {schema.head}"
    _adopt_unversioned(conn, location, baseline, names)
    _stamp(conn, BASELINE)
    done = f"stamped {BASELINE} (made before schema versioning)"
    if schema.head == BASELINE:
        return done
    _upgrade(conn, location, schema, BASELINE)
    return f"{done} and upgraded to {schema.head}"


def _adopt_unversioned(
    conn: Connection, location: str, baseline: MetaData, names: set[str]
) -> None:
    """Check a ledger made by `create_all` before versioning is the 0001 shape; fill gaps.

    Early gonogo builds created some tables or nullable columns later than others (e.g.
    migrations.sql_sha256, approvals); those are added here exactly as 0001 defines them.
    A table with columns a gonogo ledger never had is someone else's: refuse it.
    """
    insp = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for name, table in baseline.tables.items():
        if name not in names:
            table.create(conn)
            continue
        have = {c["name"] for c in insp.get_columns(name)}
        extra = sorted(have - set(table.c.keys()))
        missing = [c for c in table.c if c.name not in have]
        required = [c.name for c in missing if not c.nullable]
        if extra or required:
            problem = (
                f"has columns {', '.join(extra)} that a gonogo ledger does not"
                if extra
                else f"lacks the required columns {', '.join(required)}"
            )
            raise GonogoError(
                f"ledger {location}: table {name} {problem}; is it another application's "
                "database? Point GONOGO_LEDGER_URL at a database of its own"
            )
        for col in missing:
            ddl = CreateColumn(col).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {quote(name)} ADD COLUMN {ddl}"))


def _stamp(conn: Connection, revision: str) -> None:
    version_metadata.create_all(conn)
    conn.execute(ledger_version.delete())
    conn.execute(insert(ledger_version).values(version_num=revision))


def _upgrade(conn: Connection, location: str, schema: Schema, start: str) -> None:
    """Run alembic's upgrade to head on `conn`, inside the caller's transaction.

    DDL is transactional on SQLite and PostgreSQL, so a revision that fails leaves the
    ledger exactly as it was (and this gonogo refuses to use it until fixed).
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(schema.versions_dir))
    config.set_main_option("version_locations", str(schema.versions_dir / "revisions"))
    # os.pathsep, so a folder with spaces in its name stays one location.
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, schema.head)
    except GonogoError:
        raise
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GonogoError(
            f"upgrading ledger {location} from {start} to schema version {schema.head} "
            f"failed, nothing was changed: {type(exc).__name__}: {detail}"
        ) from exc
