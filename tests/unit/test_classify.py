"""Rollback classification of alembic revisions, from their operation objects, offline."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from gonogo.errors import GonogoError
from gonogo.migrations.classify import (
    IRREVERSIBLE,
    LOSSY,
    REVERSIBLE,
    Classification,
    classify_history,
    classify_project,
)
from gonogo.migrations.history import load_history, pending
from gonogo.migrations.sqlparse import analyse_sql, destructive

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "migration_fixtures"
EXAMPLE_INI = REPO_ROOT / "examples" / "webapp" / "alembic.ini"
CLASSES_INI = FIXTURES / "classes" / "alembic.ini"

# revision -> (class, words the reason must contain, words the cause must contain)
EXPECTED: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "c01_create_items": (
        LOSSY,
        ("downgrade drops table items", "upgrade created"),
        ("drop_table items",),
    ),
    "c02_index_items_name": (REVERSIBLE, ("neither direction",), ()),
    "c03_drop_items_note": (
        LOSSY,
        ("upgrade drops column items.note",),
        ("drop_column items.note",),
    ),
    "c04_delete_empty_items": (LOSSY, ("DELETE FROM items",), ("execute DELETE FROM items",)),
    "c05_narrow_items_name": (
        LOSSY,
        ("items.name", "VARCHAR(255) -> VARCHAR(50)", "narrow"),
        ("alter_column items.name",),
    ),
    "c06_add_sku_no_downgrade": (
        IRREVERSIBLE,
        ("downgrade() is empty", "add_column items.sku"),
        ("add_column items.sku",),
    ),
    "c07_create_tags_raises": (
        IRREVERSIBLE,
        ("downgrade() raises NotImplementedError",),
        ("downgrade() raises NotImplementedError",),
    ),
    "c08_batch_sku_unique": (REVERSIBLE, ("neither direction",), ()),
    "c09_batch_drop_price": (
        LOSSY,
        ("upgrade drops column items.price",),
        ("drop_column items.price (batch)",),
    ),
    "c10_lowercase_names": (LOSSY, ("UPDATE items",), ("execute UPDATE items",)),
    "c11_rename_items": (REVERSIBLE, ("neither direction",), ()),
    "c12_widen_sku": (
        LOSSY,
        ("downgrade changes the type of products.sku", "VARCHAR(64) -> VARCHAR(32)"),
        ("alter_column products.sku",),
    ),
    "c13_bind_purge": (LOSSY, ("DELETE FROM products",), ("via get_bind()", "DELETE")),
    "c14_seed_tags": (REVERSIBLE, ("neither direction",), ()),
    "c15_nullable_sku": (REVERSIBLE, ("neither direction",), ()),
    "c16_core_update": (LOSSY, ("UPDATE products",), ("execute UPDATE products",)),
    "c17_no_downgrade": (IRREVERSIBLE, ("downgrade() is missing",), ("downgrade() missing",)),
}


@pytest.fixture(scope="module")
def classes() -> Classification:
    return classify_project(CLASSES_INI)


@pytest.fixture(scope="module")
def classes_pg() -> Classification:
    return classify_project(CLASSES_INI, dialect="postgresql")


# -- each class, with its reason and cause ------------------------------------------------


@pytest.mark.parametrize("revision", sorted(EXPECTED))
def test_fixture_revision_class(classes: Classification, revision: str) -> None:
    klass, reason_words, cause_words = EXPECTED[revision]
    rc = classes.get(revision)
    assert rc.klass == klass, (rc.reason, rc.operations)
    for word in reason_words:
        assert word in rc.reason, rc.reason
    if klass == REVERSIBLE:
        assert rc.cause is None
        assert rc.findings == []
    else:
        assert rc.cause is not None
        for word in cause_words:
            assert word in rc.cause, rc.cause
        assert rc.findings and rc.findings[0].reason


def test_every_fixture_revision_is_covered(classes: Classification) -> None:
    assert [rc.revision for rc in classes.revisions] == sorted(EXPECTED)
    assert classes.counts() == {REVERSIBLE: 5, LOSSY: 9, IRREVERSIBLE: 3}


def test_operations_are_described_from_op_objects(classes: Classification) -> None:
    assert classes.get("c01_create_items").operations == [
        "create_table items (id, name, price, qty, note)"
    ]
    assert classes.get("c02_index_items_name").operations == [
        "create_index ix_items_name on items (name)"
    ]
    assert classes.get("c02_index_items_name").downgrade_operations == [
        "drop_index ix_items_name on items"
    ]
    assert classes.get("c06_add_sku_no_downgrade").operations == [
        "add_column items.sku VARCHAR(32)"
    ]
    assert classes.get("c11_rename_items").operations == ["rename_table items -> products"]
    assert classes.get("c14_seed_tags").operations == ["bulk_insert tags (2 rows)"]
    assert classes.get("c15_nullable_sku").operations == ["alter_column products.sku nullable"]


def test_batch_ops_are_recorded_one_by_one(classes: Classification) -> None:
    rc = classes.get("c08_batch_sku_unique")
    assert rc.operations == [
        "alter_column items.qty NOT NULL (batch)",
        "create_unique_constraint uq_items_sku on items (sku) (batch)",
    ]
    assert rc.downgrade_operations == [
        "drop_constraint uq_items_sku (unique) on items (batch)",
        "alter_column items.qty nullable (batch)",
    ]
    # SQLite batch mode recreates the table, which offline needs copy_from=; it is said.
    assert any("copy_from" in note for note in rc.notes)
    assert "ALTER TABLE items ALTER COLUMN qty SET NOT NULL" in rc.upgrade_sql


def test_get_bind_statements_are_recorded(classes: Classification) -> None:
    rc = classes.get("c13_bind_purge")
    assert rc.operations == [
        "execute via get_bind() SELECT id FROM products WHERE qty < 0",
        "execute via get_bind() DELETE FROM products WHERE qty < 0",
    ]
    assert "DELETE FROM products WHERE qty < 0;" in rc.upgrade_sql


def test_offline_sql_is_returned_per_direction(classes: Classification) -> None:
    rc = classes.get("c02_index_items_name")
    assert "CREATE INDEX ix_items_name ON items (name);" in rc.upgrade_sql
    assert "DROP INDEX ix_items_name;" in rc.downgrade_sql
    seed = classes.get("c14_seed_tags")
    assert "INSERT INTO tags (id, label) VALUES (1, 'new');" in seed.upgrade_sql


def test_to_dict_names_are_stable(classes: Classification) -> None:
    data = classes.to_dict()
    json.dumps(data)  # serialisable
    assert data["heads"] == ["c17_no_downgrade"]
    first = data["revisions"][0]
    assert {"revision", "down_revision", "class", "reason", "operations"} <= set(first)
    assert first == {
        **first,
        "revision": "c01_create_items",
        "down_revision": None,
        "class": "lossy",
    }
    assert "upgrade_sql" not in first
    assert "upgrade_sql" in classes.to_dict(sql=True)["revisions"][0]


# -- the example app ------------------------------------------------------------------------


def test_example_app_classes() -> None:
    result = classify_project(EXAMPLE_INI)
    assert result.heads == ["0003_create_audit_log"]
    got = {rc.revision: (rc.klass, rc.reason, rc.cause) for rc in result.revisions}
    assert list(got) == ["0001_create_notes", "0002_add_notes_body", "0003_create_audit_log"]
    assert got["0001_create_notes"] == (
        LOSSY,
        "downgrade drops table notes that the upgrade created; "
        "rows written to it since would be lost",
        "drop_table notes",
    )
    assert got["0002_add_notes_body"] == (
        LOSSY,
        "downgrade drops column notes.body that the upgrade added; "
        "data written to it since would be lost",
        "drop_column notes.body (batch)",
    )
    assert got["0003_create_audit_log"][0] == LOSSY
    assert got["0003_create_audit_log"][2] == "drop_table audit_log"
    # the batch downgrade of 0002 uses copy_from=, so its exact SQLite SQL is rendered
    body = result.get("0002_add_notes_body")
    assert "_alembic_tmp_notes" in body.downgrade_sql
    assert body.notes == []


def test_example_app_postgresql_offline() -> None:
    result = classify_project(EXAMPLE_INI, dialect="postgresql")
    assert result.dialect == "postgresql"
    assert [rc.klass for rc in result.revisions] == [LOSSY, LOSSY, LOSSY]
    assert "ALTER TABLE notes DROP COLUMN body;" in result.get("0002_add_notes_body").downgrade_sql
    assert "TIMESTAMP WITH TIME ZONE" in result.get("0003_create_audit_log").upgrade_sql


# -- PostgreSQL, offline ------------------------------------------------------------------


def test_postgresql_dialect_gives_same_classes(
    classes: Classification, classes_pg: Classification
) -> None:
    assert [(rc.revision, rc.klass) for rc in classes_pg.revisions] == [
        (rc.revision, rc.klass) for rc in classes.revisions
    ]
    batch = classes_pg.get("c08_batch_sku_unique")
    assert batch.notes == []  # no table recreate on PostgreSQL
    assert "ALTER TABLE items ADD CONSTRAINT uq_items_sku UNIQUE (sku);" in batch.upgrade_sql
    narrow = classes_pg.get("c05_narrow_items_name")
    assert "ALTER TABLE items ALTER COLUMN name TYPE VARCHAR(50);" in narrow.upgrade_sql


def test_dialect_aliases_and_unknown_dialect() -> None:
    history = load_history(FIXTURES / "two_heads" / "alembic.ini")
    assert classify_history(history, dialect="postgres").dialect == "postgresql"
    with pytest.raises(GonogoError, match="unknown database dialect 'nosuchdb'"):
        classify_history(history, dialect="nosuchdb")


# -- history: heads, pending, multiple heads ----------------------------------------------


def test_history_order_and_fields() -> None:
    history = load_history(EXAMPLE_INI)
    assert history.heads == ["0003_create_audit_log"]
    assert history.single_head
    first, second, _third = history.revisions
    assert (first.revision, first.down_revision, first.doc) == (
        "0001_create_notes",
        None,
        "create notes table",
    )
    assert second.down_revision == "0001_create_notes"
    assert second.path.name == "0002_add_notes_body.py"


def test_pending() -> None:
    history = load_history(EXAMPLE_INI)
    assert pending(history, []) == [
        "0001_create_notes",
        "0002_add_notes_body",
        "0003_create_audit_log",
    ]
    assert pending(history, ["0001_create_notes"]) == [
        "0002_add_notes_body",
        "0003_create_audit_log",
    ]
    assert pending(history, ["0003_create_audit_log"]) == []
    with pytest.raises(GonogoError, match="not in this repository's migration history"):
        pending(history, ["ffff_from_the_future"])


def test_multiple_heads() -> None:
    ini = FIXTURES / "two_heads" / "alembic.ini"
    history = load_history(ini)
    assert history.heads == ["t3_right", "t4_left_more"]
    assert not history.single_head
    order = [r.revision for r in history.revisions]
    assert order[0] == "t1_base"
    assert order.index("t2_left") < order.index("t4_left_more")
    assert pending(history, ["t4_left_more"]) == ["t3_right"]
    assert pending(history, ["t2_left", "t3_right"]) == ["t4_left_more"]
    result = classify_project(ini)
    assert result.to_dict()["head_count"] == 2
    assert result.get("t3_right").klass == LOSSY
    assert result.get("t2_left").klass == REVERSIBLE
    assert result.lines()[-1] == "2 heads: t3_right, t4_left_more"


def test_classify_only_some_revisions() -> None:
    result = classify_project(CLASSES_INI, revisions=["c02_index_items_name"])
    assert [rc.revision for rc in result.revisions] == ["c02_index_items_name"]
    with pytest.raises(GonogoError, match="nope"):
        classify_project(CLASSES_INI, revisions=["nope"])


# -- bad input: one-line errors naming the file ------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[GonogoError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


def test_broken_revision_file_is_one_line_error() -> None:
    with pytest.raises(GonogoError) as exc:
        load_history(FIXTURES / "broken_syntax" / "alembic.ini")
    message = _one_line(exc)
    assert "b2_broken.py" in message
    assert "SyntaxError" in message
    assert exc.value.details["file"].endswith("b2_broken.py")


def test_revision_importing_missing_module_is_one_line_error() -> None:
    with pytest.raises(GonogoError) as exc:
        classify_project(FIXTURES / "missing_import" / "alembic.ini")
    message = _one_line(exc)
    assert "m2_imports_app.py" in message
    assert "No module named 'gonogo_fixture_app'" in message


def test_revision_whose_app_import_raises(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(FIXTURES / "two_heads", project)
    (project / "badapp").mkdir()
    (project / "badapp" / "__init__.py").write_text(
        "raise RuntimeError('DATABASE_URL is not set\\nand more')\n"
    )
    rev = project / "migrations" / "versions" / "t3_right.py"
    source = rev.read_text().replace(
        "from alembic import op", "from alembic import op\nimport badapp"
    )
    rev.write_text(source)
    sys.modules.pop("badapp", None)
    with pytest.raises(GonogoError) as exc:
        load_history(project / "alembic.ini")
    message = _one_line(exc)
    assert "t3_right.py" in message and "RuntimeError: DATABASE_URL is not set and more" in message
    assert str(project) not in sys.path  # prepend_sys_path was undone


def test_missing_ini(tmp_path: Path) -> None:
    with pytest.raises(GonogoError, match="no such alembic config file") as exc:
        load_history(tmp_path / "alembic.ini")
    _one_line(exc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[alembic]\nsqlalchemy.url = sqlite://\n", "no script_location"),
        ("[other]\nx = 1\n", r"no \[alembic\] section"),
        ("not an ini file\n", "cannot read alembic config"),
        ("[alembic]\nscript_location = nowhere\n", "script_location nowhere does not exist"),
    ],
)
def test_bad_ini(tmp_path: Path, text: str, expected: str) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text(text)
    with pytest.raises(GonogoError, match=expected) as exc:
        load_history(ini)
    _one_line(exc)


def test_broken_history_graph(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(FIXTURES / "two_heads", project)
    rev = project / "migrations" / "versions" / "t3_right.py"
    rev.write_text(rev.read_text().replace('down_revision = "t1_base"', 'down_revision = "zz"'))
    with pytest.raises(GonogoError, match="broken revision history") as exc:
        load_history(project / "alembic.ini")
    _one_line(exc)


def test_script_location_relative_to_ini_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    history = load_history(FIXTURES / "two_heads" / "alembic.ini")  # "migrations", relative
    assert history.script_location == FIXTURES / "two_heads" / "migrations"
    here = load_history(CLASSES_INI)  # %(here)s/migrations
    assert here.script_location == FIXTURES / "classes" / "migrations"


# -- the decisions, in small -------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("upgrade", "downgrade", "klass", "reason"),
    [
        # type changes
        (
            "    op.alter_column('t', 'c', existing_type=sa.Text(), type_=sa.String(20))",
            "    op.alter_column('t', 'c', existing_type=sa.String(20), type_=sa.Text())",
            LOSSY,
            "TEXT -> VARCHAR(20)",
        ),
        (
            "    op.alter_column('t', 'c', existing_type=sa.BigInteger(), type_=sa.Integer())",
            "    op.alter_column('t', 'c', existing_type=sa.Integer(), type_=sa.BigInteger())",
            LOSSY,
            "BIGINT -> INTEGER",
        ),
        (
            "    op.alter_column('t', 'c', existing_type=sa.Numeric(12, 4),"
            " type_=sa.Numeric(9, 2))",
            "    op.alter_column('t', 'c', existing_type=sa.Numeric(9, 2),"
            " type_=sa.Numeric(12, 4))",
            LOSSY,
            "precision or scale",
        ),
        (
            "    op.alter_column('t', 'c', type_=sa.String(20))",
            "    op.alter_column('t', 'c', type_=sa.Text())",
            LOSSY,
            "without existing_type",
        ),
        (
            "    op.alter_column('t', 'c', existing_type=sa.Integer(), type_=sa.BigInteger())\n"
            "    op.alter_column('t', 'd', existing_type=sa.String(10), type_=sa.Text())",
            "    pass",
            IRREVERSIBLE,
            "downgrade() is empty",
        ),
        (
            "    op.alter_column('t', 'c', existing_type=sa.Enum('a', 'b', name='e'),"
            " type_=sa.Enum('a', name='e'))",
            "    op.alter_column('t', 'c', existing_type=sa.Enum('a', name='e'),"
            " type_=sa.Enum('a', 'b', name='e'))",
            LOSSY,
            "removes enum value(s) b",
        ),
        # raw SQL
        ("    op.execute('TRUNCATE TABLE audit_log')", "    pass", LOSSY, "TRUNCATE audit_log"),
        (
            "    op.execute('ALTER TABLE t DROP COLUMN c')",
            "    op.execute('ALTER TABLE t ADD COLUMN c INTEGER')",
            LOSSY,
            "ALTER TABLE t DROP COLUMN c",
        ),
        (
            "    op.execute('CREATE INDEX ix ON t (c)')",
            "    op.execute('DROP INDEX ix')",
            REVERSIBLE,
            "neither direction",
        ),
        (
            "    op.execute('CREATE INDEX ix ON t (c)')",
            "    pass",
            IRREVERSIBLE,
            "downgrade() is empty",
        ),
        (
            "    op.execute(sa.text('DELETE FROM t WHERE id = :id').bindparams(id=3))",
            "    pass",
            LOSSY,
            "DELETE FROM t",
        ),
        ("    op.execute(sa.delete(sa.table('t')))", "    pass", LOSSY, "DELETE FROM t"),
        (
            '    op.execute("DO $$ BEGIN PERFORM 1; END $$")',
            '    op.execute("DO $$ BEGIN PERFORM 2; END $$")',
            LOSSY,
            "opaque",
        ),
        (
            '    op.execute("DO $$ BEGIN PERFORM 1; END $$")',
            "    pass",
            IRREVERSIBLE,
            "downgrade() is empty",
        ),
        # data only, nothing destroyed
        (
            "    op.execute(\"INSERT INTO t (c) VALUES ('x')\")",
            "    pass",
            REVERSIBLE,
            "neither direction",
        ),
        # constraints and comments
        (
            "    op.create_foreign_key('fk', 't', 'u', ['u_id'], ['id'])",
            "    op.drop_constraint('fk', 't', type_='foreignkey')",
            REVERSIBLE,
            "neither direction",
        ),
        (
            "    op.create_check_constraint('ck', 't', 'c > 0')",
            "    op.drop_constraint('ck', 't', type_='check')",
            REVERSIBLE,
            "neither direction",
        ),
        # analysis failures are never "reversible"
        (
            "    raise RuntimeError('needs the database')",
            "    pass",
            IRREVERSIBLE,
            "upgrade() raises RuntimeError",
        ),
        ("    pass", "    pass", REVERSIBLE, "no operations"),
        # downgrade drops something the upgrade did not add
        (
            "    op.create_index('ix', 't', ['c'])",
            "    op.drop_index('ix', table_name='t')\n    op.drop_table('legacy')",
            LOSSY,
            "downgrade drops table legacy and every row in it",
        ),
    ],
)
def test_decisions(tmp_path: Path, upgrade: str, downgrade: str, klass: str, reason: str) -> None:
    rc = classify_project(_project(tmp_path, upgrade, downgrade)).revisions[0]
    assert rc.klass == klass, rc.reason
    assert reason in rc.reason


def test_widening_type_changes_are_not_lossy(tmp_path: Path) -> None:
    upgrade = "\n".join(
        f"    op.alter_column('t', 'c{i}', existing_type={old}, type_={new})"
        for i, (old, new) in enumerate(
            [
                ("sa.String(50)", "sa.String(255)"),
                ("sa.String(50)", "sa.Text()"),
                ("sa.Integer()", "sa.BigInteger()"),
                ("sa.SmallInteger()", "sa.Integer()"),
                ("sa.Numeric(10, 2)", "sa.Numeric(12, 4)"),
                ("sa.Date()", "sa.DateTime()"),
                ("sa.Boolean()", "sa.Integer()"),
                ("sa.Integer()", "sa.Numeric(12, 0)"),
                ("sa.Enum('a', name='e')", "sa.Enum('a', 'b', name='e')"),
                ("sa.Integer()", "sa.Text()"),
            ]
        )
    )
    rc = classify_project(_project(tmp_path, upgrade, "    op.create_index('i', 't', ['c'])"))
    assert rc.revisions[0].klass == REVERSIBLE, rc.revisions[0].reason


def test_alembic_op_proxy_is_removed_after_analysis() -> None:
    from alembic import op

    classify_project(FIXTURES / "two_heads" / "alembic.ini")
    with pytest.raises((NameError, AttributeError)):  # as after alembic's Operations.context()
        op.create_index("ix", "t", ["c"])


# -- sqlparse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kinds"),
    [
        ("DELETE FROM notes WHERE id > 3", ["delete"]),
        ("UPDATE notes SET body = ''; DELETE FROM audit_log", ["update", "delete"]),
        ("TRUNCATE notes", ["truncate"]),
        ("DROP TABLE IF EXISTS notes", ["drop_table"]),
        ("ALTER TABLE notes DROP COLUMN body", ["drop_column"]),
        ("ALTER TABLE notes ALTER COLUMN body TYPE varchar(10)", ["alter_type"]),
        ("WITH d AS (DELETE FROM notes RETURNING id) SELECT * FROM d", ["delete"]),
        (
            "INSERT INTO notes (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET title = 'x'",
            ["upsert"],
        ),
        ("DO $$ BEGIN DELETE FROM x; END $$", ["opaque"]),
    ],
)
def test_sqlparse_destructive(sql: str, kinds: list[str]) -> None:
    assert [f.kind for f in destructive(sql, "postgresql")] == kinds


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY ix ON notes (title)",
        "DROP INDEX ix_a",
        "ALTER TABLE notes DROP CONSTRAINT fk",
        "ALTER TABLE notes ADD COLUMN x int",
        "INSERT INTO notes (id) VALUES (1) ON CONFLICT DO NOTHING",
        "SET lock_timeout = '5s'",
        "COMMENT ON TABLE notes IS 'x'",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "",
        "-- just a comment",
    ],
)
def test_sqlparse_harmless(sql: str) -> None:
    assert destructive(sql, "postgresql") == []


def test_sqlparse_schema_flag() -> None:
    assert [f.changes_schema for f in analyse_sql("CREATE TABLE t (id int); SELECT 1")] == [
        True,
        False,
    ]
