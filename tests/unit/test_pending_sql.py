"""PendingSql split per revision: a revision's part reads the same whichever revision the
database started from, so a promoted environment can be matched revision by revision."""

from __future__ import annotations

from gonogo.migrations.pending import PendingSql

PREAMBLE = "BEGIN;\n\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n\n"
R1 = (
    "-- Running upgrade  -> 0001\n\nCREATE TABLE notes (id INTEGER);\n\n"
    "INSERT INTO alembic_version (version_num) VALUES ('0001');\n\n"
)
R2 = (
    "-- Running upgrade 0001 -> 0002\n\nALTER TABLE notes ADD COLUMN body TEXT;\n\n"
    "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';"
    "\n\n"
)
R3 = (
    "-- Running upgrade 0002 -> 0003\n\nCREATE INDEX ix ON notes (body);\n\n"
    "UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';"
    "\n\n"
)


def pending(sql: str, current: tuple[str, ...] = ()) -> PendingSql:
    return PendingSql(current=current, heads=("0003",), sql=sql)


def test_each_revision_gets_its_own_part_without_preamble_or_transaction_lines() -> None:
    whole = pending(PREAMBLE + R1 + R2 + R3 + "COMMIT;\n")
    parts = whole.revision_sql()
    assert list(parts) == ["0001", "0002", "0003"]
    assert "alembic_version (version_num VARCHAR" not in parts["0001"]
    assert parts["0003"] == "CREATE INDEX ix ON notes (body);\n"
    # Stamping alembic_version depends on what ran before: not part of a revision's SQL.
    assert "alembic_version" not in "".join(parts.values())
    assert "COMMIT" not in parts["0003"] and "BEGIN" not in "".join(parts.values())


def test_a_revision_hashes_the_same_from_base_or_from_the_middle() -> None:
    from_base = pending(PREAMBLE + R1 + R2 + R3 + "COMMIT;\n").revision_hashes()
    in_two = {
        **pending(PREAMBLE + R1 + R2 + "COMMIT;\n").revision_hashes(),
        **pending("BEGIN;\n\n" + R3 + "COMMIT;\n", ("0002",)).revision_hashes(),
    }
    assert from_base == in_two
    assert len(set(from_base.values())) == 3


def test_changed_sql_changes_only_that_revisions_hash() -> None:
    before = pending(R1 + R2 + R3).revision_hashes()
    after = pending(R1 + R2.replace("body TEXT", "body VARCHAR(10)") + R3).revision_hashes()
    assert [rev for rev in before if before[rev] != after[rev]] == ["0002"]


def test_revision_scripts_are_split_by_their_headings() -> None:
    scripts = (
        "-- revision 0002: 0002_body.py\n\"\"\"body\"\"\"\nrevision = '0002'\n"
        "\n-- revision 0003: 0003_ix.py\n\"\"\"ix\"\"\"\nrevision = '0003'\n"
    )
    parts = pending(scripts, ("0001",)).revision_sql()
    assert list(parts) == ["0002", "0003"]
    assert "revision = '0003'" in parts["0003"] and "0002" not in parts["0003"].split("\n", 1)[1]


def test_a_merge_revision_gets_its_own_part() -> None:
    merge = (
        "-- Running upgrade a1 -> b1\n\nCREATE TABLE b (id INTEGER);\n\n"
        "UPDATE alembic_version SET version_num='b1' WHERE alembic_version.version_num = 'a1';\n"
        "\n-- Running upgrade a1 -> c1\n\nCREATE TABLE c (id INTEGER);\n\n"
        "INSERT INTO alembic_version (version_num) VALUES ('c1');\n"
        "\n-- Running upgrade b1, c1 -> m1\n\nSELECT 'm';\n\n"
        "DELETE FROM alembic_version WHERE alembic_version.version_num = 'c1';\n"
    )
    parts = pending(merge).revision_sql()
    assert parts == {
        "b1": "CREATE TABLE b (id INTEGER);\n",
        "c1": "CREATE TABLE c (id INTEGER);\n",
        "m1": "SELECT 'm';\n",
    }


def test_sql_without_headings_has_no_parts() -> None:
    assert pending("CREATE TABLE t (id INTEGER);\n").revision_hashes() == {}
