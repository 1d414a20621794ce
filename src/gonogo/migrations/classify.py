"""Rollback class of every alembic revision, decided from the operations it invokes.

Each revision's ``upgrade()`` and ``downgrade()`` run offline against a recording stand-in
for ``alembic.op``: a real `alembic.operations.Operations` bound to a `MigrationContext` in
``as_sql`` mode (no database; default dialect SQLite, PostgreSQL and any other SQLAlchemy
dialect accepted) whose ``invoke`` records every `MigrateOperation` object (``AddColumnOp``,
``DropTableOp``, ``AlterColumnOp``, ``ExecuteSQLOp``...) before alembic renders it into the
offline SQL buffer. ``batch_alter_table`` blocks are recorded op by op too, and
``op.get_bind().execute(...)`` is recorded as an ``ExecuteSQLOp``. Raw SQL (strings,
``sa.text()``, Core statements) is parsed with sqlglot (`gonogo.migrations.sqlparse`).

The classes (issue 5), most severe first:

``irreversible``
    ``downgrade()`` is missing, or raises (``raise NotImplementedError``...), or is empty
    (``pass``/docstring: records no operation) while the upgrade changes the schema. Alembic
    cannot take the database back past this revision. A revision whose ``upgrade()`` cannot
    be run offline (it raises here) is also reported ``irreversible``: its class cannot be
    established, and that must not read as safe.

``lossy``
    Applying it or undoing it destroys data: either direction drops a column or a table,
    narrows a column type (``String(255)`` -> ``String(50)``, ``Text`` -> ``String``,
    ``BigInteger`` -> ``Integer``, ``Numeric`` precision or scale down, ``DateTime`` ->
    ``Date``, enum values removed, a type change without ``existing_type``, any conversion
    that is not a known widening), or runs SQL that deletes, updates, truncates, drops or
    upserts (``DELETE``, ``UPDATE``, ``TRUNCATE``, ``DROP TABLE``, ``ALTER ... DROP COLUMN``,
    ``ON CONFLICT DO UPDATE``...; opaque ``DO``/``CALL`` blocks count too).

    Following the issue literally ("a downgrade that drops what the upgrade added data
    into"), a downgrade that drops a column the upgrade added, or a table the upgrade
    created, is **lossy**: whether anything was written to it by the time someone rolls back
    is unknowable beforehand, and whatever was written is gone. So ``add_column`` +
    ``drop_column`` and ``create_table`` + ``drop_table`` revisions are lossy, with a reason
    such as "downgrade drops column notes.body that the upgrade added; data written to it
    since would be lost".

``reversible``
    Everything else: indexes and constraints created and dropped, columns made nullable or
    NOT NULL (that can fail, it does not destroy data), renames, comments, inserts, empty or
    merge revisions. The downgrade runs and neither direction destroys data. (Whether the
    downgrade undoes *every* upgrade step exactly is for ``rehearse`` to prove on a real
    database; this analysis is static.)

Every `RevisionClass` carries the reason and the operation that decided it (``cause``),
all the operations of both directions as short descriptions ("add_column notes.body TEXT"),
and the offline SQL each direction emitted for the dialect (useful for ``plan``).

The recorder installs itself as the module-level ``alembic.op`` proxy while a revision runs
(as ``Operations.context()`` does), so classification is not thread-safe.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gonogo.errors import GonogoError
from gonogo.migrations.history import DownRevision, History, RevisionInfo, load_history
from gonogo.migrations.sqlparse import SqlFinding, analyse_sql

Klass = Literal["reversible", "lossy", "irreversible"]
REVERSIBLE: Klass = "reversible"
LOSSY: Klass = "lossy"
IRREVERSIBLE: Klass = "irreversible"
_SEVERITY: dict[Klass, int] = {REVERSIBLE: 0, LOSSY: 1, IRREVERSIBLE: 2}

DIALECT_ALIASES = {"postgres": "postgresql", "pg": "postgresql", "sqlite3": "sqlite"}


@dataclass(frozen=True)
class Finding:
    """One reason a revision is not reversible; ``cause`` names the operation."""

    klass: Klass
    reason: str
    cause: str
    direction: Literal["upgrade", "downgrade"]


@dataclass(frozen=True)
class RevisionClass:
    """The rollback class of one revision, why, and what it does."""

    revision: str
    down_revision: DownRevision
    klass: Klass
    reason: str
    operations: list[str]
    cause: str | None
    downgrade_operations: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    upgrade_sql: str = ""
    downgrade_sql: str = ""
    notes: list[str] = field(default_factory=list)
    path: str = ""
    doc: str = ""

    @property
    def safe(self) -> bool:
        return self.klass == REVERSIBLE

    def to_dict(self, *, sql: bool = False) -> dict[str, Any]:
        down = self.down_revision
        data: dict[str, Any] = {
            "revision": self.revision,
            "down_revision": list(down) if isinstance(down, tuple) else down,
            "class": self.klass,
            "reason": self.reason,
            "cause": self.cause,
            "operations": list(self.operations),
            "downgrade_operations": list(self.downgrade_operations),
            "findings": [
                {"class": f.klass, "reason": f.reason, "cause": f.cause, "direction": f.direction}
                for f in self.findings
            ],
            "notes": list(self.notes),
            "doc": self.doc,
            "path": self.path,
        }
        if sql:
            data["upgrade_sql"] = self.upgrade_sql
            data["downgrade_sql"] = self.downgrade_sql
        return data


@dataclass(frozen=True)
class Classification:
    """Every revision of a history (base -> heads) with its class."""

    heads: list[str]
    revisions: list[RevisionClass]
    dialect: str = "sqlite"

    def get(self, revision: str) -> RevisionClass:
        for rc in self.revisions:
            if rc.revision == revision:
                return rc
        raise GonogoError(f"revision {revision} is not in the migration history")

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {REVERSIBLE: 0, LOSSY: 0, IRREVERSIBLE: 0}
        for rc in self.revisions:
            counts[rc.klass] += 1
        return counts

    def to_dict(self, *, sql: bool = False) -> dict[str, Any]:
        return {
            "heads": list(self.heads),
            "head_count": len(self.heads),
            "dialect": self.dialect,
            "counts": self.counts(),
            "revisions": [rc.to_dict(sql=sql) for rc in self.revisions],
        }

    def lines(self) -> list[str]:
        """A plain-text rendering: one block per revision, then the head count."""
        out: list[str] = []
        for rc in self.revisions:
            out.append(f"{rc.revision}  {rc.klass.upper()}  {rc.doc}".rstrip())
            out.append(f"    reason: {rc.reason}")
            out.extend(f"    - {desc}" for desc in rc.operations)
        n = len(self.heads)
        out.append(f"{n} head{'s' if n != 1 else ''}: {', '.join(self.heads) or '(none)'}")
        return out


# -- public entry points -------------------------------------------------------------------


def classify_project(
    ini: Path | str, *, dialect: str = "sqlite", revisions: Sequence[str] | None = None
) -> Classification:
    """Classify every revision of the alembic project at ``ini`` (or only ``revisions``)."""
    history = load_history(ini)
    return classify_history(history, dialect=dialect, revisions=revisions)


def classify_history(
    history: History, *, dialect: str = "sqlite", revisions: Sequence[str] | None = None
) -> Classification:
    """Classify the revisions of a loaded history, in its order (base -> heads)."""
    name, sa_dialect = _dialect(dialect)
    wanted = set(revisions) if revisions is not None else None
    if wanted is not None:
        missing = sorted(wanted - {info.revision for info in history.revisions})
        if missing:
            raise GonogoError(f"revision {', '.join(missing)} is not in the migration history")
    results: list[RevisionClass] = []
    with history.importable():
        for info in history.revisions:
            if wanted is None or info.revision in wanted:
                results.append(_classify(info, name, sa_dialect))
    return Classification(heads=list(history.heads), revisions=results, dialect=name)


def classify_revision(info: RevisionInfo, *, dialect: str = "sqlite") -> RevisionClass:
    name, sa_dialect = _dialect(dialect)
    return _classify(info, name, sa_dialect)


# -- recording -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    table: str
    schema: str | None
    copy_from: Any


@dataclass
class _Recorded:
    op: Any
    batch: _Batch | None = None
    via_bind: bool = False


@dataclass
class _Run:
    ops: list[_Recorded]
    sql: str
    missing: bool = False
    error: BaseException | None = None
    notes: list[str] = field(default_factory=list)


def _dialect(name: str) -> tuple[str, Any]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    canonical = DIALECT_ALIASES.get(name.lower(), name.lower())
    try:
        return canonical, make_url(f"{canonical}://").get_dialect()()
    except (NoSuchModuleError, ArgumentError, ImportError):
        raise GonogoError(f"unknown database dialect {name!r} (use sqlite or postgresql)") from None


class _Recorder:
    """A real alembic ``Operations`` in offline mode whose ``invoke`` records each op."""

    def __init__(self, dialect: Any) -> None:
        from alembic.operations import Operations
        from alembic.runtime.migration import MigrationContext

        self.buffer = io.StringIO()
        self.context = MigrationContext.configure(
            dialect=dialect,
            opts={"as_sql": True, "output_buffer": self.buffer, "literal_binds": True},
        )
        self.operations = Operations(self.context)
        self.recorded: list[_Recorded] = []
        self.notes: list[str] = []
        self._real_invoke = self.operations.invoke
        self._real_batch = self.operations.batch_alter_table
        # Instance attributes shadow the class methods; _install_proxy() copies these bound
        # callables into alembic.op, so the revision's op.* calls land here.
        self.operations.invoke = self._invoke  # type: ignore[method-assign]
        self.operations.batch_alter_table = self._batch_alter_table  # type: ignore[method-assign]
        self.operations.get_bind = self._get_bind  # type: ignore[method-assign,assignment]

    def run(self, fn: Callable[[], Any]) -> BaseException | None:
        self.operations._install_proxy()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
        except (Exception, SystemExit) as exc:
            return exc
        finally:
            self.operations._remove_proxy()
        return None

    # what alembic.op calls

    def _invoke(self, operation: Any) -> Any:
        self.recorded.append(_Recorded(operation))
        return self._render(self._real_invoke, operation)

    def _render(self, invoke: Callable[[Any], Any], operation: Any) -> Any:
        try:
            return invoke(operation)
        except Exception as exc:
            msg = " ".join(str(exc).split())[:200]
            note = (
                f"{type(operation).__name__}: no offline SQL for "
                f"{self.context.dialect.name} ({type(exc).__name__}: {msg})"
            )
            self.notes.append(note)
            self.buffer.write(f"-- gonogo: {note}\n\n")
            to_table = getattr(operation, "to_table", None)
            if callable(to_table):  # op.create_table() returns the Table
                try:
                    return to_table()
                except Exception:
                    return None
            return None

    @contextmanager
    def _batch_alter_table(self, table_name: str, *args: Any, **kw: Any) -> Iterator[Any]:
        schema = kw.get("schema", args[0] if args else None)
        copy_from = kw.get("copy_from", args[3] if len(args) > 3 else None)
        batch = _Batch(table_name, schema, copy_from)
        manager: AbstractContextManager[Any] = self._real_batch(table_name, *args, **kw)
        batch_op = manager.__enter__()
        real_invoke = batch_op.invoke

        def invoke(operation: Any) -> Any:
            self.recorded.append(_Recorded(operation, batch=batch))
            return self._render(real_invoke, operation)

        batch_op.invoke = invoke
        yield batch_op  # an exception in the block propagates; nothing is flushed
        try:
            manager.__exit__(None, None, None)
        except Exception as exc:
            # Batch mode that recreates the table (SQLite) must reflect it, which offline
            # needs copy_from=. Render the same operations as plain ALTER statements.
            dialect = self.context.dialect.name
            self.notes.append(
                f"batch_alter_table({table_name}) recreates the table on {dialect}; without "
                f"copy_from= its exact SQL needs a live database ({type(exc).__name__}), "
                "so it is shown as plain ALTER statements"
            )
            self.buffer.write(
                f"-- gonogo: batch_alter_table({table_name}) recreates the table on {dialect};"
                " without copy_from= its exact SQL needs a live database. Plain ALTERs:\n\n"
            )
            for opname, op_args, op_kw in list(getattr(batch_op.impl, "batch", [])):
                try:
                    getattr(self.context.impl, opname)(*op_args, **op_kw)
                except Exception as again:
                    self.buffer.write(
                        f"-- gonogo: no plain SQL for {opname} on {dialect} "
                        f"({type(again).__name__})\n\n"
                    )

    def _get_bind(self) -> _RecordingBind:
        return _RecordingBind(self)


class _EmptyResult:
    """What ``op.get_bind().execute()`` returns offline: no rows."""

    rowcount = 0

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> None:
        return None

    def first(self) -> None:
        return None

    def scalar(self) -> None:
        return None

    def scalar_one_or_none(self) -> None:
        return None

    def all(self) -> list[Any]:
        return []

    def scalars(self) -> _EmptyResult:
        return self

    def mappings(self) -> _EmptyResult:
        return self


class _RecordingBind:
    """``op.get_bind()`` during analysis: statements executed on it are recorded as
    ``ExecuteSQLOp`` (so ``conn.execute(sa.text("DELETE ..."))`` counts), reads return no
    rows."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder
        self.dialect = recorder.context.dialect

    def execute(self, statement: Any, *args: Any, **kw: Any) -> _EmptyResult:
        from alembic.operations.ops import ExecuteSQLOp

        operation = ExecuteSQLOp(statement)
        self._recorder.recorded.append(_Recorded(operation, via_bind=True))
        self._recorder._render(self._recorder._real_invoke, operation)
        return _EmptyResult()

    def exec_driver_sql(self, statement: str, *args: Any, **kw: Any) -> _EmptyResult:
        return self.execute(statement)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recorder.context.bind, name)


def _run(info: RevisionInfo, name: str, dialect: Any) -> _Run:
    fn = getattr(info.module, name, None) if info.module is not None else None
    if not callable(fn):
        return _Run(ops=[], sql="", missing=True)
    recorder = _Recorder(dialect)
    error = recorder.run(fn)
    return _Run(
        ops=recorder.recorded, sql=recorder.buffer.getvalue(), error=error, notes=recorder.notes
    )


# -- deciding ------------------------------------------------------------------------------


class _Analysis:
    """Descriptions and SQL findings of recorded ops, computed once per op."""

    def __init__(self, dialect_name: str, dialect: Any) -> None:
        self.dialect_name = dialect_name
        self.dialect = dialect
        self._sql: dict[int, list[SqlFinding]] = {}

    def sql_findings(self, rec: _Recorded) -> list[SqlFinding]:
        key = id(rec.op)
        if key not in self._sql:
            self._sql[key] = _execute_findings(rec.op, self.dialect_name, self.dialect)
        return self._sql[key]

    def changes_schema(self, rec: _Recorded) -> bool:
        kind = type(rec.op).__name__
        if kind == "BulkInsertOp":
            return False
        if kind == "ExecuteSQLOp":
            return any(f.changes_schema for f in self.sql_findings(rec))
        return True

    def describe(self, rec: _Recorded) -> str:
        try:
            text = _describe(rec.op, self.dialect)
        except Exception:
            text = type(rec.op).__name__
        if rec.batch is not None:
            text += " (batch)"
        if rec.via_bind:
            text = text.replace("execute ", "execute via get_bind() ", 1)
        return text


def _classify(info: RevisionInfo, dialect_name: str, dialect: Any) -> RevisionClass:
    up = _run(info, "upgrade", dialect)
    down = _run(info, "downgrade", dialect)
    an = _Analysis(dialect_name, dialect)
    findings: list[Finding] = []

    if up.missing:
        findings.append(
            Finding(
                IRREVERSIBLE, "upgrade() is missing from the revision file", "upgrade()", "upgrade"
            )
        )
    elif up.error is not None:
        findings.append(
            Finding(
                IRREVERSIBLE,
                f"upgrade() raises {_exc_line(up.error)} when run offline; its rollback class "
                "cannot be established, so it is treated as irreversible",
                f"upgrade() raises {type(up.error).__name__}",
                "upgrade",
            )
        )

    if down.missing:
        findings.append(
            Finding(
                IRREVERSIBLE,
                "downgrade() is missing: alembic cannot downgrade past this revision",
                "downgrade() missing",
                "downgrade",
            )
        )
    elif down.error is not None:
        findings.append(
            Finding(
                IRREVERSIBLE,
                f"downgrade() raises {_exc_line(down.error)}: alembic cannot downgrade past "
                "this revision",
                f"downgrade() raises {type(down.error).__name__}",
                "downgrade",
            )
        )
    else:
        schema_ops = [rec for rec in up.ops if an.changes_schema(rec)]
        if schema_ops and not any(an.changes_schema(rec) for rec in down.ops):
            first = an.describe(schema_ops[0])
            more = f" and {len(schema_ops) - 1} more" if len(schema_ops) > 1 else ""
            what = "is empty" if not down.ops else "changes no schema"
            findings.append(
                Finding(
                    IRREVERSIBLE,
                    f"downgrade() {what} but the upgrade changes the schema ({first}{more}); "
                    "a downgrade would leave the change in place",
                    first,
                    "upgrade",
                )
            )

    added_columns = {
        _key(rec.op.schema, rec.op.table_name, rec.op.column.name)
        for rec in up.ops
        if type(rec.op).__name__ == "AddColumnOp"
    }
    created_tables = {
        _key(rec.op.schema, rec.op.table_name)
        for rec in up.ops
        if type(rec.op).__name__ == "CreateTableOp"
    }
    for rec in up.ops:
        for reason in _data_loss(rec, "upgrade", an, set(), set()):
            findings.append(Finding(LOSSY, reason, an.describe(rec), "upgrade"))
    for rec in down.ops:
        for reason in _data_loss(rec, "downgrade", an, added_columns, created_tables):
            findings.append(Finding(LOSSY, reason, an.describe(rec), "downgrade"))

    klass: Klass = REVERSIBLE
    reason = ""
    cause: str | None = None
    if findings:
        top = max(findings, key=lambda f: _SEVERITY[f.klass])  # first of the most severe
        klass, reason, cause = top.klass, top.reason, top.cause
    elif not up.ops and not down.ops:
        reason = "no operations in either direction (an empty or merge revision)"
    else:
        reason = (
            f"downgrade() runs and neither direction drops, narrows or deletes data "
            f"({len(up.ops)} operation{'s' if len(up.ops) != 1 else ''} up, "
            f"{len(down.ops)} down)"
        )

    return RevisionClass(
        revision=info.revision,
        down_revision=info.down_revision,
        klass=klass,
        reason=reason,
        operations=[an.describe(rec) for rec in up.ops],
        cause=cause,
        downgrade_operations=[an.describe(rec) for rec in down.ops],
        findings=findings,
        upgrade_sql=up.sql,
        downgrade_sql=down.sql,
        notes=[f"upgrade: {n}" for n in up.notes] + [f"downgrade: {n}" for n in down.notes],
        path=str(info.path),
        doc=info.doc,
    )


def _key(schema: str | None, table: str, column: str | None = None) -> tuple[str, ...]:
    parts = (schema or "", str(table))
    return (*parts, str(column)) if column is not None else parts


def _data_loss(
    rec: _Recorded,
    direction: Literal["upgrade", "downgrade"],
    an: _Analysis,
    added_columns: set[tuple[str, ...]],
    created_tables: set[tuple[str, ...]],
) -> list[str]:
    """Why running ``rec`` destroys data ([] if it does not)."""
    op = rec.op
    kind = type(op).__name__
    if kind == "DropColumnOp":
        name = _qual(op.schema, op.table_name, op.column_name)
        if _key(op.schema, op.table_name, op.column_name) in added_columns:
            return [
                f"downgrade drops column {name} that the upgrade added; "
                "data written to it since would be lost"
            ]
        return [f"{direction} drops column {name}; the data in it is lost"]
    if kind == "DropTableOp":
        name = _qual(op.schema, op.table_name)
        if _key(op.schema, op.table_name) in created_tables:
            return [
                f"downgrade drops table {name} that the upgrade created; "
                "rows written to it since would be lost"
            ]
        return [f"{direction} drops table {name} and every row in it"]
    if kind == "AlterColumnOp" and op.modify_type is not None:
        name = _qual(op.schema, op.table_name, op.column_name)
        old = op.existing_type
        if old is None and rec.batch is not None:
            old = _copy_from_type(rec.batch, op.column_name)
        why = _type_change(old, op.modify_type, an.dialect)
        if why is not None:
            return [f"{direction} changes the type of {name}: {why}"]
        return []
    if kind == "ExecuteSQLOp":
        return [
            f"{direction} runs SQL that destroys data: {f.description}"
            for f in an.sql_findings(rec)
            if f.destructive
        ]
    return []


# -- SQL of op.execute ---------------------------------------------------------------------


def _sql_text(sqltext: Any, dialect: Any) -> str:
    if isinstance(sqltext, str):
        return sqltext
    text = getattr(sqltext, "text", None)  # sa.text()
    if isinstance(text, str):
        return text
    try:
        return str(sqltext.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:
        try:
            return str(sqltext.compile(dialect=dialect))
        except Exception:
            return str(sqltext)


def _execute_findings(op: Any, dialect_name: str, dialect: Any) -> list[SqlFinding]:
    from sqlalchemy.sql import dml

    sqltext = op.sqltext
    # Core DML objects are judged as objects; only their table name is rendered.
    if isinstance(sqltext, dml.Delete | dml.Update):
        verb = "DELETE FROM" if isinstance(sqltext, dml.Delete) else "UPDATE"
        table = getattr(sqltext.table, "name", str(sqltext.table))
        kind = "delete" if verb.startswith("DELETE") else "update"
        return [SqlFinding(kind, f"{verb} {table}", True, False, table)]
    return analyse_sql(_sql_text(sqltext, dialect), dialect_name)


# -- types ---------------------------------------------------------------------------------

_INT_BYTES = {"TINYINT": 1, "SMALLINT": 2, "MEDIUMINT": 3}
_INT_DIGITS = {1: 3, 2: 5, 3: 8, 4: 10, 8: 19}
#: how long a bounded string must be to hold any value of a non-string type
_TEXT_WIDTH = {
    "int": 20,
    "bool": 5,
    "uuid": 36,
    "date": 10,
    "time": 21,
    "datetime": 32,
    "numeric": 42,
    "float": 32,
}


def _shape(t: Any) -> tuple[str, Any]:
    import sqlalchemy.types as sat

    if isinstance(t, sat.Enum):
        return "enum", (tuple(t.enums), t.length)
    if isinstance(t, sat.Text):
        return "text", None
    if isinstance(t, sat.String):
        return "string", t.length
    if isinstance(t, sat.Boolean):
        return "bool", None
    if isinstance(t, sat.Integer):
        name = type(t).__name__.upper()
        if isinstance(t, sat.BigInteger):
            return "int", 8
        if isinstance(t, sat.SmallInteger):
            return "int", 2
        return "int", _INT_BYTES.get(name, 4)
    if isinstance(t, sat.Float):
        return "float", t.precision
    if isinstance(t, sat.Numeric):
        return "numeric", (t.precision, t.scale)
    if isinstance(t, sat.DateTime):
        return "datetime", bool(t.timezone)
    if isinstance(t, sat.Date):
        return "date", None
    if isinstance(t, sat.Time):
        return "time", bool(t.timezone)
    if isinstance(t, sat.Interval):
        return "interval", None
    if isinstance(t, sat.LargeBinary):
        return "binary", t.length
    if isinstance(t, sat.JSON):
        return "json", None
    if isinstance(t, sat.Uuid):
        return "uuid", None
    return "other", type(t).__name__


def _type_change(old: Any, new: Any, dialect: Any) -> str | None:
    """Why changing a column from ``old`` to ``new`` can lose data; None for a widening."""
    from sqlalchemy.sql.type_api import to_instance

    new_t = to_instance(new)
    new_s = _type_name(new_t, dialect)
    if old is None:
        return (
            f"type changed to {new_s} without existing_type, so a narrowing cannot be ruled "
            "out (give existing_type=)"
        )
    old_t = to_instance(old)
    old_s = _type_name(old_t, dialect)
    (ok, op), (nk, np) = _shape(old_t), _shape(new_t)
    change = f"{old_s} -> {new_s}"
    if (ok, op) == (nk, np) and (ok != "other" or old_s == new_s):
        return None
    narrower = f"{change} narrows the type; values that do not fit are truncated or rejected"
    if ok == nk:
        if ok == "string" or ok == "binary":
            return narrower if np is not None and (op is None or np < op) else None
        if ok in ("text", "json", "interval", "uuid", "bool", "date"):
            return None
        if ok == "int":
            return narrower if np < op else None
        if ok == "float":
            return narrower if np is not None and (op is None or np < op) else None
        if ok == "numeric":
            (op_, os_), (np_, ns_) = op, np
            if (np_ is not None and (op_ is None or np_ < op_)) or (
                ns_ is not None and (os_ is None or ns_ < os_)
            ):
                return f"{change} lowers precision or scale; values are rounded or rejected"
            return None
        if ok in ("datetime", "time"):
            return f"{change} drops the time zone" if op and not np else None
        if ok == "enum":
            removed = sorted(set(op[0]) - set(np[0]))
            return f"{change} removes enum value(s) {', '.join(removed)}" if removed else None
        return f"{change} is not a known widening; data may be lost"
    if nk == "text" and ok not in ("binary", "other"):
        return None
    if nk == "string":
        if ok == "text":
            return narrower if np is not None else None
        if ok == "enum":
            longest = max((len(v) for v in op[0]), default=0)
            return narrower if np is not None and np < longest else None
        need = _TEXT_WIDTH.get(ok)
        if need is not None and (np is None or np >= need):
            return None
        return narrower
    if (ok, nk) == ("bool", "int"):
        return None
    if (ok, nk) == ("int", "numeric"):
        precision, scale = np
        if precision is None or precision - (scale or 0) >= _INT_DIGITS.get(op, 19):
            return None
        return narrower
    if (ok, nk) == ("int", "float"):
        return None if op <= 4 else f"{change} loses precision above 2**53"
    if (ok, nk) == ("date", "datetime"):
        return None
    if (ok, nk) == ("datetime", "date"):
        return f"{change} drops the time of day"
    if nk == "int" and ok in ("numeric", "float"):
        return f"{change} drops the fractional part"
    return f"{change} is not a known widening; data may be lost or the change may fail"


def _type_name(t: Any, dialect: Any) -> str:
    try:
        return str(t.compile(dialect=dialect))
    except Exception:
        return repr(t)


def _copy_from_type(batch: _Batch, column: str) -> Any:
    table = batch.copy_from
    if table is None:
        return None
    col = getattr(table, "c", {}).get(column) if hasattr(table, "c") else None
    return getattr(col, "type", None)


# -- descriptions --------------------------------------------------------------------------


def _qual(schema: str | None, table: Any, column: Any = None) -> str:
    name = f"{schema}.{table}" if schema else str(table)
    return f"{name}.{column}" if column is not None else name


def _describe(op: Any, dialect: Any) -> str:
    kind = type(op).__name__
    schema = getattr(op, "schema", None)
    if kind == "AddColumnOp":
        col = op.column
        text = (
            f"add_column {_qual(schema, op.table_name, col.name)} {_type_name(col.type, dialect)}"
        )
        if col.nullable is False:
            text += " NOT NULL"
        if col.server_default is not None:
            text += " with server default"
        return text
    if kind == "DropColumnOp":
        return f"drop_column {_qual(schema, op.table_name, op.column_name)}"
    if kind == "CreateTableOp":
        names = [c.name for c in op.columns if getattr(c, "name", None) and hasattr(c, "type")]
        return f"create_table {_qual(schema, op.table_name)} ({', '.join(names)})"
    if kind == "DropTableOp":
        return f"drop_table {_qual(schema, op.table_name)}"
    if kind == "RenameTableOp":
        return f"rename_table {_qual(schema, op.table_name)} -> {op.new_table_name}"
    if kind == "AlterColumnOp":
        return _describe_alter(op, dialect)
    if kind == "CreateIndexOp":
        cols = ", ".join(str(c) for c in op.columns)
        unique = "unique " if op.unique else ""
        return f"create_index {unique}{op.index_name} on {_qual(schema, op.table_name)} ({cols})"
    if kind == "DropIndexOp":
        where = f" on {_qual(schema, op.table_name)}" if op.table_name else ""
        return f"drop_index {op.index_name}{where}"
    if kind == "CreateForeignKeyOp":
        return (
            f"create_foreign_key {op.constraint_name} {op.source_table}"
            f"({', '.join(op.local_cols)}) -> {op.referent_table}({', '.join(op.remote_cols)})"
        )
    if kind in ("CreateUniqueConstraintOp", "CreatePrimaryKeyOp"):
        verb = (
            "create_unique_constraint" if kind.startswith("CreateUnique") else "create_primary_key"
        )
        return (
            f"{verb} {op.constraint_name} on {_qual(schema, op.table_name)} "
            f"({', '.join(str(c) for c in op.columns)})"
        )
    if kind == "CreateCheckConstraintOp":
        return f"create_check_constraint {op.constraint_name} on {_qual(schema, op.table_name)}"
    if kind == "DropConstraintOp":
        ctype = f" ({op.constraint_type})" if op.constraint_type else ""
        return f"drop_constraint {op.constraint_name}{ctype} on {_qual(schema, op.table_name)}"
    if kind == "CreateTableCommentOp":
        return f"create_table_comment {_qual(schema, op.table_name)}"
    if kind == "DropTableCommentOp":
        return f"drop_table_comment {_qual(schema, op.table_name)}"
    if kind == "BulkInsertOp":
        rows = len(op.rows)
        table = getattr(op.table, "name", op.table)
        return f"bulk_insert {table} ({rows} row{'s' if rows != 1 else ''})"
    if kind == "ExecuteSQLOp":
        text = " ".join(_sql_text(op.sqltext, dialect).split())
        return f"execute {text[:77] + '...' if len(text) > 80 else text}"
    return kind


def _describe_alter(op: Any, dialect: Any) -> str:
    parts: list[str] = []
    if op.modify_type is not None:
        old = _type_name(op.existing_type, dialect) if op.existing_type is not None else "?"
        parts.append(f"type {old} -> {_type_name(op.modify_type, dialect)}")
    if op.modify_nullable is not None:
        parts.append("nullable" if op.modify_nullable else "NOT NULL")
    if op.modify_server_default is not False:
        parts.append(
            "drop server default" if op.modify_server_default is None else "set server default"
        )
    if op.modify_name is not None:
        parts.append(f"rename -> {op.modify_name}")
    if op.modify_comment is not False:
        parts.append("comment")
    what = ", ".join(parts) or "no change"
    return f"alter_column {_qual(op.schema, op.table_name, op.column_name)} {what}"


def _exc_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "IRREVERSIBLE",
    "LOSSY",
    "REVERSIBLE",
    "Classification",
    "Finding",
    "Klass",
    "RevisionClass",
    "classify_history",
    "classify_project",
    "classify_revision",
]
