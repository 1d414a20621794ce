"""`gonogo migrate lint`: real squawk on real SQL, and gonogo's own checks on alembic projects.

squawk (the squawk-cli wheel) is a core dependency: if it is not installed these tests fail
(find_squawk raises), they do not skip.
"""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path

import pytest

from gonogo.errors import GonogoError
from gonogo.migrations.classify import RevisionClass, classify_project
from gonogo.migrations.lint import (
    ERROR,
    RULES,
    WARNING,
    LintFinding,
    LintReport,
    connection_timeouts,
    find_squawk,
    lint_project,
    lint_revisions,
    run_squawk,
    squawk_argv,
    squawk_version,
    timeout_findings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASSES_INI = REPO_ROOT / "tests" / "migration_fixtures" / "classes" / "alembic.ini"


@pytest.fixture(scope="module")
def squawk() -> str:
    return find_squawk()  # GonogoError (a failure) when squawk-cli is not installed


@pytest.fixture(scope="module")
def classes_sqlite() -> LintReport:
    return lint_project(CLASSES_INI)


@pytest.fixture(scope="module")
def classes_pg(squawk: str) -> LintReport:
    return lint_project(CLASSES_INI, dialect="postgresql", squawk=squawk)


def _rules(findings: list[LintFinding]) -> list[str]:
    return [f.rule for f in findings]


def _by_rule(findings: list[LintFinding], rule: str) -> LintFinding:
    found = [f for f in findings if f.rule == rule]
    assert len(found) == 1, (rule, _rules(findings))
    return found[0]


# -- finding squawk ------------------------------------------------------------------------


def test_squawk_is_installed_next_to_python(squawk: str) -> None:
    assert Path(squawk).parent == Path(sys.executable).parent
    assert re.fullmatch(r"2\.\d+\.\d+", squawk_version(squawk))


def test_find_squawk_missing_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(GonogoError) as exc:
        find_squawk({"PATH": ""}, executable=str(tmp_path / "python"))
    message = exc.value.message
    assert "pip install squawk-cli" in message
    assert str(tmp_path) in message
    assert "\n" not in message


def test_find_squawk_falls_back_to_path(tmp_path: Path) -> None:
    on_path = tmp_path / "bin"
    fake = _script(on_path, "squawk", "echo 'squawk 2.0.0'")
    found = find_squawk({"PATH": str(on_path)}, executable=str(tmp_path / "venv" / "python"))
    assert Path(found) == fake
    assert squawk_version(found) == "2.0.0"


def test_squawk_argv_is_pure() -> None:
    assert squawk_argv("/x/squawk") == [
        "/x/squawk",
        "--reporter",
        "json",
        "--no-assume-in-transaction",
        "--stdin-filepath",
        "migration.sql",
    ]
    argv = squawk_argv("squawk", pg_version="15.4", stdin_name="r1.sql")
    assert argv[-1] == "--pg-version=15.4"
    assert "r1.sql" in argv
    with pytest.raises(GonogoError, match="not a version"):
        squawk_argv("squawk", pg_version="banana")


# -- squawk on real SQL --------------------------------------------------------------------


def test_index_without_concurrently(squawk: str) -> None:
    found = run_squawk("CREATE INDEX ix_items_name ON items (name);\n", squawk=squawk)
    f = _by_rule(found, "require-concurrent-index-creation")
    assert (f.source, f.level, f.line, f.direction) == ("squawk", WARNING, 1, "upgrade")
    assert f.statement == "CREATE INDEX ix_items_name ON items (name);"
    assert f.help and "concurrently" in f.help.lower()
    assert "blocked" in f.message


def test_not_null_column_without_default(squawk: str) -> None:
    sql = "SELECT 1;\n\nALTER TABLE items\n    ADD COLUMN x bigint NOT NULL;\n"
    f = _by_rule(run_squawk(sql, squawk=squawk), "adding-required-field")
    assert f.line == 4  # 1-based lines of the SQL given, not of the BEGIN-wrapped text
    assert f.statement == "ADD COLUMN x bigint NOT NULL;"
    with_default = "ALTER TABLE items ADD COLUMN x bigint NOT NULL DEFAULT 0;\n"
    assert "adding-required-field" not in _rules(run_squawk(with_default, squawk=squawk))


def test_lock_timeout_set_or_not(squawk: str) -> None:
    bare = "ALTER TABLE items ADD COLUMN x bigint;\n"
    assert "require-lock-timeout" in _rules(run_squawk(bare, squawk=squawk))
    guarded = "SET LOCAL lock_timeout = '2s';\n" + bare
    assert "require-lock-timeout" not in _rules(run_squawk(guarded, squawk=squawk))


def test_sql_is_linted_inside_alembics_transaction(squawk: str) -> None:
    index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix ON items (x);\n"
    # inside the migration's transaction: PostgreSQL refuses CONCURRENTLY there
    inside = _rules(run_squawk(index, squawk=squawk))
    assert "ban-concurrent-index-creation-in-transaction" in inside
    # what alembic's autocommit_block() renders: no complaint, no transaction-nesting noise
    autocommit = _rules(run_squawk(f"COMMIT;\n\n{index}\nBEGIN;\n", squawk=squawk))
    assert "ban-concurrent-index-creation-in-transaction" not in autocommit
    assert "transaction-nesting" not in autocommit
    assert "ban-uncommitted-transaction" not in autocommit


def test_pg_version_is_passed(squawk: str) -> None:
    sql = "ALTER TABLE items ADD COLUMN x bigint DEFAULT 0;\n"
    assert "adding-field-with-default" in _rules(run_squawk(sql, squawk=squawk, pg_version="10"))
    assert "adding-field-with-default" not in _rules(run_squawk(sql, squawk=squawk))


def test_syntax_error_is_error_level(squawk: str) -> None:
    found = run_squawk("CREATE TABL oops (;\n", squawk=squawk)
    assert found and all(f.rule == "syntax-error" and f.level == ERROR for f in found)


def test_clean_sql_has_no_findings(squawk: str) -> None:
    sql = (
        "SET LOCAL lock_timeout = '2s';\nSET LOCAL statement_timeout = '1min';\n"
        "CREATE TABLE IF NOT EXISTS notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n"
    )
    assert run_squawk(sql, squawk=squawk) == []


# -- squawk failing ------------------------------------------------------------------------


def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("echo 'Error: stream did not contain valid UTF-8' >&2; exit 1", "valid UTF-8"),
        ("echo 'thread main panicked' >&2; exit 101", "exit 101"),
        ("echo 'not json'; exit 0", "not json"),
        ("exit 1", "no output"),  # exit 1 means violations, so it needs JSON
        ("echo '[{\"unexpected\": 1}]'; exit 1", "unexpected JSON"),
    ],
)
def test_squawk_crash_is_an_error(tmp_path: Path, body: str, expected: str) -> None:
    fake = _script(tmp_path, "squawk", body)
    with pytest.raises(GonogoError, match="squawk") as exc:
        run_squawk("SELECT 1;", squawk=str(fake), name="r1")
    assert expected in exc.value.message
    assert "r1" in exc.value.message


def test_squawk_hanging_times_out(tmp_path: Path) -> None:
    fake = _script(tmp_path, "squawk", "exec sleep 5")
    with pytest.raises(GonogoError, match=r"did not finish within 0\.3s on r1"):
        run_squawk("SELECT 1;", squawk=str(fake), name="r1", timeout=0.3)


def test_squawk_not_executable(tmp_path: Path) -> None:
    with pytest.raises(GonogoError, match="cannot run squawk"):
        run_squawk("SELECT 1;", squawk=str(tmp_path / "nope"))


# -- gonogo's timeout checks ---------------------------------------------------------------

LOCK = "lock-timeout-not-set"
STMT = "statement-timeout-not-set"
ALTER = "ALTER TABLE items ADD COLUMN x bigint;"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE INDEX ix ON items (name);", [LOCK, STMT]),
        (f"SET lock_timeout = '2s';\n{ALTER}", [STMT]),
        (f"SET LOCAL lock_timeout TO '2s'; SET statement_timeout = '1min'; {ALTER}", []),
        (f"SELECT set_config('lock_timeout', '3s', false);\n{ALTER}", [STMT]),
        (f"SET lock_timeout = 0;\n{ALTER}", [LOCK, STMT]),  # 0 disables it
        (f"SET lock_timeout TO DEFAULT;\n{ALTER}", [LOCK, STMT]),
        (f"SET lock_timeout = '1s'; RESET lock_timeout; {ALTER}", [LOCK, STMT]),
        (f"SET lock_timeout = '1s'; RESET ALL; {ALTER}", [LOCK, STMT]),
        (f"{ALTER}\nSET lock_timeout = '1s';", [LOCK, STMT]),  # too late
        # SET LOCAL ends with the transaction (alembic's autocommit_block commits it)
        (f"SET LOCAL lock_timeout = '1s';\nCOMMIT;\n{ALTER}\nBEGIN;", [LOCK, STMT]),
        (f"SET lock_timeout = '1s';\nCOMMIT;\n{ALTER}\nBEGIN;", [STMT]),
        # objects created in the same revision block nobody
        (
            "CREATE TABLE t (id bigint);\nCREATE INDEX ix_t ON t (id);\n"
            "ALTER TABLE t ADD COLUMN y bigint;\nDROP INDEX ix_t;",
            [],
        ),
        # ...but a foreign key locks the table it references
        ("CREATE TABLE t (id bigint, item_id bigint REFERENCES items (id));", [LOCK, STMT]),
        ("CREATE INDEX CONCURRENTLY ix ON items (name);", []),
        ("DROP INDEX CONCURRENTLY ix;", []),
        ("DROP INDEX ix;", [LOCK, STMT]),
        ("DROP TABLE items;", [LOCK, STMT]),
        ("TRUNCATE items;", [LOCK, STMT]),
        ("ALTER TABLE items VALIDATE CONSTRAINT fk;", []),
        ("ALTER TABLE items RENAME TO products;", [LOCK, STMT]),
        (
            "CREATE TRIGGER trg BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION f();",
            [LOCK, STMT],
        ),
        ("LOCK TABLE items IN ACCESS SHARE MODE;", []),
        ("LOCK TABLE items;", [LOCK, STMT]),
        ("REINDEX TABLE items;", [LOCK, STMT]),
        ("REINDEX TABLE CONCURRENTLY items;", []),
        ("VACUUM FULL items;", [LOCK, STMT]),
        (
            "INSERT INTO items (name) VALUES ('a; b'); UPDATE items SET name = 'x';"
            " DELETE FROM items;",
            [],
        ),
        ("CREATE TABLE t (id bigint PRIMARY KEY);", []),
        ("DO $$ BEGIN PERFORM 1; END $$;", []),
        ("", []),
    ],
)
def test_timeout_checks(sql: str, expected: list[str]) -> None:
    found = timeout_findings(sql)
    assert _rules(found) == expected
    assert all(f.source == "gonogo" and f.level == WARNING for f in found)


def test_timeout_finding_names_the_first_unprotected_statement() -> None:
    sql = (
        "-- gonogo: a note\nSELECT 1;\n\nCREATE INDEX ix ON public.items (name);\n"
        "ALTER TABLE items DROP COLUMN note;\n"
    )
    f = _by_rule(timeout_findings(sql), LOCK)
    assert f.line == 4
    assert f.statement == "CREATE INDEX ix ON public.items (name)"
    assert "a SHARE lock on public.items (blocks writes)" in f.message
    assert "and 1 statement(s) after it" in f.message
    assert f.help and "SET LOCAL lock_timeout" in f.help
    drop = _by_rule(timeout_findings("ALTER TABLE items DROP COLUMN note;"), STMT)
    assert "an ACCESS EXCLUSIVE lock on items (blocks reads and writes)" in drop.message


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("postgresql://u@h/db", {}, set()),
        ("postgresql://u@h/db?options=-c%20lock_timeout%3D5s", {}, {"lock_timeout"}),
        (
            "postgresql://u@h/db?sslmode=disable"
            "&options=-c lock_timeout=5s -c statement_timeout=1min",
            {},
            {"lock_timeout", "statement_timeout"},
        ),
        ("postgresql://u@h/db", {"PGOPTIONS": "--lock_timeout=3000"}, {"lock_timeout"}),
        ("postgresql://u@h/db?options=-c%20lock_timeout%3D0", {}, set()),  # 0 turns it off
        ("postgresql://u@h/db", {"PGOPTIONS": "-c search_path=app"}, set()),
    ],
)
def test_connection_timeouts(url: str, environ: dict[str, str], expected: set[str]) -> None:
    assert connection_timeouts(url, environ) == expected


def test_a_timeout_the_connection_sets_is_not_reported() -> None:
    sql = "ALTER TABLE items DROP COLUMN note;"
    assert _rules(timeout_findings(sql)) == [LOCK, STMT]
    assert _rules(timeout_findings(sql, {"lock_timeout"})) == [STMT]
    # ...unless the migration itself turns it off again
    assert _rules(timeout_findings("RESET lock_timeout;\n" + sql, {"lock_timeout"})) == [
        LOCK,
        STMT,
    ]


# -- gonogo's checks on fixture projects ---------------------------------------------------


def test_sqlite_classes_own_checks(classes_sqlite: LintReport) -> None:
    report = classes_sqlite
    assert report.dialect == "sqlite" and report.squawk is None
    for revision in ("c06_add_sku_no_downgrade", "c07_create_tags_raises", "c17_no_downgrade"):
        f = _by_rule(report.get(revision).findings, "missing-downgrade")
        assert (f.source, f.level, f.direction) == ("gonogo", ERROR, "downgrade")
    assert "downgrade() is missing" in report.get("c17_no_downgrade").findings[0].message
    lossy = _by_rule(report.get("c03_drop_items_note").findings, "lossy-operation")
    assert (lossy.level, lossy.direction) == (WARNING, "upgrade")
    assert "upgrade drops column items.note" in lossy.message
    assert lossy.statement == "drop_column items.note"
    narrowing = _by_rule(report.get("c12_widen_sku").findings, "lossy-operation")
    assert narrowing.direction == "downgrade"
    assert "VARCHAR(64) -> VARCHAR(32)" in narrowing.message
    # reversible revisions: nothing to report, and no PostgreSQL checks on SQLite
    for revision in ("c02_index_items_name", "c11_rename_items", "c14_seed_tags"):
        assert report.get(revision).findings == []
    assert report.counts() == {ERROR: 3, WARNING: 9}
    assert not report.ok
    assert {f.rule for f in report.findings} == {"missing-downgrade", "lossy-operation"}


def test_postgresql_classes_squawk_and_own_checks(classes_pg: LintReport) -> None:
    report = classes_pg
    assert report.dialect == "postgresql" and report.squawk_version
    assert all(rl.squawk_ran for rl in report.revisions)
    index = report.get("c02_index_items_name").findings
    assert {"require-concurrent-index-creation", LOCK, STMT} <= set(_rules(index))
    # squawk's own timeout rules are replaced by gonogo's
    assert not {"require-lock-timeout", "require-statement-timeout"} & {
        f.rule for f in report.findings
    }
    assert "adding-not-nullable-field" in _rules(report.get("c08_batch_sku_unique").findings)
    assert "ban-drop-column" in _rules(report.get("c03_drop_items_note").findings)
    assert report.get("c14_seed_tags").findings == []  # inserts only
    # errors first within a revision
    levels = [f.level for f in report.get("c06_add_sku_no_downgrade").findings]
    assert levels == sorted(levels, key=[ERROR, WARNING].index)
    assert report.counts()[ERROR] == 3 and not report.ok


def _project(tmp_path: Path, upgrade: str, downgrade: str) -> Path:
    project = tmp_path / "proj"
    versions = project / "migrations" / "versions"
    versions.mkdir(parents=True)
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (versions / "r1.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        "revision = 'r1'\ndown_revision = None\n\n"
        f"def upgrade():\n{upgrade}\n\ndef downgrade():\n{downgrade}\n"
    )
    return project / "alembic.ini"


def test_reversible_add_index_nothing_to_report_on_sqlite(tmp_path: Path) -> None:
    ini = _project(
        tmp_path,
        "    op.create_index('ix_items_name', 'items', ['name'])",
        "    op.drop_index('ix_items_name', table_name='items')",
    )
    report = lint_project(ini)
    assert report.ok and report.findings == []
    assert report.lines() == [
        "r1  reversible",
        "    nothing to report",
        "1 revision linted (sqlite, squawk does not apply to sqlite): 0 errors, 0 warnings",
    ]


def test_careful_postgresql_migration_is_clean(tmp_path: Path, squawk: str) -> None:
    ini = _project(
        tmp_path,
        "    op.execute(\"SET LOCAL lock_timeout = '2s'\")\n"
        "    op.execute(\"SET LOCAL statement_timeout = '1min'\")\n"
        "    op.add_column('items', sa.Column('x', sa.BigInteger(), nullable=True))\n"
        "    op.execute(\"SET lock_timeout = '2s'\")\n"
        "    with op.get_context().autocommit_block():\n"
        "        op.create_index('ix_items_x', 'items', ['x'], postgresql_concurrently=True,"
        " if_not_exists=True)",
        "    op.drop_index('ix_items_x', table_name='items')",
    )
    report = lint_project(ini, dialect="postgres", squawk=squawk)
    assert report.dialect == "postgresql"
    assert report.findings == [], report.lines()
    assert report.ok


def test_add_not_null_column_on_postgresql(tmp_path: Path, squawk: str) -> None:
    ini = _project(
        tmp_path,
        "    op.add_column('items', sa.Column('x', sa.BigInteger(), nullable=False))",
        "    op.drop_column('items', 'x')",
    )
    report = lint_project(ini, dialect="postgresql", squawk=squawk)
    rl = report.get("r1")
    assert rl.klass == "lossy"  # the downgrade drops the column the upgrade added
    assert {"adding-required-field", "lossy-operation", LOCK, STMT} <= set(_rules(rl.findings))
    assert report.ok  # all warnings


def test_upgrade_that_raises_is_not_analysable(tmp_path: Path) -> None:
    ini = _project(tmp_path, "    raise RuntimeError('needs the app')", "    pass")
    f = _by_rule(lint_project(ini).get("r1").findings, "upgrade-not-analysable")
    assert (f.level, f.direction) == (ERROR, "upgrade")
    assert "RuntimeError" in f.message


def test_incomplete_sql_note_on_postgresql() -> None:
    rc = RevisionClass(
        revision="r1",
        down_revision=None,
        klass="reversible",
        reason="",
        operations=[],
        cause=None,
        notes=["upgrade: CreateIndexOp: no offline SQL for postgresql (X: y)", "downgrade: z"],
    )
    report = lint_revisions([rc], dialect="postgresql", squawk=None)
    assert _rules(report.findings) == ["incomplete-sql"]
    assert report.findings[0].message.startswith("CreateIndexOp: no offline SQL")
    assert lint_revisions([rc], dialect="sqlite", squawk=None).findings == []
    assert "squawk not run" in report.summary()


def test_error_and_ignore_rules(tmp_path: Path) -> None:
    classes = classify_project(CLASSES_INI, revisions=["c03_drop_items_note", "c17_no_downgrade"])
    report = lint_revisions(
        classes.revisions,
        dialect="sqlite",
        squawk=None,
        error_rules={"lossy-operation"},
        ignore_rules={"missing-downgrade"},
    )
    assert [(f.rule, f.level) for f in report.findings] == [("lossy-operation", ERROR)]


def test_to_dict_names_are_stable(classes_pg: LintReport) -> None:
    doc = classes_pg.to_dict()
    assert list(doc) == ["dialect", "ok", "counts", "squawk", "revisions"]
    assert list(doc["squawk"]) == ["path", "version", "pg_version"]
    rev = doc["revisions"][1]
    assert list(rev) == ["revision", "class", "doc", "path", "squawk_ran", "counts", "findings"]
    assert list(rev["findings"][0]) == [
        "source",
        "rule",
        "level",
        "message",
        "help",
        "direction",
        "line",
        "statement",
    ]
    assert doc["counts"] == classes_pg.counts()
    assert set(RULES) == {
        "missing-downgrade",
        "upgrade-not-analysable",
        "lossy-operation",
        "lock-timeout-not-set",
        "statement-timeout-not-set",
        "incomplete-sql",
    }


def test_lines_render_each_finding(classes_pg: LintReport) -> None:
    text = "\n".join(classes_pg.lines())
    assert "c02_index_items_name  reversible" in text
    assert "    WARNING squawk require-concurrent-index-creation, line 1: " in text
    assert "            | CREATE INDEX ix_items_name ON items (name);" in text
    assert "    ERROR   gonogo missing-downgrade: downgrade() is missing" in text
    assert re.search(
        r"17 revisions linted \(postgresql, squawk 2\.\d+\.\d+\): 3 errors, \d+ warnings$", text
    )


def test_unreadable_sql_is_not_read_as_safe() -> None:
    f = _by_rule(timeout_findings("ALTER TABLE items ADD COLUMN x text DEFAULT 'oops"), LOCK)
    assert "could not be read" in f.message


def test_a_malformed_timeout_in_pgoptions_is_read_as_far_as_it_goes() -> None:
    assert connection_timeouts("postgresql://u@h/db", {"PGOPTIONS": "-c lock_timeout=1.5.0s"}) == {
        "lock_timeout"
    }
    assert connection_timeouts("postgresql://u@h/db", {"PGOPTIONS": "-c lock_timeout=abc"}) == set()
