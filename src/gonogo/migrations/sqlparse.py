"""What raw SQL in a migration does to data, parsed with sqlglot (not matched with regexes).

`analyse_sql(sql, dialect)` splits a string into statements and returns one `SqlFinding` per
thing that matters for rollback:

- **destructive** (data is lost if it runs): ``DELETE``, ``UPDATE``, ``TRUNCATE``, ``MERGE``,
  ``DROP TABLE/SCHEMA/DATABASE``, ``ALTER TABLE ... DROP COLUMN``, ``ALTER ... TYPE`` (the old
  type is unknown, so narrowing cannot be ruled out), upserts (``ON CONFLICT DO UPDATE``,
  ``INSERT OR REPLACE``, ``REPLACE INTO``), ``CREATE OR REPLACE TABLE``, also when nested
  (``WITH d AS (DELETE ...) SELECT``);
- **opaque** SQL whose effect cannot be seen (``DO $$...$$`` blocks, ``CALL``, ``EXECUTE``) is
  reported as destructive too, so a person reviews it;
- everything else is returned as a non-destructive finding, with ``changes_schema`` set for
  DDL (``CREATE``, ``ALTER``, ``DROP INDEX``...), so callers can tell a data-only statement
  from a schema change.

SQL sqlglot cannot parse falls back to sqlglot's tokenizer: a top-level ``DELETE``/``DROP``/
``TRUNCATE``/``UPDATE``/``MERGE``/``REPLACE`` keyword, or an opaque command, is destructive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

#: SQLAlchemy dialect name -> sqlglot dialect name.
_SQLGLOT_DIALECTS = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
}

_DESTRUCTIVE_WORDS = {
    "DELETE": "delete",
    "UPDATE": "update",
    "TRUNCATE": "truncate",
    "DROP": "drop",
    "MERGE": "merge",
    "REPLACE": "replace",
}
_OPAQUE_WORDS = {"DO", "CALL", "EXEC", "EXECUTE"}
_SCHEMA_WORDS = {"CREATE", "ALTER", "DROP", "COMMENT", "RENAME"}
_DATA_DROPS = {"TABLE", "SCHEMA", "DATABASE"}
_NON_DATA_ALTER_DROPS = {"CONSTRAINT", "INDEX", "KEY", "PRIMARY", "FOREIGN", "DEFAULT", "NOT"}


@dataclass(frozen=True)
class SqlFinding:
    """One effect of a statement. ``kind`` is e.g. delete, update, truncate, drop_table,
    drop_column, alter_type, upsert, replace, merge, opaque, insert, create, alter, drop_index,
    select, set, other."""

    kind: str
    description: str
    destructive: bool
    changes_schema: bool
    target: str | None = None


def sqlglot_dialect(dialect: str | None) -> str | None:
    if dialect is None:
        return None
    return _SQLGLOT_DIALECTS.get(dialect.lower())


def analyse_sql(sql: str, dialect: str | None = "sqlite") -> list[SqlFinding]:
    """Every statement in ``sql`` and what it does (see the module docstring)."""
    if not sql.strip():
        return []
    read = sqlglot_dialect(dialect)
    with _quiet_sqlglot():
        trees: list[exp.Expr | None] | None = None
        for candidate in dict.fromkeys([read, None]):
            try:
                trees = list(sqlglot.parse(sql, read=candidate))
                break
            except SqlglotError:
                continue
            except Exception:  # noqa: S112 - sqlglot can raise odd errors on odd input
                continue
        if trees is None:
            return _token_fallback(sql, read)
        findings: list[SqlFinding] = []
        for tree in trees:
            if tree is not None:
                findings.extend(_statement(tree, read))
        return findings


def destructive(sql: str, dialect: str | None = "sqlite") -> list[SqlFinding]:
    return [f for f in analyse_sql(sql, dialect) if f.destructive]


# -- statements ----------------------------------------------------------------------------


def _statement(tree: exp.Expr, read: str | None) -> list[SqlFinding]:
    bad: list[SqlFinding] = []
    for node in tree.walk():
        finding = _destructive_node(node, read)
        if finding is not None:
            bad.append(finding)
    if bad:
        return bad
    return [_harmless(tree, read)]


def _sql(node: exp.Expr | None, read: str | None) -> str:
    if node is None:
        return "?"
    try:
        return node.sql(dialect=read)
    except Exception:
        return str(node)


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _destructive_node(node: exp.Expr, read: str | None) -> SqlFinding | None:
    if isinstance(node, exp.Delete):
        table = _sql(node.this, read)
        scope = "" if node.args.get("where") is not None else " (every row)"
        label = f"DELETE FROM {table}{scope}"  # noqa: S608 - a description, never executed
        return SqlFinding("delete", label, True, False, table)
    if isinstance(node, exp.Update):
        table = _sql(node.this, read)
        cols = [_sql(e.this, read) for e in node.expressions if isinstance(e, exp.EQ)]
        what = f" SET {', '.join(cols)}" if cols else ""
        return SqlFinding("update", f"UPDATE {table}{what}", True, False, table)
    if isinstance(node, exp.TruncateTable):
        tables = ", ".join(_sql(e, read) for e in node.expressions)
        return SqlFinding("truncate", f"TRUNCATE {tables}", True, False, tables)
    if isinstance(node, exp.Merge):
        table = _sql(node.this, read)
        return SqlFinding("merge", f"MERGE INTO {table}", True, False, table)
    if isinstance(node, exp.Drop):
        return _drop(node, read)
    if isinstance(node, exp.AlterColumn) and node.args.get("dtype") is not None:
        table = _alter_table(node, read)
        column = f"{table}.{_sql(node.this, read)}"
        new = _sql(node.args.get("dtype"), read)
        return SqlFinding(
            "alter_type",
            f"ALTER TABLE {table} ALTER COLUMN {_sql(node.this, read)} TYPE {new}"
            " (old type unknown; narrowing cannot be ruled out)",
            True,
            True,
            column,
        )
    if isinstance(node, exp.Insert):
        table = _sql(node.this.this if isinstance(node.this, exp.Schema) else node.this, read)
        conflict = node.args.get("conflict")
        action = conflict.args.get("action") if conflict is not None else None
        if conflict is not None and conflict.args.get("duplicate"):
            return SqlFinding(
                "upsert", f"INSERT INTO {table} ... ON DUPLICATE KEY UPDATE", True, False, table
            )
        if action is not None and "UPDATE" in _sql(action, read).upper():
            return SqlFinding(
                "upsert", f"INSERT INTO {table} ... ON CONFLICT DO UPDATE", True, False, table
            )
        if str(node.args.get("alternative") or "").upper() == "REPLACE":
            return SqlFinding("replace", f"INSERT OR REPLACE INTO {table}", True, False, table)
        if node.args.get("overwrite"):
            return SqlFinding("replace", f"INSERT OVERWRITE {table}", True, False, table)
        return None
    if isinstance(node, exp.Create) and node.args.get("replace"):
        kind = str(node.args.get("kind") or "").upper()
        if kind == "TABLE":
            table = _sql(node.this.this if isinstance(node.this, exp.Schema) else node.this, read)
            return SqlFinding("drop_table", f"CREATE OR REPLACE TABLE {table}", True, True, table)
        return None
    if isinstance(node, exp.Command):
        return _command(node, read)
    return None


def _drop(node: exp.Drop, read: str | None) -> SqlFinding | None:
    kind = str(node.args.get("kind") or "").upper()
    targets = list(node.args.get("tables") or [])
    if not targets and node.this is not None:
        targets = [node.this]
    names = ", ".join(_sql(t, read) for t in targets) or "?"
    if kind == "COLUMN":
        table = _alter_table(node, read)
        cols = ", ".join(f"{table}.{_sql(t, read)}" for t in targets)
        return SqlFinding(
            "drop_column", f"ALTER TABLE {table} DROP COLUMN {names}", True, True, cols
        )
    if kind in _DATA_DROPS:
        if node.args.get("materialized"):
            return None
        return SqlFinding(f"drop_{kind.lower()}", f"DROP {kind} {names}", True, True, names)
    return None


def _alter_table(node: exp.Expr, read: str | None) -> str:
    parent = node.find_ancestor(exp.Alter)
    return _sql(parent.this, read) if parent is not None else "?"


def _command(node: exp.Command, read: str | None) -> SqlFinding | None:
    word = str(node.this or "").upper()
    expression = node.expression
    body = expression.this if isinstance(expression, exp.Literal) else expression
    rest = str(body if body is not None else "").split()
    text = _short(" ".join([word, *rest]))
    if node.find_ancestor(exp.Alter) is not None:
        # An ALTER TABLE action sqlglot only half understood (e.g. SQLite's "DROP body").
        if word == "DROP" and rest and rest[0].upper() not in _NON_DATA_ALTER_DROPS:
            table = _alter_table(node, read)
            column = rest[1] if rest[0].upper() == "COLUMN" and len(rest) > 1 else rest[0]
            return SqlFinding(
                "drop_column",
                f"ALTER TABLE {table} DROP COLUMN {column}",
                True,
                True,
                f"{table}.{column}",
            )
        return None
    if word in _DESTRUCTIVE_WORDS:
        kind = _DESTRUCTIVE_WORDS[word]
        if kind == "drop":
            what = rest[0].upper() if rest else ""
            if what not in _DATA_DROPS and not (len(rest) > 1 and rest[1].upper() == "TABLE"):
                return None  # DROP INDEX / VIEW / TRIGGER ... destroy no rows
            kind = f"drop_{what.lower()}" if what in _DATA_DROPS else "drop_table"
        return SqlFinding(kind, text, True, kind.startswith("drop"), None)
    if word in _OPAQUE_WORDS:
        return SqlFinding(
            "opaque", f"{text} (opaque SQL: its effect cannot be analysed)", True, True, None
        )
    return None


def _harmless(tree: exp.Expr, read: str | None) -> SqlFinding:
    text = _short(_sql(tree, read))
    if isinstance(tree, exp.Insert):
        return SqlFinding("insert", text, False, False)
    if isinstance(tree, exp.Create):
        return SqlFinding("create", text, False, True)
    if isinstance(tree, exp.Alter):
        return SqlFinding("alter", text, False, True)
    if isinstance(tree, exp.Drop):
        kind = str(tree.args.get("kind") or "").lower() or "object"
        return SqlFinding(f"drop_{kind}", text, False, True)
    if isinstance(tree, exp.Select | exp.Union):
        return SqlFinding("select", text, False, False)
    if isinstance(tree, exp.Set):
        return SqlFinding("set", text, False, False)
    if isinstance(tree, exp.Comment):
        return SqlFinding("comment", text, False, True)
    if isinstance(tree, exp.Command):
        word = str(tree.this or "").upper()
        return SqlFinding(word.lower() or "other", text, False, word in _SCHEMA_WORDS)
    return SqlFinding(type(tree).__name__.lower(), text, False, False)


def _token_fallback(sql: str, read: str | None) -> list[SqlFinding]:
    """sqlglot could not parse ``sql``: look at its keywords instead."""
    from sqlglot.dialects.dialect import Dialect

    text = _short(sql)
    try:
        tokens = Dialect.get_or_raise(read).tokenize(sql)
    except Exception:
        return [SqlFinding("unparsed", f"{text} (could not be parsed or tokenized)", True, True)]
    findings: list[SqlFinding] = []
    starts_statement = True
    for token in tokens:
        word = token.text.upper()
        first, starts_statement = starts_statement, token.token_type.name == "SEMICOLON"
        if first and word in _OPAQUE_WORDS:
            findings.append(
                SqlFinding(
                    "opaque", f"{text} (opaque SQL: its effect cannot be analysed)", True, True
                )
            )
        elif word in _DESTRUCTIVE_WORDS:
            findings.append(
                SqlFinding(
                    _DESTRUCTIVE_WORDS[word],
                    f"{word} in SQL that could not be parsed: {text}",
                    True,
                    word == "DROP",
                )
            )
    if findings:
        return findings
    words = {t.text.upper() for t in tokens}
    return [SqlFinding("unparsed", f"{text} (not parsed)", False, bool(words & _SCHEMA_WORDS))]


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning for every statement it falls back to a Command for."""
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)
