"""The ledger's own schema version, on real SQLite files and a real PostgreSQL server.

New ledgers are stamped; ledgers from before versioning are adopted with their data; older
revisions are upgraded by alembic inside gonogo; a newer ledger is refused with one line;
an up-to-date ledger opens with a single SELECT.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, text

from gonogo.errors import GonogoError
from gonogo.ledger import Ledger, chain, versioning
from gonogo.ledger.schema import VERSION_TABLE, metadata
from gonogo.ledger.store import LockRow, MigrationRow, _postgres_engine, _sqlite_engine, now_iso
from gonogo.ledger.versions.baseline import baseline_metadata

ACTOR = "tester"
SRC = Path(__file__).resolve().parents[2] / "src"


def fill(led: Ledger) -> list[dict[str, object]]:
    """A little of everything, so 'data kept' means something; returns the events."""
    led.start_run("r1", command="deploy", env="staging", actor=ACTOR, host="h", pid=1)
    ts = now_iso()
    led.try_lock(LockRow("staging", "r1", "deploy", ACTOR, "h", 1, ts, ts), actor=ACTOR)
    step = led.step_started("r1", 1, "build", "build it", actor=ACTOR)
    led.step_finished(step, status="ok", detail={"n": 1}, actor=ACTOR)
    led.record_migration(
        MigrationRow("staging", "r1", None, "0001", "ok", now_iso(), "f" * 64), actor=ACTOR
    )
    led.release_lock("staging", "r1", actor=ACTOR)
    led.finish_run("r1", status="succeeded", exit_code=0, summary="done", actor=ACTOR)
    return led.events()


def versions_in(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        return [str(v) for v in rows]


def sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


# Both backends run the same tests: a ledger at a URL plus a plain engine on it for "raw"
# edits that go around gonogo.


class Backend:
    def __init__(self, url: str, engine: Callable[[], Engine]) -> None:
        self.url = url
        self.make_engine = engine
        self.opened: list[Engine] = []

    def engine(self) -> Engine:
        made = self.make_engine()
        self.opened.append(made)
        return made

    def open(self, schema: versioning.Schema | None = None) -> Ledger:
        return Ledger(self.engine(), location=self.url, schema=schema)

    def close(self) -> None:
        for made in self.opened:
            made.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        made = Backend(f"sqlite:///{path}", lambda: _sqlite_engine(path))
    else:
        url = request.getfixturevalue("pg_url")
        made = Backend(url, lambda: _postgres_engine(url))
    try:
        yield made
    finally:
        made.close()


def raw_engine(backend: Backend) -> Engine:
    """An engine without gonogo's listeners, for edits around gonogo."""
    from gonogo.migrations.alembic import normalise_url

    made = create_engine(normalise_url(backend.url))
    backend.opened.append(made)
    return made


# -- revisions -----------------------------------------------------------------------------------


def test_head_and_known_revisions_match_the_shipped_scripts() -> None:
    from alembic.script import ScriptDirectory

    folder = versioning.VERSIONS_DIR
    scripts = ScriptDirectory(str(folder), version_locations=[str(folder / "revisions")])
    assert scripts.get_heads() == [versioning.HEAD]
    ordered = [s.revision for s in scripts.walk_revisions()]  # newest first
    assert tuple(reversed(ordered)) == versioning.KNOWN_REVISIONS
    assert versioning.KNOWN_REVISIONS[0] == versioning.BASELINE
    assert (folder / "env.py").is_file()


def test_every_revision_from_empty_gives_exactly_the_current_tables(backend: Backend) -> None:
    """The fast path (create_all + stamp) and alembic from empty must build the same ledger."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    led = backend.open(versioning.Schema(head_metadata=None))
    assert led.schema_change == f"created at {versioning.HEAD}"
    with led.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata
        )
    assert diff == []
    assert versions_in(led.engine) == [versioning.HEAD]
    led.close()


def test_current_tables_are_the_frozen_baseline_while_head_is_0001() -> None:
    # Adding a 0002 revision must change this test on purpose: from then on the tables
    # differ from the frozen baseline, and the upgrade tests check the result instead.
    assert versioning.HEAD == versioning.BASELINE
    base = baseline_metadata()
    assert sorted(base.tables) == sorted(metadata.tables)
    for name, table in metadata.tables.items():
        old = base.tables[name]
        assert [(c.name, str(c.type), c.nullable, c.primary_key) for c in table.c] == [
            (c.name, str(c.type), c.nullable, c.primary_key) for c in old.c
        ], name


# -- opening -------------------------------------------------------------------------------------


def test_new_ledger_is_created_and_stamped_head(backend: Backend) -> None:
    led = backend.open()
    assert led.schema_change == f"created at {versioning.HEAD}"
    assert versions_in(led.engine) == [versioning.HEAD]
    names = set(inspect(led.engine).get_table_names())
    assert set(metadata.tables) <= names
    # never alembic's default table: an app's own alembic may share the database
    assert "alembic_version" not in names
    led.close()
    again = backend.open()
    assert again.schema_change is None
    again.close()


def test_up_to_date_ledger_opens_with_one_select_and_no_ddl(backend: Backend) -> None:
    backend.open().close()
    engine = backend.engine()
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _log(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    led = Ledger(engine, location=backend.url)
    assert led.schema_change is None
    ours = [s for s in seen if VERSION_TABLE in s or s.split()[0].upper() != "SELECT"]
    # SQLite: the BEGIN gonogo issues for a read; PostgreSQL: the driver's own set-up
    # (SHOW ...) when the first connection is made. Nothing that writes.
    writes = [s for s in ours if s.split()[0].upper() in {"CREATE", "ALTER", "INSERT", "DROP"}]
    assert writes == []
    assert [s for s in ours if VERSION_TABLE in s] == [
        f"SELECT {VERSION_TABLE}.version_num FROM {VERSION_TABLE}"
    ]
    led.close()


def test_opening_an_up_to_date_ledger_is_fast_and_never_imports_alembic(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(None, path).close()
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from gonogo.ledger import Ledger
        best = 1e9
        for _ in range(20):
            start = time.perf_counter()
            Ledger.open(None, Path({str(path)!r})).close()
            best = min(best, time.perf_counter() - start)
        print(best, "alembic" in sys.modules)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    best, imported = proc.stdout.split()
    assert imported == "False"
    assert float(best) < 0.05, f"opening took {float(best) * 1000:.1f} ms"


def test_dry_run_memory_ledger_is_current_without_alembic() -> None:
    led = Ledger.open("sqlite://", Path("unused"))
    assert led.location == "memory"
    assert versions_in(led.engine) == [versioning.HEAD]
    led.record("x", actor=ACTOR)
    assert led.verify_chain() == (True, None, "intact")
    led.close()


# -- ledgers made before versioning --------------------------------------------------------------


def unversion(backend: Backend) -> None:
    """Turn a ledger into what `create_all` used to leave: the same tables, no version."""
    sql(raw_engine(backend), f"DROP TABLE {VERSION_TABLE}")


def test_ledger_from_before_versioning_is_stamped_and_keeps_everything(backend: Backend) -> None:
    led = backend.open()
    events = fill(led)
    led.close()
    unversion(backend)

    again = backend.open()
    assert again.schema_change is not None
    assert again.schema_change.startswith(f"stamped {versioning.BASELINE}")
    assert versions_in(again.engine) == [versioning.HEAD]
    assert again.events() == events
    assert again.steps("r1")[0]["detail"] == {"n": 1}
    assert again.migrations_since("staging", None)[0].sql_sha256 == "f" * 64
    report = again.audit()
    assert report.intact, report.message()
    again.record("after.upgrade", actor=ACTOR)
    assert again.verify_chain() == (True, None, "intact")
    again.close()


def test_early_ledger_missing_a_table_and_a_nullable_column_is_completed(tmp_path: Path) -> None:
    """gonogo's first builds had no approvals table and no migrations.sql_sha256."""
    path = tmp_path / "ledger.db"
    led = Ledger.open(None, path)
    events = fill(led)
    led.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"DROP TABLE {VERSION_TABLE}")
        conn.execute("DROP TABLE approvals")
        conn.execute("ALTER TABLE migrations DROP COLUMN sql_sha256")
    finally:
        conn.close()

    again = Ledger.open(None, path)
    try:
        assert again.schema_change is not None and "stamped" in again.schema_change
        columns = {c["name"] for c in inspect(again.engine).get_columns("migrations")}
        assert "sql_sha256" in columns
        assert "approvals" in inspect(again.engine).get_table_names()
        (mig,) = again.migrations_since("staging", None)
        assert (mig.to_revision, mig.sql_sha256) == ("0001", None)
        assert again.events() == events
        assert again.verify_chain() == (True, None, "intact")
    finally:
        again.close()


def test_a_table_of_another_application_is_refused(backend: Backend) -> None:
    sql(raw_engine(backend), "CREATE TABLE runs (id INTEGER PRIMARY KEY, title TEXT)")
    with pytest.raises(GonogoError) as err:
        backend.open()
    message = err.value.message
    assert "table runs has columns title that a gonogo ledger does not" in message
    assert "another application's database" in message
    # nothing was created next to it
    assert set(inspect(raw_engine(backend)).get_table_names()) == {"runs"}


def test_an_sqlite_database_of_another_application_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(GonogoError) as err:
        Ledger.open(None, path)
    assert err.value.message == (
        f"{path} is not a gonogo ledger: it is another application's SQLite database "
        "(tables users); move it out of the way, or point GONOGO_LEDGER_URL at a ledger of "
        "its own"
    )
    assert path.read_bytes() == before  # not even switched to WAL


def test_a_file_that_is_not_a_database_is_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"PK\x03\x04 a zip, say" * 100)
    with pytest.raises(GonogoError) as err:
        Ledger.open(None, path)
    assert err.value.message.startswith(f"{path} is not a gonogo ledger (it is not an SQLite")
    assert "move it out of the way" in err.value.message


# -- newer and older revisions -------------------------------------------------------------------


def test_ledger_at_a_newer_revision_is_a_one_line_error(backend: Backend) -> None:
    led = backend.open()
    fill(led)
    led.close()
    sql(raw_engine(backend), f"UPDATE {VERSION_TABLE} SET version_num = '0099'")
    with pytest.raises(GonogoError) as err:
        backend.open()
    assert err.value.message == (
        f"ledger {backend.url} is at schema version 0099, newer than this gonogo "
        f"(knows up to {versioning.HEAD}); upgrade gonogo"
    )
    assert err.value.exit_code == 1
    assert versions_in(raw_engine(backend)) == ["0099"]


def test_newer_ledger_through_the_cli_is_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gonogo import cli

    (tmp_path / "gonogo.toml").write_text(
        '[project]\nname = "x"\n\n[environments.staging]\nprovider = "local"\nport = 18991\n'
    )
    path = tmp_path / ".gonogo" / "ledger.db"
    Ledger.open(None, path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0042'")
    conn.close()
    assert cli.main(["history", "staging", "-C", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "is at schema version 0042, newer than this gonogo" in err[0]
    assert "upgrade gonogo" in err[0]


REVISION_0002 = '''
"""A test-only second revision: a nullable column and an index, as real upgrades would."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    op.create_index("ix_events_kind", "events", ["kind"])
    {extra}


def downgrade() -> None:
    raise NotImplementedError
'''


def newer_scripts(tmp_path: Path, extra: str = "pass") -> versioning.Schema:
    """The shipped revisions plus a test-only 0002 in a folder of their own."""
    folder = tmp_path / "versions with space"
    shutil.copytree(versioning.VERSIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "revisions" / "v0002_test.py").write_text(REVISION_0002.replace("{extra}", extra))
    return versioning.Schema(
        versions_dir=folder, head="0002", known=("0001", "0002"), head_metadata=None
    )


def test_older_revision_is_upgraded_keeping_history_then_old_gonogo_refuses_it(
    backend: Backend, tmp_path: Path
) -> None:
    led = backend.open()
    events = fill(led)
    led.close()

    upgraded = backend.open(newer_scripts(tmp_path))
    assert upgraded.schema_change == "upgraded from 0001 to 0002"
    assert versions_in(upgraded.engine) == ["0002"]
    columns = {c["name"] for c in inspect(upgraded.engine).get_columns("events")}
    assert "note" in columns
    # this gonogo reads the columns it knows; the new one is there for the newer gonogo
    assert upgraded.events() == events
    assert upgraded.steps("r1")[0]["detail"] == {"n": 1}
    upgraded.record("after.upgrade", actor=ACTOR)
    assert upgraded.verify_chain() == (True, None, "intact")
    upgraded.close()

    # This gonogo (HEAD 0001) opening the ledger a newer gonogo upgraded: one clear line.
    with pytest.raises(GonogoError, match=r"is at schema version 0002, newer than this gonogo"):
        backend.open()


def test_ledger_from_before_versioning_goes_straight_to_a_newer_head(
    backend: Backend, tmp_path: Path
) -> None:
    led = backend.open()
    events = fill(led)
    led.close()
    unversion(backend)
    upgraded = backend.open(newer_scripts(tmp_path))
    assert (
        upgraded.schema_change
        == "stamped 0001 (made before schema versioning) and upgraded to 0002"
    )
    assert versions_in(upgraded.engine) == ["0002"]
    assert len(upgraded.events()) == len(events)
    upgraded.close()


def test_a_failing_upgrade_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    led = backend.open()
    events = fill(led)
    led.close()
    schema = newer_scripts(tmp_path, extra='raise RuntimeError("disk on fire")')
    with pytest.raises(GonogoError) as err:
        backend.open(schema)
    assert "from 0001 to schema version 0002 failed, nothing was changed" in err.value.message
    assert "RuntimeError: disk on fire" in err.value.message
    raw = raw_engine(backend)
    assert versions_in(raw) == ["0001"]
    assert "note" not in {c["name"] for c in inspect(raw).get_columns("events")}
    same = backend.open()
    assert same.events() == events
    same.close()


# -- concurrency ---------------------------------------------------------------------------------

OPENER = """
import sys
from pathlib import Path
from gonogo.ledger import Ledger
led = Ledger.open(sys.argv[1] or None, Path(sys.argv[2]))
for i in range(int(sys.argv[3])):
    led.record("tick", actor=sys.argv[4], payload={"i": i})
print(led.schema_change)
led.close()
"""


def test_many_processes_opening_a_new_ledger_at_once_create_it_once(backend: Backend) -> None:
    url = backend.url if backend.url.startswith("postgresql") else ""
    path = backend.url.removeprefix("sqlite:///") if not url else "unused"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                OPENER,
                url,
                path,
                "5",
                f"p{i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(6)
    ]
    outs = []
    deadline = time.monotonic() + 60
    for proc in procs:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.returncode == 0, err
        outs.append(out.strip())
    assert outs.count(f"created at {versioning.HEAD}") == 1
    assert outs.count("None") == 5
    led = backend.open()
    assert len(led.events()) == 30
    assert led.verify_chain() == (True, None, "intact")
    assert versions_in(led.engine) == [versioning.HEAD]
    assert led.events()[0]["prev_hash"] == chain.GENESIS
    led.close()
