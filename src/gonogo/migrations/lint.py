"""Lint each alembic revision for deploy hazards: squawk on PostgreSQL, gonogo's own checks.

`lint_revisions(classes, dialect=..., squawk=...)` takes the `RevisionClass` list that
`classify` produced (its offline upgrade SQL, its rollback findings) and returns a
`LintReport` with one list of `LintFinding` per revision.

Two sources of findings:

``squawk`` (PostgreSQL only)
    `squawk <https://squawkhq.com>`_ (the ``squawk-cli`` wheel, a Rust binary) reads each
    revision's upgrade SQL on stdin and reports lock and compatibility hazards:
    ``require-concurrent-index-creation``, ``adding-required-field`` (NOT NULL without a
    default), ``adding-not-nullable-field``, ``changing-column-type``, ``ban-drop-column``,
    ``constraint-missing-not-valid``... One squawk process per revision: it takes ~4 ms, so
    batching buys nothing, and a crash then names the revision it happened on. The SQL is
    wrapped in ``BEGIN;``/``COMMIT;`` because alembic runs PostgreSQL migrations inside a
    transaction; unlike ``--assume-in-transaction`` this also keeps the ``COMMIT;``/``BEGIN;``
    pair alembic's ``autocommit_block()`` renders balanced, so a ``CREATE INDEX
    CONCURRENTLY`` done the right way is not reported, and one done inside the transaction
    is (``ban-concurrent-index-creation-in-transaction``). squawk runs in ``cwd`` so that a
    project's ``.squawk.toml`` (excluded rules, ``pg_version``) applies.

``gonogo`` (hazards squawk cannot see; rule names in `RULES`)
    ``missing-downgrade``: classify found ``downgrade()`` missing, raising or empty while the
    upgrade changes the schema: alembic cannot roll back past the revision.
    ``upgrade-not-analysable``: ``upgrade()`` is missing or raises when run offline, so its
    SQL (what everything else here checks) is unknown.
    ``lossy-operation``: one per lossy classify finding (drop, narrowing, DELETE...), naming
    the operation and the direction.
    ``lock-timeout-not-set`` / ``statement-timeout-not-set`` (PostgreSQL): a statement that
    takes a lock blocking writes (or reads and writes) on an existing table runs with no
    ``SET [LOCAL] lock_timeout`` (``statement_timeout``) in force. The SQL is read with
    sqlglot, statement by statement, tracking ``SET``, ``SET LOCAL`` (forgotten at
    ``COMMIT``), ``RESET``, ``set_config()`` and a value of 0 (which disables the timeout).
    squawk's own ``require-lock-timeout``/``require-statement-timeout`` findings are dropped
    in favour of these, which also work without squawk and understand ``= 0``,
    ``set_config()`` and tables created earlier in the same revision.
    ``incomplete-sql`` (PostgreSQL): classify could not render an operation offline, so the
    SQL checks did not see it.

Levels. ``error`` fails the lint (``LintReport.ok`` is False): squawk's own ``Error`` level
(``syntax-error``: the SQL will not run), ``missing-downgrade`` and
``upgrade-not-analysable`` (no way back, or nothing known). Everything else is a
``warning``: squawk rates all its rules warnings, a lossy operation is for the approver to
accept knowingly (``migrate plan``/``approve`` show it), and a lock_timeout may be set where
per-revision SQL cannot show it (``env.py``, connection options, ``ALTER ROLE ... SET``).
``error_rules`` promotes rules to errors and ``ignore_rules`` drops them.

Timeouts are judged per revision: alembic may start from any pending revision, so each one
has to set its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import sqlglot
from sqlglot import Token, TokenType, exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError

from gonogo.errors import GonogoError
from gonogo.migrations.classify import (
    DIALECT_ALIASES,
    IRREVERSIBLE,
    LOSSY,
    Finding,
    Klass,
    RevisionClass,
    classify_project,
)

Level = Literal["error", "warning"]
Source = Literal["squawk", "gonogo"]
ERROR: Level = "error"
WARNING: Level = "warning"

#: gonogo's own rules: name -> (level, what it means)
RULES: dict[str, tuple[Level, str]] = {
    "missing-downgrade": (
        ERROR,
        "downgrade() is missing, raises or does nothing while the upgrade changes the schema",
    ),
    "upgrade-not-analysable": (
        ERROR,
        "upgrade() is missing or raises when run offline; its SQL cannot be checked",
    ),
    "lossy-operation": (WARNING, "an operation in either direction destroys data"),
    "lock-timeout-not-set": (
        WARNING,
        "a statement taking a write- or read-blocking lock runs with no lock_timeout (PostgreSQL)",
    ),
    "statement-timeout-not-set": (
        WARNING,
        "a statement taking a write- or read-blocking lock runs with no statement_timeout "
        "(PostgreSQL)",
    ),
    "incomplete-sql": (
        WARNING,
        "an operation had no offline SQL, so the SQL checks did not see it (PostgreSQL)",
    ),
}

#: squawk rules that gonogo's timeout checks replace (squawk >= 2.x names, and the older one)
_REPLACED_SQUAWK_RULES = frozenset(
    {"require-lock-timeout", "require-statement-timeout", "require-timeout-settings"}
)
DEFAULT_TIMEOUT = 60.0
_LEVEL_ORDER: dict[str, int] = {ERROR: 0, WARNING: 1}


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LintFinding:
    """One hazard in one revision. ``line`` is 1-based in the revision's upgrade SQL."""

    source: Source
    rule: str
    level: Level
    message: str
    help: str | None = None
    line: int | None = None
    statement: str | None = None
    direction: Literal["upgrade", "downgrade"] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rule": self.rule,
            "level": self.level,
            "message": self.message,
            "help": self.help,
            "direction": self.direction,
            "line": self.line,
            "statement": self.statement,
        }


@dataclass(frozen=True)
class RevisionLint:
    """The findings of one revision, errors first."""

    revision: str
    klass: Klass
    doc: str
    path: str
    findings: list[LintFinding]
    squawk_ran: bool = False

    def counts(self) -> dict[str, int]:
        return _count(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "class": self.klass,
            "doc": self.doc,
            "path": self.path,
            "squawk_ran": self.squawk_ran,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class LintReport:
    """Every linted revision (base -> heads order) and what squawk, if any, judged them."""

    dialect: str
    revisions: list[RevisionLint]
    squawk: str | None = None
    squawk_version: str | None = None
    pg_version: str | None = None

    @property
    def findings(self) -> list[LintFinding]:
        return [f for rl in self.revisions for f in rl.findings]

    def counts(self) -> dict[str, int]:
        return _count(self.findings)

    @property
    def ok(self) -> bool:
        """No error-level finding."""
        return self.counts()[ERROR] == 0

    def get(self, revision: str) -> RevisionLint:
        for rl in self.revisions:
            if rl.revision == revision:
                return rl
        raise GonogoError(f"revision {revision} was not linted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "ok": self.ok,
            "counts": self.counts(),
            "squawk": (
                {"path": self.squawk, "version": self.squawk_version, "pg_version": self.pg_version}
                if self.squawk is not None
                else None
            ),
            "revisions": [rl.to_dict() for rl in self.revisions],
        }

    def lines(self) -> list[str]:
        """Plain text: one block per revision, then a summary line."""
        out: list[str] = []
        for rl in self.revisions:
            out.append(f"{rl.revision}  {rl.klass}  {rl.doc}".rstrip())
            if not rl.findings:
                out.append("    nothing to report")
            for f in rl.findings:
                out.extend(_finding_lines(f))
        out.append(self.summary())
        return out

    def summary(self) -> str:
        counts = self.counts()
        n = len(self.revisions)
        errors, warnings = counts[ERROR], counts[WARNING]
        if self.squawk_version is not None:
            linter = f"squawk {self.squawk_version}"
        elif self.dialect == "postgresql":
            linter = "squawk not run"
        else:
            linter = f"squawk does not apply to {self.dialect}"
        return (
            f"{n} revision{'s' if n != 1 else ''} linted ({self.dialect}, {linter}): "
            f"{errors} error{'s' if errors != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''}"
        )


def _count(findings: Sequence[LintFinding]) -> dict[str, int]:
    counts: dict[str, int] = {ERROR: 0, WARNING: 0}
    for f in findings:
        counts[f.level] += 1
    return counts


def _finding_lines(f: LintFinding) -> list[str]:
    where = f", line {f.line}" if f.line is not None else ""
    lines = [f"    {f.level.upper():<7} {f.source} {f.rule}{where}: {f.message}"]
    if f.help:
        lines.append(f"            help: {f.help}")
    if f.statement:
        lines.append(f"            | {f.statement}")
    return lines


# -- entry points --------------------------------------------------------------------------


def lint_project(
    ini: Path | str,
    *,
    dialect: str = "sqlite",
    revisions: Sequence[str] | None = None,
    squawk: str | None = None,
    pg_version: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> LintReport:
    """Classify and lint the alembic project at ``ini`` (or only ``revisions``).

    For PostgreSQL, squawk is ``squawk`` or else `find_squawk()`; it runs in the ini's folder
    so that the project's ``.squawk.toml`` applies.
    """
    classification = classify_project(ini, dialect=dialect, revisions=revisions)
    name = classification.dialect
    if name == "postgresql" and squawk is None:
        squawk = find_squawk()
    return lint_revisions(
        classification.revisions,
        dialect=name,
        squawk=squawk,
        pg_version=pg_version,
        cwd=Path(ini).resolve().parent,
        timeout=timeout,
    )


def lint_revisions(
    classes: Sequence[RevisionClass],
    *,
    dialect: str,
    squawk: str | None,
    pg_version: str | None = None,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    error_rules: Collection[str] = (),
    ignore_rules: Collection[str] = (),
    preset_timeouts: Collection[str] = (),
) -> LintReport:
    """Lint classified revisions. squawk runs only for PostgreSQL, and only if given."""
    name = DIALECT_ALIASES.get(dialect.lower(), dialect.lower())
    postgres = name == "postgresql"
    runner = squawk if postgres else None
    if pg_version is not None:
        _check_pg_version(pg_version)
    version = squawk_version(runner, timeout=timeout) if runner is not None else None
    results: list[RevisionLint] = []
    for rc in classes:
        findings = classification_findings(rc)
        squawk_ran = False
        if postgres:
            findings += [_incomplete(note) for note in rc.notes if note.startswith("upgrade: ")]
            findings += timeout_findings(rc.upgrade_sql, preset_timeouts)
            if runner is not None and rc.upgrade_sql.strip():
                found = run_squawk(
                    rc.upgrade_sql,
                    squawk=runner,
                    pg_version=pg_version,
                    timeout=timeout,
                    cwd=cwd,
                    name=rc.revision,
                )
                findings += [f for f in found if f.rule not in _REPLACED_SQUAWK_RULES]
                squawk_ran = True
        findings = _adjust(findings, error_rules, ignore_rules)
        results.append(
            RevisionLint(rc.revision, rc.klass, rc.doc, rc.path, findings, squawk_ran=squawk_ran)
        )
    return LintReport(
        dialect=name,
        revisions=results,
        squawk=runner,
        squawk_version=version,
        pg_version=pg_version,
    )


def _adjust(
    findings: list[LintFinding], error_rules: Collection[str], ignore_rules: Collection[str]
) -> list[LintFinding]:
    kept = [
        replace(f, level=ERROR) if f.rule in error_rules else f
        for f in findings
        if f.rule not in ignore_rules
    ]
    return sorted(kept, key=lambda f: _LEVEL_ORDER[f.level])  # stable: errors first


# -- gonogo's checks from the classification -----------------------------------------------


def classification_findings(rc: RevisionClass) -> list[LintFinding]:
    """missing-downgrade, upgrade-not-analysable and lossy-operation, from classify."""
    out: list[LintFinding] = []
    for f in rc.findings:
        if f.klass == IRREVERSIBLE:
            out.append(_irreversible(f))
        elif f.klass == LOSSY:
            out.append(
                _gonogo(
                    "lossy-operation",
                    f.reason,
                    help="approve it knowingly (migrate plan shows it), or keep the data: "
                    "copy or rename before dropping, drop in a later release",
                    statement=f.cause,
                    direction=f.direction,
                )
            )
    return out


def _irreversible(f: Finding) -> LintFinding:
    # classify's IRREVERSIBLE causes are "upgrade()", "upgrade() raises X" (upgrade unknown),
    # "downgrade() missing", "downgrade() raises X", or the first schema op of an upgrade
    # whose downgrade is empty: all but the first two mean there is no way back.
    if f.cause == "upgrade()" or f.cause.startswith("upgrade() raises"):
        return _gonogo(
            "upgrade-not-analysable",
            f.reason,
            help="make upgrade() runnable offline (no database or app access), so that its "
            "SQL can be checked",
            direction="upgrade",
        )
    return _gonogo(
        "missing-downgrade",
        f.reason,
        help="write a downgrade() that undoes every step of the upgrade",
        direction="downgrade",
    )


def _incomplete(note: str) -> LintFinding:
    return _gonogo(
        "incomplete-sql",
        f"{note.removeprefix('upgrade: ')}; squawk and the timeout checks did not see it",
        help="review that operation's SQL by hand (`alembic upgrade --sql`)",
        direction="upgrade",
    )


def _gonogo(
    rule: str,
    message: str,
    *,
    help: str | None = None,
    line: int | None = None,
    statement: str | None = None,
    direction: Literal["upgrade", "downgrade"] | None = "upgrade",
) -> LintFinding:
    return LintFinding("gonogo", rule, RULES[rule][0], message, help, line, statement, direction)


# -- gonogo's timeout checks (PostgreSQL) --------------------------------------------------

_TIMEOUTS = ("lock_timeout", "statement_timeout")
_TIMEOUT_RULES = {
    "lock_timeout": "lock-timeout-not-set",
    "statement_timeout": "statement-timeout-not-set",
}
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
#: LOCK TABLE modes that block writes (all of them conflict with ROW EXCLUSIVE)
_BLOCKING_MODES = {SHARE, SHARE_ROW_EXCLUSIVE, "EXCLUSIVE", ACCESS_EXCLUSIVE}
_ALTERED = {"TABLE", "INDEX", "VIEW", "SEQUENCE", "MATERIALIZED"}
_DROPPED = {"TABLE", "INDEX", "VIEW", "SEQUENCE", "TRIGGER", "MATERIALIZED"}
_SKIP_WORDS = {
    "IF", "NOT", "EXISTS", "ONLY", "CONCURRENTLY", "TABLE", "INDEX", "VIEW", "MATERIALIZED",
    "SEQUENCE", "FULL", "VERBOSE", "UNIQUE", "TRIGGER", "ANALYZE", "(", ")",
}  # fmt: skip
_TXN_END = {"COMMIT", "ROLLBACK", "END", "ABORT"}


@dataclass(frozen=True)
class _Statement:
    text: str
    line: int  # 1-based
    words: tuple[str, ...]  # token texts, as written
    tree: exp.Expr | None  # None when sqlglot cannot parse it

    @property
    def upper(self) -> tuple[str, ...]:
        return tuple(w.upper() for w in self.words)


@dataclass(frozen=True)
class _Lock:
    mode: str
    targets: tuple[str, ...]

    @property
    def blocks(self) -> str:
        return "reads and writes" if self.mode == ACCESS_EXCLUSIVE else "writes"


@dataclass
class _Settings:
    """Which timeouts are in force: session-level (SET) and transaction-level (SET LOCAL)."""

    session: dict[str, bool] = field(default_factory=dict)
    local: dict[str, bool] = field(default_factory=dict)

    def active(self, name: str) -> bool:
        return self.local.get(name, self.session.get(name, False))

    def set(self, name: str, on: bool, *, local: bool) -> None:
        if local:
            self.local[name] = on
        else:
            self.session[name] = on
            self.local.pop(name, None)


def connection_timeouts(url: str, environ: Mapping[str, str]) -> set[str]:
    """The timeouts every statement already runs with because the connection sets them:
    libpq's ``options`` URL parameter or the ``PGOPTIONS`` variable (``-c lock_timeout=5s``)."""
    from urllib.parse import parse_qs, urlsplit

    sources = parse_qs(urlsplit(url).query).get("options", [])
    sources.append(environ.get("PGOPTIONS", ""))
    found: set[str] = set()
    for text in sources:
        for name, value in re.findall(r"(?:-c\s*|--)([a-z_]+)\s*=\s*(\S+)", text):
            number = re.match(r"[0-9]+(?:\.[0-9]+)?", value)
            if name in _TIMEOUTS and number is not None and float(number.group()) > 0:
                found.add(name)
    return found


def timeout_findings(sql: str, preset: Collection[str] = ()) -> list[LintFinding]:
    """lock-timeout-not-set / statement-timeout-not-set for one revision's upgrade SQL.

    ``preset``: timeouts the connection sets before any of it runs (`connection_timeouts`).
    """
    try:
        statements = _statements(sql)
    except SqlglotError as exc:
        return [
            _gonogo(
                "lock-timeout-not-set",
                f"the upgrade SQL could not be read ({_short(str(exc))}), so whether a "
                "lock_timeout is set before its locking statements is unknown",
            )
        ]
    settings = _Settings(session={name: True for name in preset})
    created: set[str] = set()
    unprotected: dict[str, list[tuple[_Statement, _Lock]]] = {name: [] for name in _TIMEOUTS}
    for st in statements:
        _apply_settings(st, settings)
        lock = _lock(st)
        if lock is not None and not _only_new(lock, created):
            for name in _TIMEOUTS:
                if not settings.active(name):
                    unprotected[name].append((st, lock))
        created |= _created(st)
    return [_timeout_finding(name, hits) for name, hits in unprotected.items() if hits]


def _timeout_finding(name: str, hits: list[tuple[_Statement, _Lock]]) -> LintFinding:
    st, lock = hits[0]
    what = ", ".join(lock.targets) or "its table"
    article = "an" if lock.mode[0] in "AEIOU" else "a"
    more = f" (and {len(hits) - 1} statement(s) after it)" if len(hits) > 1 else ""
    taken = f"takes {article} {lock.mode} lock on {what} (blocks {lock.blocks})"
    if name == "lock_timeout":
        message = (
            f"{taken} with no lock_timeout set before it{more}: while it waits for the lock "
            f"behind a long query or an open transaction, every query on {what} queues "
            "behind it"
        )
        help_ = (
            "start upgrade() with op.execute(\"SET LOCAL lock_timeout = '5s'\") so the "
            "migration fails fast instead of stalling traffic"
        )
    else:
        message = (
            f"{taken} with no statement_timeout set before it{more}: a slow rewrite or scan "
            f"keeps {what} blocked for as long as it runs"
        )
        help_ = "start upgrade() with op.execute(\"SET LOCAL statement_timeout = '5min'\")"
    return _gonogo(
        _TIMEOUT_RULES[name], message, help=help_, line=st.line, statement=_short(st.text)
    )


def _only_new(lock: _Lock, created: set[str]) -> bool:
    """Whether every object locked was created earlier in the revision (nobody else uses it)."""
    return bool(lock.targets) and all(_key(t) in created for t in lock.targets)


def _statements(sql: str) -> list[_Statement]:
    """Split on sqlglot's tokens (so ``;`` in strings and ``$$`` bodies is not a split)."""
    dialect = Dialect.get_or_raise("postgres")
    groups: list[list[Token]] = [[]]
    for token in dialect.tokenize(sql):
        if token.token_type == TokenType.SEMICOLON:
            groups.append([])
        else:
            groups[-1].append(token)
    out: list[_Statement] = []
    with _quiet_sqlglot():
        for group in groups:
            if not group:
                continue
            text = sql[group[0].start : group[-1].end + 1]
            words = _words(group, dialect)
            out.append(_Statement(text, group[0].line, words, _parse(text)))
    return out


def _words(group: list[Token], dialect: Dialect) -> tuple[str, ...]:
    """The statement's token texts. After a command keyword (LOCK, VACUUM, REINDEX...)
    sqlglot's tokenizer keeps the rest as one string token: tokenize that text again."""
    first, rest = group[0], group[1:]
    if first.token_type in dialect.tokenizer_class.COMMANDS and len(rest) == 1:
        try:
            return (first.text, *(t.text for t in dialect.tokenize(rest[0].text)))
        except SqlglotError:
            return (first.text, *rest[0].text.split())
    return tuple(t.text for t in group)


def _parse(text: str) -> exp.Expr | None:
    try:
        return sqlglot.parse_one(text, read="postgres")
    except Exception:  # sqlglot raises more than SqlglotError on odd input
        return None


def _apply_settings(st: _Statement, settings: _Settings) -> None:
    tree, upper = st.tree, st.upper
    if isinstance(tree, exp.Commit | exp.Rollback) or (upper and upper[0] in _TXN_END):
        settings.local.clear()  # SET LOCAL lasts until the transaction ends
        return
    if isinstance(tree, exp.Set):
        for item in tree.expressions:
            assignment = item.this if isinstance(item, exp.SetItem) else None
            if isinstance(assignment, exp.EQ) and _setting(assignment.this) in _TIMEOUTS:
                local = str(item.args.get("kind") or "").upper() == "LOCAL"
                settings.set(
                    _setting(assignment.this), _positive(assignment.expression), local=local
                )
        return
    if upper[:1] == ("RESET",) and len(upper) > 1:
        names = _TIMEOUTS if upper[1] == "ALL" else (upper[1].lower(),)
        for name in names:
            settings.set(name, False, local=False)
        return
    if tree is not None:
        for call in tree.find_all(exp.Anonymous):
            _apply_set_config(call, settings)


def _apply_set_config(call: exp.Anonymous, settings: _Settings) -> None:
    """``SELECT set_config('lock_timeout', '5s', is_local)``."""
    args = call.expressions
    if str(call.this).lower() != "set_config" or len(args) < 2:
        return
    name = args[0].name.lower() if isinstance(args[0], exp.Literal) else ""
    if name in _TIMEOUTS:
        local = len(args) > 2 and isinstance(args[2], exp.Boolean) and bool(args[2].this)
        settings.set(name, _positive(args[1]), local=local)


def _setting(node: exp.Expr) -> str:
    return node.name.lower() if isinstance(node, exp.Column | exp.Identifier | exp.Var) else ""


def _positive(value: exp.Expr | None) -> bool:
    """Whether a timeout value turns the timeout on (0 and DEFAULT leave it off)."""
    if not isinstance(value, exp.Literal):
        return False  # DEFAULT, or an expression: do not assume it is set
    text = value.name.strip().lower()
    number = re.match(r"[0-9.]+", text)
    if number is None:
        return False
    try:
        return float(number.group()) > 0
    except ValueError:
        return False


def _lock(st: _Statement) -> _Lock | None:
    """The blocking table lock ``st`` takes, if any (sqlglot's tree, else its tokens)."""
    tree = st.tree
    if isinstance(tree, exp.Alter):
        kind = str(tree.args.get("kind") or "TABLE").upper()
        return _Lock(ACCESS_EXCLUSIVE, (_name(tree.this),)) if kind in _ALTERED else None
    if isinstance(tree, exp.Create):
        return _create_lock(tree, st)
    if isinstance(tree, exp.Drop):
        return _drop_lock(tree)
    if isinstance(tree, exp.TruncateTable):
        return _Lock(ACCESS_EXCLUSIVE, tuple(_name(t) for t in tree.expressions))
    if tree is None or isinstance(tree, exp.Command):
        return _word_lock(st)
    return None


def _create_lock(tree: exp.Create, st: _Statement) -> _Lock | None:
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "INDEX":
        if tree.args.get("concurrently"):
            return None  # SHARE UPDATE EXCLUSIVE: reads and writes go on
        index = tree.this
        table = index.args.get("table") if isinstance(index, exp.Index) else None
        return _Lock(SHARE, (_name(table),) if table is not None else ())
    if kind == "TABLE":  # a foreign key locks the table it references
        refs = [r.this for r in tree.find_all(exp.Reference)]
        names = tuple(_name(r.this if isinstance(r, exp.Schema) else r) for r in refs)
        return _Lock(SHARE_ROW_EXCLUSIVE, names) if names else None
    if kind == "TRIGGER":
        return _Lock(SHARE_ROW_EXCLUSIVE, _name_after(st.words, "ON"))
    return None


def _drop_lock(tree: exp.Drop) -> _Lock | None:
    kind = str(tree.args.get("kind") or "").upper()
    if kind not in _DROPPED or (kind == "INDEX" and tree.args.get("concurrently")):
        return None
    if kind == "TRIGGER":
        on = tree.args.get("cluster")
        return _Lock(ACCESS_EXCLUSIVE, (_name(on.this),) if on is not None else ())
    return _Lock(ACCESS_EXCLUSIVE, tuple(_name(t) for t in tree.args.get("tables") or []))


def _word_lock(st: _Statement) -> _Lock | None:
    """Statements sqlglot keeps as a Command (or cannot parse), judged by their keywords."""
    w = st.upper
    if not w:
        return None
    first, second = w[0], w[1] if len(w) > 1 else ""
    if first == "ALTER" and second in _ALTERED:
        if second == "TABLE" and "VALIDATE" in w:
            return None  # VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE, the safe pattern
        return _Lock(ACCESS_EXCLUSIVE, _name_after(st.words, second))
    if first == "CREATE" and "INDEX" in w[1:3] and "CONCURRENTLY" not in w:
        return _Lock(SHARE, _name_after(st.words, "ON"))
    if first == "CREATE" and "TRIGGER" in w[1:5]:
        return _Lock(SHARE_ROW_EXCLUSIVE, _name_after(st.words, "ON"))
    if first == "DROP" and second in _DROPPED and "CONCURRENTLY" not in w:
        return _Lock(ACCESS_EXCLUSIVE, _name_after(st.words, second))
    if first in ("TRUNCATE", "CLUSTER") or (first == "VACUUM" and "FULL" in w):
        return _Lock(ACCESS_EXCLUSIVE, _name_after(st.words, first))
    if first in ("REINDEX", "REFRESH") and "CONCURRENTLY" not in w:
        return _Lock(ACCESS_EXCLUSIVE, _name_after(st.words, second))
    if first == "LOCK":
        return _lock_statement(st)
    return None


def _lock_statement(st: _Statement) -> _Lock | None:
    """``LOCK [TABLE] name [IN mode MODE]``: ACCESS EXCLUSIVE unless a weaker mode is named."""
    w = st.upper
    mode = ACCESS_EXCLUSIVE
    if "IN" in w and "MODE" in w:
        mode = " ".join(w[w.index("IN") + 1 : w.index("MODE")])
    if mode not in _BLOCKING_MODES:
        return None
    return _Lock(mode, _name_after(st.words, w[1] if len(w) > 1 else "LOCK"))


def _name_after(words: tuple[str, ...], keyword: str) -> tuple[str, ...]:
    """The (dotted) name following ``keyword``, skipping IF EXISTS, ONLY, CONCURRENTLY..."""
    upper = [w.upper() for w in words]
    if keyword.upper() not in upper:
        return ()
    i = upper.index(keyword.upper()) + 1
    while i < len(words) and upper[i] in _SKIP_WORDS:
        i += 1
    parts: list[str] = []
    while i < len(words):
        parts.append(words[i])
        if i + 2 < len(words) and words[i + 1] == ".":
            i += 2
            continue
        break
    return (".".join(parts),) if parts else ()


def _created(st: _Statement) -> set[str]:
    """Objects a statement creates; locks on them block nobody (no one else uses them yet)."""
    tree = st.tree
    if not isinstance(tree, exp.Create):
        return set()
    target = tree.this.this if isinstance(tree.this, exp.Schema | exp.Index) else tree.this
    return {_key(_name(target))} if target is not None else set()


def _name(node: exp.Expr | None) -> str:
    if isinstance(node, exp.Table):
        return ".".join(part for part in (node.db, node.name) if part)
    return node.name if node is not None else "?"


def _key(name: str) -> str:
    # Schema is ignored: within one revision, alembic names a table the same way each time.
    return name.rsplit(".", 1)[-1].strip('"').lower()


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


# -- squawk ---------------------------------------------------------------------------------


def find_squawk(environ: Mapping[str, str] | None = None, *, executable: str | None = None) -> str:
    """The squawk binary: next to the running Python (the venv's bin) first, then on PATH."""
    env = os.environ if environ is None else environ
    bin_dir = Path(executable or sys.executable).parent  # not resolved: a venv links python
    found = shutil.which("squawk", path=str(bin_dir)) or shutil.which(
        "squawk", path=env.get("PATH", os.defpath)
    )
    if found is None:
        raise GonogoError(
            f"squawk not found (looked in {bin_dir} and on PATH); it lints PostgreSQL "
            "migrations: pip install squawk-cli"
        )
    return found


def squawk_version(squawk: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """``squawk --version`` -> "2.70.0"."""
    proc = _run([squawk, "--version"], squawk=squawk, timeout=timeout, what="--version")
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) < 2:
        raise GonogoError(
            f"{squawk} --version failed (exit {proc.returncode}): {_first_line(proc)}"
        )
    return words[-1]


def squawk_argv(
    squawk: str, *, pg_version: str | None = None, stdin_name: str = "migration.sql"
) -> list[str]:
    """squawk reading SQL from stdin, reporting JSON.

    ``--no-assume-in-transaction``: `run_squawk` wraps the SQL in BEGIN/COMMIT itself, so a
    ``.squawk.toml`` that assumes a transaction must not add a second one.
    """
    argv = [
        squawk,
        "--reporter",
        "json",
        "--no-assume-in-transaction",
        "--stdin-filepath",
        stdin_name,
    ]
    if pg_version is not None:
        argv.append(f"--pg-version={_check_pg_version(pg_version)}")
    return argv


def run_squawk(
    sql: str,
    *,
    squawk: str,
    pg_version: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cwd: Path | None = None,
    name: str = "migration",
    in_transaction: bool = True,
) -> list[LintFinding]:
    """squawk's findings on ``sql`` (one revision's upgrade). A crash is a GonogoError.

    With ``in_transaction`` the SQL is linted as alembic runs it on PostgreSQL: inside
    BEGIN/COMMIT. Lines are 1-based lines of ``sql`` either way.
    """
    wrapped = f"BEGIN;\n{sql}\nCOMMIT;\n" if in_transaction else sql
    argv = squawk_argv(squawk, pg_version=pg_version, stdin_name=f"gonogo-{name}.sql")
    proc = _run(argv, squawk=squawk, timeout=timeout, what=name, stdin=wrapped, cwd=cwd)
    violations = _violations(proc, name)
    source_lines = sql.splitlines()
    # squawk's lines are 0-based; the BEGIN line shifts them by one, which makes them
    # 1-based lines of ``sql``.
    shift = 0 if in_transaction else 1
    return [_squawk_finding(v, source_lines, shift) for v in violations]


def _run(
    argv: list[str],
    *,
    squawk: str,
    timeout: float,
    what: str,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GonogoError(f"squawk did not finish within {timeout:g}s on {what}") from None
    except OSError as exc:
        raise GonogoError(f"cannot run squawk ({squawk}): {exc}") from None


def _violations(proc: subprocess.CompletedProcess[str], name: str) -> list[dict[str, Any]]:
    """squawk exits 0 with ``[]``, or 1 with a JSON list of violations; anything else failed."""
    failed = f"squawk failed on {name} (exit {proc.returncode}): {_first_line(proc)}"
    if proc.returncode not in (0, 1):
        raise GonogoError(failed)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise GonogoError(failed) from None
    if not isinstance(data, list) or (proc.returncode == 1 and not data):
        raise GonogoError(failed)
    for item in data:
        if not (isinstance(item, dict) and "rule_name" in item and "level" in item):
            raise GonogoError(
                f"squawk on {name}: unexpected JSON {_short(json.dumps(item))} "
                "(squawk-cli 2.x is needed)"
            )
    return data


def _squawk_finding(v: dict[str, Any], source_lines: list[str], shift: int) -> LintFinding:
    level: Level = ERROR if str(v.get("level")).lower() == "error" else WARNING
    line, statement = _place(v.get("line"), v.get("line_end"), source_lines, shift)
    message = v.get("message")
    if not isinstance(message, str):  # squawk 1.x: "messages": [{"Note": ...}, {"Help": ...}]
        message = str(v.get("messages", ""))
    help_ = v.get("help")
    return LintFinding(
        source="squawk",
        rule=str(v["rule_name"]),
        level=level,
        message=message,
        help=help_ if isinstance(help_, str) and help_ else None,
        line=line,
        statement=statement,
        direction="upgrade",
    )


def _place(
    start: Any, end: Any, source_lines: list[str], shift: int
) -> tuple[int | None, str | None]:
    if not isinstance(start, int):
        return None, None
    line = start + shift
    if not 1 <= line <= len(source_lines):
        return None, None  # on the BEGIN/COMMIT gonogo added
    last = end + shift if isinstance(end, int) and end + shift >= line else line
    return line, _short(" ".join(source_lines[line - 1 : last]))


def _check_pg_version(version: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+){0,2}", version.strip()):
        raise GonogoError(f"PostgreSQL version {version!r} is not a version like 16 or 15.4")
    return version.strip()


def _first_line(proc: subprocess.CompletedProcess[str]) -> str:
    for text in (proc.stderr, proc.stdout):
        for line in text.splitlines():
            if line.strip():
                return _short(line)
    return "no output"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "ERROR",
    "RULES",
    "WARNING",
    "Level",
    "LintFinding",
    "LintReport",
    "RevisionLint",
    "classification_findings",
    "find_squawk",
    "lint_project",
    "lint_revisions",
    "run_squawk",
    "squawk_argv",
    "squawk_version",
    "timeout_findings",
]
