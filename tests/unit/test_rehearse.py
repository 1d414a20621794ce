"""`rehearse`: apply, undo and re-apply pending revisions on a throwaway copy of the database.

Fixture projects (tests/migration_fixtures/rehearse_*):

- ``rehearse_bad_downgrade``: revision 2 adds ``items.sku`` and an index on it; its downgrade
  drops the column before the index, which SQLite refuses;
- ``rehearse_not_idempotent``: clean round trips, but the head's ``create_table`` fails when
  it runs again after ``stamp`` back one revision;
- ``rehearse_idempotent``: the head uses ``if_not_exists``: everything is clean;
- ``rehearse_drift``: revision 2's downgrade runs but also drops revision 1's index (only the
  schema comparison notices: the re-upgrade would pass);
- ``rehearse_merge``: two branches merged by a merge revision.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gonogo.errors import GonogoError
from gonogo.migrations.pending import MigrationTarget
from gonogo.migrations.rehearse import (
    Rehearsal,
    Snapshot,
    _error_line,
    _schema_diff,
    rehearse,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "migration_fixtures"
EXAMPLE_APP = REPO_ROOT / "examples" / "webapp"
WEBAPP_REVISIONS = ["0001_create_notes", "0002_add_notes_body", "0003_create_audit_log"]


def target(cwd: Path, url: str) -> MigrationTarget:
    """The app's environment as a provider builds it: minimal, with the real DATABASE_URL."""
    return MigrationTarget(
        cwd=cwd,
        environ={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url},
        database_url=url,
        ini="alembic.ini",
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def actions(result: Rehearsal) -> list[tuple[str, str, bool]]:
    return [(s.revision, s.action, s.ok) for s in result.steps]


def round_trip(revision: str) -> list[tuple[str, str, bool]]:
    return [(revision, a, True) for a in ("upgrade", "downgrade", "reupgrade")]


def copy_project(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.db"))
    return dest


@pytest.fixture
def webapp(tmp_path: Path) -> Path:
    return copy_project(EXAMPLE_APP, tmp_path / "webapp")


def alembic(cwd: Path, url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", *args],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=60,
    )


# -- the example app ---------------------------------------------------------------------------


def test_example_app_rehearses_clean_from_an_empty_database(webapp: Path, tmp_path: Path) -> None:
    real = tmp_path / "real" / "app.db"
    result = rehearse(target(webapp, f"sqlite:///{real}"), workdir=tmp_path / "work")

    assert result.ok, result.summary
    assert result.start == []
    assert result.revisions == WEBAPP_REVISIONS
    assert result.rehearsed == WEBAPP_REVISIONS
    assert result.failed == []
    assert actions(result)[:9] == [t for r in WEBAPP_REVISIONS for t in round_trip(r)]
    assert [s.command for s in result.steps[:3]] == [
        "alembic -c alembic.ini upgrade 0001_create_notes",
        "alembic -c alembic.ini downgrade base",
        "alembic -c alembic.ini upgrade 0001_create_notes",
    ]
    assert result.steps[4].command == "alembic -c alembic.ini downgrade 0001_create_notes"
    # 0003 creates audit_log without IF NOT EXISTS: re-running it after a stamp-back fails.
    # That is a finding about idempotency (certify needs it), not a failed round trip.
    stamp, reapply = result.steps[9:]
    assert (stamp.action, stamp.ok, stamp.command) == (
        "stamp-back",
        True,
        "alembic -c alembic.ini stamp 0002_add_notes_body",
    )
    assert (reapply.revision, reapply.action, reapply.ok) == (
        "0003_create_audit_log",
        "reapply",
        False,
    )
    assert reapply.command == "alembic -c alembic.ini upgrade head"
    assert reapply.error is not None and "table audit_log already exists" in reapply.error
    assert result.reapply_ok is False
    assert result.summary.startswith(
        "rehearsed 3 revisions: apply, undo, re-apply all clean; stamp-back-one re-apply of "
        "0003_create_audit_log failed (its upgrade is not idempotent): "
    )
    # Only the copy exists; the real database was never created.
    assert not real.parent.exists()
    assert Path(result.database) == (tmp_path / "work" / "rehearse-app.db").resolve()
    assert Path(result.log).is_file()
    data = result.to_dict()
    assert data["ok"] is True and data["reapply_ok"] is False
    assert [s["action"] for s in data["steps"]][-2:] == ["stamp-back", "reapply"]
    assert data["failed"] == [] and data["rehearsed"] == WEBAPP_REVISIONS


def test_a_database_at_0001_with_data_is_copied_and_left_byte_for_byte_unchanged(
    webapp: Path, tmp_path: Path
) -> None:
    real = tmp_path / "real.db"
    url = f"sqlite:///{real}"
    alembic(webapp, url, "upgrade", "0001_create_notes")
    with sqlite3.connect(real) as con:
        con.execute("INSERT INTO notes (id, title) VALUES (1, 'keep me')")
    con.close()
    before = sha256(real)
    siblings = sorted(p.name for p in tmp_path.iterdir())

    result = rehearse(target(webapp, url), workdir=tmp_path / "work")

    assert result.ok, result.summary
    assert result.start == ["0001_create_notes"]
    assert result.revisions == WEBAPP_REVISIONS[1:]
    assert actions(result)[:6] == round_trip(WEBAPP_REVISIONS[1]) + round_trip(WEBAPP_REVISIONS[2])
    assert sha256(real) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [*siblings, "work"]
    with sqlite3.connect(real) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0001_create_notes",)
        ]
    con.close()
    # The copy held the data and went through the batch-mode round trip of 0002 with it.
    copy = sqlite3.connect(result.database)
    try:
        assert copy.execute("SELECT id, title, body FROM notes").fetchall() == [
            (1, "keep me", None)
        ]
    finally:
        copy.close()


def test_per_command_mode_gives_the_same_result(webapp: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    url = f"sqlite:///{real}"
    alembic(webapp, url, "upgrade", "0002_add_notes_body")
    before = sha256(real)

    batch = rehearse(target(webapp, url), workdir=tmp_path / "batch")
    single = rehearse(target(webapp, url), workdir=tmp_path / "single", mode="per-command")

    assert single.mode == "per-command" and batch.mode == "batch"
    assert actions(single) == actions(batch)
    assert [s.command for s in single.steps] == [s.command for s in batch.steps]
    assert [s.error for s in single.steps] == [s.error for s in batch.steps]
    assert single.summary == batch.summary
    assert single.ok and single.revisions == ["0003_create_audit_log"]
    assert sha256(real) == before


def test_nothing_pending_still_checks_stamp_back_one(webapp: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    url = f"sqlite:///{real}"
    alembic(webapp, url, "upgrade", "head")

    result = rehearse(target(webapp, url), workdir=tmp_path / "work")

    assert result.ok and result.revisions == [] and result.failed == []
    assert [s.action for s in result.steps] == ["stamp-back", "reapply"]
    assert result.reapply_ok is False
    assert result.summary.startswith(
        "nothing pending (the database is at 0003_create_audit_log); stamp-back-one re-apply "
        "of 0003_create_audit_log failed"
    )


# -- fixture projects --------------------------------------------------------------------------


def test_a_downgrade_that_drops_the_column_before_its_index_fails_and_stops(
    tmp_path: Path,
) -> None:
    result = rehearse(
        target(FIXTURES / "rehearse_bad_downgrade", f"sqlite:///{tmp_path / 'real.db'}"),
        workdir=tmp_path / "work",
    )

    assert not result.ok
    assert result.rehearsed == ["b1_create_items"]
    assert actions(result) == [
        *round_trip("b1_create_items"),
        ("b2_items_sku", "upgrade", True),
        ("b2_items_sku", "downgrade", False),
    ]
    [failed] = result.failed
    assert failed.revision == "b2_items_sku" and failed.action == "downgrade"
    assert failed.command == "alembic -c alembic.ini downgrade b1_create_items"
    assert failed.error is not None
    assert "OperationalError" in failed.error and "ix_items_sku" in failed.error
    assert "\n" not in failed.error
    assert result.reapply_ok is None
    assert result.summary == (
        f"b2_items_sku: downgrade failed: {failed.error} "
        "(1 of 3 revisions rehearsed clean before it)"
    )
    assert result.to_dict()["failed"] == [failed.to_dict()]
    # the alembic output, traceback included, is kept next to the copy
    assert "ix_items_sku" in Path(result.log).read_text()


def test_re_applying_a_non_idempotent_head_after_stamp_back_is_a_finding(
    tmp_path: Path,
) -> None:
    result = rehearse(
        target(FIXTURES / "rehearse_not_idempotent", f"sqlite:///{tmp_path / 'real.db'}"),
        workdir=tmp_path / "work",
    )

    assert result.ok and result.failed == []
    assert result.rehearsed == ["n1_create_items", "n2_create_tags"]
    assert actions(result)[-2:] == [
        ("n2_create_tags", "stamp-back", True),
        ("n2_create_tags", "reapply", False),
    ]
    assert result.steps[-2].command == "alembic -c alembic.ini stamp n1_create_items"
    assert result.reapply_ok is False
    assert result.reapply_error is not None
    assert "table tags already exists" in result.reapply_error
    assert "stamp-back-one re-apply of n2_create_tags failed" in result.summary


def test_an_idempotent_head_re_applies_cleanly(tmp_path: Path) -> None:
    result = rehearse(
        target(FIXTURES / "rehearse_idempotent", f"sqlite:///{tmp_path / 'real.db'}"),
        workdir=tmp_path / "work",
    )

    assert result.ok and result.reapply_ok is True
    assert all(s.ok for s in result.steps) and len(result.steps) == 8
    assert result.summary == (
        "rehearsed 2 revisions: apply, undo, re-apply all clean; stamp-back-one re-apply clean"
    )


def test_a_downgrade_that_leaves_a_different_schema_fails(tmp_path: Path) -> None:
    result = rehearse(
        target(FIXTURES / "rehearse_drift", f"sqlite:///{tmp_path / 'real.db'}"),
        workdir=tmp_path / "work",
    )

    assert not result.ok
    [failed] = result.failed
    assert (failed.revision, failed.action) == ("d2_index_name", "downgrade")
    assert failed.error == (
        "the schema after it differs from before the upgrade: "
        "table items: index ix_items_created_at is missing"
    )


def test_branches_and_a_merge_are_undone_one_revision_at_a_time(tmp_path: Path) -> None:
    result = rehearse(
        target(FIXTURES / "rehearse_merge", f"sqlite:///{tmp_path / 'real.db'}"),
        workdir=tmp_path / "work",
    )

    assert result.ok and result.reapply_ok is True, result.summary
    assert sorted(result.rehearsed) == [
        "m1_create_a",
        "m2a_create_b",
        "m2b_create_c",
        "m3_merge",
    ]
    commands = [s.command.removeprefix("alembic -c alembic.ini ") for s in result.steps]
    # the second branch is undone alone, the merge is unmerged, the stamp-back names both
    assert any(c.endswith("@-1") and c.startswith("downgrade m2") for c in commands)
    assert commands[-2:] == ["stamp --purge m2a_create_b m2b_create_c", "upgrade head"]


# -- never the real database -------------------------------------------------------------------


def test_an_env_py_that_ignores_database_url_is_refused_before_it_connects(
    tmp_path: Path,
) -> None:
    project = copy_project(FIXTURES / "rehearse_idempotent", tmp_path / "project")
    real = tmp_path / "real.db"
    url = f"sqlite:///{real}"
    alembic(project, url, "upgrade", "i1_create_items")
    before = sha256(real)
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text().replace("sqlalchemy.url =", f"sqlalchemy.url = {url}"))
    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace('or os.environ.get("DATABASE_URL") or', "or"))

    result = rehearse(target(project, url), workdir=tmp_path / "work")

    assert not result.ok
    assert actions(result) == [("i2_create_tags", "upgrade", False)]
    error = result.failed[0].error
    assert error is not None and "refused a connection" in error and str(real) in error
    assert sha256(real) == before


def test_an_unsupported_or_unreachable_url_is_a_one_line_error(
    webapp: Path, tmp_path: Path
) -> None:
    with pytest.raises(GonogoError) as caught:
        rehearse(target(webapp, "mysql+pymysql://u:p@h/db"), workdir=tmp_path / "work")
    assert str(caught.value) == (
        "rehearse supports SQLite and PostgreSQL databases; mysql+pymysql is not"
    )
    for url in (
        "postgresql://app:secret@127.0.0.1:1/app",
        "postgres://app:secret@127.0.0.1:1/app",
    ):
        with pytest.raises(
            GonogoError,
            match=r"^cannot connect to PostgreSQL postgres(ql)?://app@127\.0\.0\.1:1/app: ",
        ) as caught:
            rehearse(target(webapp, url), workdir=tmp_path / "work")
        assert "secret" not in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "work").exists()


def test_bad_inputs_are_one_line_errors(webapp: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GonogoError, match=r"^cannot copy the SQLite database .*garbage\.db"):
        rehearse(target(webapp, f"sqlite:///{garbage}"), workdir=tmp_path / "w1")

    ahead = tmp_path / "ahead.db"
    with sqlite3.connect(ahead) as con:
        con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        con.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    con.close()
    with pytest.raises(GonogoError, match="9999_from_the_future, which is not in this"):
        rehearse(target(webapp, f"sqlite:///{ahead}"), workdir=tmp_path / "w2")

    with pytest.raises(GonogoError, match=r"has 2 heads .* alembic merge"):
        rehearse(
            target(FIXTURES / "two_heads", f"sqlite:///{tmp_path / 'x.db'}"),
            workdir=tmp_path / "w3",
        )

    broken = target(FIXTURES / "rehearse_idempotent", f"sqlite:///{tmp_path / 'y.db'}")
    broken = replace(broken, environ={**broken.environ, "PYTHONHOME": str(tmp_path / "nope")})
    with pytest.raises(GonogoError, match=r"^cannot start the rehearsal process: .*encodings"):
        rehearse(broken, workdir=tmp_path / "w4")


def test_a_symlink_where_the_copy_goes_is_replaced_not_written_through(
    webapp: Path, tmp_path: Path
) -> None:
    real = tmp_path / "app.db"
    alembic(webapp, f"sqlite:///{real}", "upgrade", "0001_create_notes")
    before = sha256(real)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "rehearse-app.db").symlink_to(real)

    result = rehearse(target(webapp, f"sqlite:///{real}"), workdir=tmp_path / "work")

    assert result.ok and result.start == ["0001_create_notes"]
    assert not Path(result.database).is_symlink()
    assert sha256(real) == before


def test_relative_sqlite_paths_are_taken_from_the_release_folder(
    webapp: Path, tmp_path: Path
) -> None:
    alembic(webapp, "sqlite:///./app.db", "upgrade", "0001_create_notes")
    before = sha256(webapp / "app.db")

    result = rehearse(target(webapp, "sqlite:///./app.db"), workdir=tmp_path / "work")

    assert result.start == ["0001_create_notes"] and result.ok
    assert sha256(webapp / "app.db") == before


# -- a step that hangs or kills its process ----------------------------------------------------

HANGING = '''"""sleeps"""

import time

revision = "{rev}"
down_revision = "i2_create_tags"
branch_labels = None
depends_on = None


def upgrade():
    {body}


def downgrade():
    pass
'''


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("time.sleep(60)", "timed out after 1.5 s"),
        ("import os; os._exit(7)", "alembic process died (exit status 7)"),
    ],
)
def test_a_step_that_hangs_or_dies_fails_with_a_reason(
    tmp_path: Path, body: str, expected: str
) -> None:
    project = copy_project(FIXTURES / "rehearse_idempotent", tmp_path / "project")
    versions = project / "migrations" / "versions"
    (versions / "i3_bad.py").write_text(HANGING.format(rev="i3_bad", body=body))
    real = tmp_path / "real.db"
    alembic(project, f"sqlite:///{real}", "upgrade", "i2_create_tags")

    result = rehearse(
        target(project, f"sqlite:///{real}"), workdir=tmp_path / "work", step_timeout=1.5
    )

    assert actions(result) == [("i3_bad", "upgrade", False)]
    assert result.failed[0].error == expected
    assert result.summary == f"i3_bad: upgrade failed: {expected}"


# -- helpers -----------------------------------------------------------------------------------


def test_error_line_picks_the_exception_not_sqlalchemys_trailer() -> None:
    stderr = """INFO  [alembic.runtime.migration] Running upgrade a -> b
Traceback (most recent call last):
  File "x.py", line 1, in <module>
    boom()
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) table t already exists
[SQL:
CREATE TABLE t (
	id INTEGER NOT NULL
)

]
(Background on this error at: https://sqlalche.me/e/20/e3q8)
"""
    assert _error_line(stderr) == (
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) table t already exists"
    )
    assert _error_line("INFO x\n  FAILED: Can't locate revision identified by 'x'\n") == (
        "FAILED: Can't locate revision identified by 'x'"
    )
    fatal = """Fatal Python error: init_fs_encoding: failed to get the Python codec
Python runtime state: core initialized
ModuleNotFoundError: No module named 'encodings'

Current thread 0x00007f (most recent call first):
  <no Python frame>
"""
    assert _error_line(fatal) == "ModuleNotFoundError: No module named 'encodings'"
    assert _error_line("something\nlast words\n\n") == "last words"
    assert _error_line("") is None


def test_schema_diff_names_what_is_missing_left_over_or_changed() -> None:
    before: Snapshot = {
        "table t": {"column a": "INTEGER NOT NULL PK1", "index ix_a": "(a)"},
        "table gone": {"column id": "INTEGER NULL"},
    }
    after: Snapshot = {
        "table t": {"column a": "BIGINT NOT NULL PK1", "column b": "TEXT NULL"},
        "table new": {"column id": "INTEGER NULL"},
    }
    assert _schema_diff(before, before) == []
    assert _schema_diff(before, after) == [
        "table gone is missing",
        "table new is left over",
        "table t: column a is BIGINT NOT NULL PK1, was INTEGER NOT NULL PK1",
        "table t: column b is left over",
        "1 more difference(s)",
    ]
