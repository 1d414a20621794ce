"""`rehearse` on PostgreSQL: a scratch database on the same server, never the real one.

Everything runs against the real test server (`pg_server`, `pg_url`). After every test the
server must hold no ``gonogo_rehearse_*`` database: the scratch database is dropped however
the rehearsal ends.

Fixture projects: the example app; ``rehearse_bad_downgrade`` and ``rehearse_drift`` (see
test_rehearse.py), whose mistakes also fail on PostgreSQL; ``pg_enum_leftover``: revision 2's
downgrade drops its table but leaves the enum type the table's create made.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gonogo.errors import GonogoError
from gonogo.migrations import scratch_pg
from gonogo.migrations.alembic import normalise_url
from gonogo.migrations.pending import MigrationTarget
from gonogo.migrations.rehearse import Rehearsal, rehearse
from pg_server import PgServer

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "migration_fixtures"
EXAMPLE_APP = REPO_ROOT / "examples" / "webapp"
WEBAPP_REVISIONS = ["0001_create_notes", "0002_add_notes_body", "0003_create_audit_log"]
PASSWORD = "pw-9d1e-hunter2"  # the server trusts everyone: the password is only carried
DUMPED = "pg_dump --schema-only of the database, with its alembic_version rows"


def target(cwd: Path, url: str) -> MigrationTarget:
    return MigrationTarget(
        cwd=cwd,
        environ={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url},
        database_url=url,
        ini="alembic.ini",
    )


def with_password(url: str) -> str:
    return url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)


def database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def actions(result: Rehearsal) -> list[tuple[str, str, bool]]:
    return [(s.revision, s.action, s.ok) for s in result.steps]


def alembic(cwd: Path, url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", *args],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=60,
    )


def state(pg: PgServer, url: str) -> tuple[object, ...]:
    """Everything the rehearsal must leave alone: schema, alembic_version, rows."""
    db = database(url)
    has_versions = pg.execute("SELECT to_regclass('alembic_version') IS NOT NULL", db)[0][0]
    versions = pg.execute("SELECT version_num FROM alembic_version", db) if has_versions else []
    has_notes = pg.execute("SELECT to_regclass('notes') IS NOT NULL", db)[0][0]
    notes = pg.execute("SELECT * FROM notes ORDER BY id", db) if has_notes else []
    return (scratch_pg.snapshot(url), versions, notes)


def leftovers(pg: PgServer) -> list[str]:
    return sorted(d for d in pg.databases() if d.startswith(scratch_pg.PREFIX))


@pytest.fixture(autouse=True)
def no_scratch_database_survives(pg_server: PgServer) -> Iterator[None]:
    assert leftovers(pg_server) == []
    yield
    assert leftovers(pg_server) == [], "a scratch database was left behind"


@pytest.fixture
def webapp(tmp_path: Path) -> Path:
    return Path(
        shutil.copytree(
            EXAMPLE_APP,
            tmp_path / "webapp",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.db"),
        )
    )


def without_pg_dump(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str | None) -> Path:
    """gonogo's PATH holds only a fake pg_dump (``script``) or none at all."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if script is not None:
        fake = folder / "pg_dump"
        fake.write_text(script)
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(folder))
    return folder


# -- the example app ---------------------------------------------------------------------------


def test_example_app_rehearses_clean_from_an_empty_database(
    pg_server: PgServer, pg_url: str, webapp: Path, tmp_path: Path
) -> None:
    url = with_password(pg_url)
    before = state(pg_server, pg_url)

    result = rehearse(target(webapp, url), workdir=tmp_path / "work")

    assert result.ok, result.summary
    assert result.basis == DUMPED
    assert result.start == [] and result.revisions == WEBAPP_REVISIONS
    assert result.rehearsed == WEBAPP_REVISIONS
    assert [a for _, a, _ in actions(result)] == [
        *["upgrade", "downgrade", "reupgrade"] * 3,
        "stamp-back",
        "reapply",
    ]
    reapply = result.steps[-1]
    assert reapply.error is not None and 'relation "audit_log" already exists' in reapply.error
    assert result.reapply_ok is False
    host = pg_url.split("@", 1)[1].rsplit("/", 1)[0]
    assert result.database.startswith(f"postgresql://postgres@{host}/{scratch_pg.PREFIX}")
    assert state(pg_server, pg_url) == before  # still empty: no table, no alembic_version
    dumped = json.dumps(result.to_dict()) + Path(result.log).read_text()
    assert PASSWORD not in dumped
    assert result.to_dict()["basis"] == DUMPED and result.to_dict()["warnings"] == []


def test_a_database_at_0001_with_a_row_is_rehearsed_on_a_schema_copy_and_left_unchanged(
    pg_server: PgServer, pg_url: str, webapp: Path, tmp_path: Path
) -> None:
    alembic(webapp, pg_url, "upgrade", "0001")
    pg_server.execute("INSERT INTO notes (id, title) VALUES (7, 'keep me')", database(pg_url))
    before = state(pg_server, pg_url)

    result = rehearse(target(webapp, with_password(pg_url)), workdir=tmp_path / "work")

    assert result.ok, result.summary
    assert result.basis == DUMPED
    assert result.start == ["0001_create_notes"]
    assert result.revisions == WEBAPP_REVISIONS[1:] == result.rehearsed
    assert result.steps[1].command == "alembic -c alembic.ini downgrade 0001_create_notes"
    assert state(pg_server, pg_url) == before
    assert before[1:] == ([("0001_create_notes",)], [(7, "keep me")])


def test_drift_made_by_hand_is_rehearsed_and_the_alembic_fallback_says_it_is_not(
    pg_server: PgServer,
    pg_url: str,
    webapp: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Someone created audit_log by hand; revision 0003 creates it too.
    alembic(webapp, pg_url, "upgrade", "0002")
    pg_server.execute("CREATE TABLE audit_log (id int PRIMARY KEY)", database(pg_url))
    before = state(pg_server, pg_url)

    copied = rehearse(target(webapp, pg_url), workdir=tmp_path / "copied")

    assert copied.basis == DUMPED and not copied.ok
    assert actions(copied) == [("0003_create_audit_log", "upgrade", False)]
    assert 'relation "audit_log" already exists' in (copied.failed[0].error or "")

    without_pg_dump(monkeypatch, tmp_path, None)
    rebuilt = rehearse(target(webapp, pg_url), workdir=tmp_path / "rebuilt")

    assert rebuilt.ok, rebuilt.summary  # the revisions' schema has no hand-made table
    assert rebuilt.start == ["0002_add_notes_body"]
    assert rebuilt.basis == (
        "alembic upgrade 0002_add_notes_body on an empty database, not a copy of the schema "
        "(pg_dump was not found on PATH)"
    )
    assert rebuilt.to_dict()["basis"] == rebuilt.basis
    assert "schema copy: pg_dump was not found on PATH" in Path(rebuilt.log).read_text()
    assert state(pg_server, pg_url) == before


def test_a_pg_dump_that_fails_falls_back_and_never_sees_the_password(
    pg_server: PgServer,
    pg_url: str,
    webapp: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = tmp_path / "pg_dump-saw.txt"
    script = f"""#!/bin/sh
echo "$@" > {seen}
echo "PGPASSWORD=$PGPASSWORD" >> {seen}
echo "pg_dump: error: aborting because of server version mismatch" >&2
echo "pg_dump: detail: server version: 99.0; pg_dump version: 15.0" >&2
exit 1
"""
    without_pg_dump(monkeypatch, tmp_path, script)

    result = rehearse(target(webapp, with_password(pg_url)), workdir=tmp_path / "work")

    assert result.ok, result.summary
    assert result.basis == (
        "an empty database, not a copy of the schema (pg_dump failed: pg_dump: error: aborting "
        "because of server version mismatch; pg_dump: detail: server version: 99.0; pg_dump "
        "version: 15.0)"
    )
    argv, env = seen.read_text().splitlines()
    assert "--schema-only" in argv and PASSWORD not in argv
    assert env == f"PGPASSWORD={PASSWORD}"


def test_a_dump_that_does_not_load_is_rolled_back_and_rebuilt_with_alembic(
    pg_server: PgServer,
    pg_url: str,
    webapp: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alembic(webapp, pg_url, "upgrade", "0001")
    # Half of it loads; had that half stayed, alembic upgrade 0001 would find notes there.
    without_pg_dump(
        monkeypatch,
        tmp_path,
        "#!/bin/sh\necho 'CREATE TABLE notes (x int);'\necho 'CREATE EXTENSION no_such_ext;'\n",
    )

    result = rehearse(target(webapp, pg_url), workdir=tmp_path / "work")

    assert result.ok, result.summary
    assert result.start == ["0001_create_notes"]
    assert result.basis == (
        "alembic upgrade 0001_create_notes on an empty database, not a copy of the schema "
        '(pg_dump\'s output did not load: extension "no_such_ext" is not available)'
    )


# -- revisions that fail on PostgreSQL ---------------------------------------------------------


def test_a_downgrade_that_drops_the_column_before_its_index_fails(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    url = normalise_url(pg_url)  # the fixtures' env.py takes the URL as it is
    result = rehearse(target(FIXTURES / "rehearse_bad_downgrade", url), workdir=tmp_path / "w")

    assert not result.ok and result.rehearsed == ["b1_create_items"]
    assert actions(result)[-2:] == [
        ("b2_items_sku", "upgrade", True),
        ("b2_items_sku", "downgrade", False),
    ]
    # On PostgreSQL the index goes with its column: drop_index then finds nothing to drop.
    error = result.failed[0].error or ""
    assert "UndefinedObject" in error and 'index "ix_items_sku" does not exist' in error
    assert state(pg_server, pg_url) == ({"schema public": {}}, [], [])


@pytest.mark.parametrize(
    ("fixture", "revision", "difference"),
    [
        ("pg_enum_leftover", "e2_create_tags", "type tag_kind is left over"),
        ("rehearse_drift", "d2_index_name", "table items: index ix_items_created_at is missing"),
    ],
)
def test_a_downgrade_that_leaves_a_different_schema_fails(
    pg_url: str, tmp_path: Path, fixture: str, revision: str, difference: str
) -> None:
    result = rehearse(target(FIXTURES / fixture, normalise_url(pg_url)), workdir=tmp_path / "w")

    assert not result.ok
    [failed] = result.failed
    assert (failed.revision, failed.action) == (revision, "downgrade")
    assert failed.error == f"the schema after it differs from before the upgrade: {difference}"


# -- never the real database, never a leftover -------------------------------------------------

SLEEPING = '''"""sleeps on the server"""

from alembic import op

revision = "i3_sleep"
down_revision = "i2_create_tags"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("SELECT pg_sleep(60)")


def downgrade():
    pass
'''


def test_a_step_that_times_out_on_the_server_fails_and_the_scratch_database_still_goes(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    project = Path(
        shutil.copytree(
            FIXTURES / "rehearse_idempotent",
            tmp_path / "project",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    )
    (project / "migrations" / "versions" / "i3_sleep.py").write_text(SLEEPING)
    url = normalise_url(pg_url)
    alembic(project, url, "upgrade", "i2_create_tags")
    before = state(pg_server, pg_url)
    started = time.monotonic()

    result = rehearse(target(project, url), workdir=tmp_path / "work", step_timeout=1.5)

    assert actions(result) == [("i3_sleep", "upgrade", False)]
    assert result.failed[0].error == "timed out after 1.5 s"
    # The killed process's backend was still sleeping: DROP DATABASE ... WITH (FORCE) ended it.
    assert time.monotonic() - started < 20
    assert state(pg_server, pg_url) == before


def test_an_env_py_that_ignores_database_url_is_refused_before_it_connects(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    project = Path(
        shutil.copytree(
            FIXTURES / "rehearse_idempotent",
            tmp_path / "project",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    )
    url = normalise_url(pg_url)
    alembic(project, url, "upgrade", "i1_create_items")
    before = state(pg_server, pg_url)
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text().replace("sqlalchemy.url =", f"sqlalchemy.url = {url}"))
    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace('or os.environ.get("DATABASE_URL") or', "or"))

    result = rehearse(target(project, url), workdir=tmp_path / "work")

    assert actions(result) == [("i2_create_tags", "upgrade", False)]
    error = result.failed[0].error or ""
    assert "refused a connection to postgresql database" in error
    assert f"{database(pg_url)} on 127.0.0.1" in error and scratch_pg.PREFIX in error
    assert state(pg_server, pg_url) == before


def test_an_error_after_the_scratch_database_exists_still_drops_it(
    pg_server: PgServer, pg_url: str, webapp: Path, tmp_path: Path
) -> None:
    pg_server.execute(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        "INSERT INTO alembic_version VALUES ('9999_from_the_future')",
        database(pg_url),
    )
    with pytest.raises(GonogoError, match="9999_from_the_future, which is not in this"):
        rehearse(target(webapp, pg_url), workdir=tmp_path / "work")


def test_a_role_without_createdb_gets_a_one_line_error_naming_the_grant(
    pg_server: PgServer, pg_url: str, webapp: Path, tmp_path: Path
) -> None:
    role = f"no_createdb_{database(pg_url)}"
    pg_server.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}'")
    url = pg_url.replace("://postgres@", f"://{role}:{PASSWORD}@", 1)

    with pytest.raises(GonogoError) as caught:
        rehearse(target(webapp, url), workdir=tmp_path / "work")

    message = str(caught.value)
    assert message.startswith("cannot create a scratch database to rehearse on: role ")
    assert f'grant it with ALTER ROLE "{role}" CREATEDB' in message
    assert "\n" not in message and PASSWORD not in message
    assert not (tmp_path / "work").exists()


def test_a_scratch_database_that_cannot_be_dropped_is_a_warning_not_a_lost_result(
    pg_server: PgServer, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = normalise_url(pg_url)
    project = FIXTURES / "rehearse_idempotent"
    alembic(project, url, "upgrade", "head")

    def refuse(conn: object, name: str, *, force: bool | None = None) -> None:
        raise psycopg.errors.ObjectInUse(f'database "{name}" is being accessed by other users')

    monkeypatch.setattr(scratch_pg, "_drop_database", refuse)
    result = rehearse(target(project, url), workdir=tmp_path / "work")
    monkeypatch.undo()

    [name] = leftovers(pg_server)
    pg_server.execute(f'DROP DATABASE "{name}"')
    assert result.ok and result.reapply_ok is True
    [warning] = result.warnings
    assert warning == (
        f'the scratch database {name} could not be dropped (database "{name}" is being '
        f'accessed by other users); drop it by hand: DROP DATABASE "{name}"'
    )
    assert result.summary.endswith(f"; warning: {warning}")
    assert result.to_dict()["warnings"] == [warning]


def test_before_postgresql_13_the_sessions_are_ended_then_the_database_dropped(
    pg_server: PgServer,
) -> None:
    name = pg_server.create_database(prefix="gonogo_rehearse_old")
    still_in_it = psycopg.connect(pg_server.url(name))  # DROP DATABASE alone would refuse
    try:
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            scratch_pg._drop_database(admin, name, force=False)
    finally:
        still_in_it.close()
    assert name not in pg_server.databases()


def test_per_command_mode_gives_the_same_result(pg_url: str, tmp_path: Path) -> None:
    url = normalise_url(pg_url)
    project = FIXTURES / "rehearse_idempotent"
    alembic(project, url, "upgrade", "i1_create_items")

    batch = rehearse(target(project, url), workdir=tmp_path / "batch")
    single = rehearse(target(project, url), workdir=tmp_path / "single", mode="per-command")

    assert batch.ok and batch.reapply_ok is True, batch.summary
    assert actions(single) == actions(batch) and len(batch.steps) == 5
    assert [s.error for s in single.steps] == [s.error for s in batch.steps]
    assert single.summary == batch.summary and single.basis == batch.basis == DUMPED
