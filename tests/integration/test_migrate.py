"""`gonogo migrate ENV status / plan / approve / apply` on the example app, through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import DROP_BODY, INDEX_TITLE_DOWN, INDEX_TITLE_UP, revision_file

pytestmark = pytest.mark.integration


SECOND_HEAD = revision_file(
    "0004_other_branch", "a branch nobody merged", INDEX_TITLE_UP, INDEX_TITLE_DOWN
)


def migrated(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)


def test_status_and_plan_of_a_fresh_database(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    status = project.json("migrate", "staging", "status", check=0)
    assert status["current"] == []
    assert status["heads"] == ["0003_create_audit_log"]
    assert status["pending"] == [
        "0001_create_notes",
        "0002_add_notes_body",
        "0003_create_audit_log",
    ]
    plan = project.json("migrate", "staging", "plan", check=0)
    assert [r["revision"] for r in plan["revisions"]] == status["pending"]
    assert all(r["class"] == "lossy" for r in plan["revisions"])
    assert plan["sql_basis"] == "offline SQL" and "CREATE TABLE notes" in plan["sql"]
    approved = project.json("migrate", "staging", "approve", check=0)
    assert approved["sql_sha256"] == plan["sql_sha256"]


def test_a_lossy_batch_migration_is_planned_approved_and_applied(project: Any) -> None:
    migrated(project)
    (project.root / "migrations" / "versions" / "0004_drop_body.py").write_text(DROP_BODY)
    project.commit("WO-8: drop notes.body")
    project.gonogo("deploy", "staging", check=0)

    plan = project.json("migrate", "staging", "plan", check=0)
    (rev,) = plan["revisions"]
    assert rev["revision"] == "0004_drop_body" and rev["class"] == "lossy"
    assert "notes.body" in rev["reason"]
    # SQLite batch operations cannot be rendered offline: the scripts are what is approved.
    assert plan["sql_basis"].startswith("revision scripts")
    assert "0004_drop_body" in plan["sql"]

    project.gonogo("migrate", "staging", "apply", check=2)  # not approved yet
    project.gonogo("migrate", "staging", "approve", "--note", "body is unused", check=0)
    doc = project.json("migrate", "staging", "apply", check=0)
    assert doc["after"] == ["0004_drop_body"]
    assert project.json("migrate", "staging", "status", check=0)["pending"] == []


def test_two_heads_are_no_go_with_the_merge_command(project: Any) -> None:
    migrated(project)
    versions = project.root / "migrations" / "versions"
    (versions / "0004_drop_body.py").write_text(DROP_BODY)
    (versions / "0004_other_branch.py").write_text(SECOND_HEAD)
    project.commit("WO-9: two branches")
    project.gonogo("deploy", "staging", check=0)
    status = project.gonogo("migrate", "staging", "status", check=2)
    assert "alembic merge" in status.stdout + status.stderr
    refused = project.gonogo("migrate", "staging", "apply", check=1)
    assert "2 heads" in refused.stderr and "alembic merge" in refused.stderr


def test_verify_checks_the_database_is_at_the_releases_head(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    behind = project.gonogo("verify", "staging", check=2)
    assert "base (empty)" in behind.stderr and "0003_create_audit_log" in behind.stderr
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    doc = project.json("verify", "staging", check=0)
    assert doc["schema"]["ok"] is True
    assert doc["schema"]["current"] == ["0003_create_audit_log"]


def test_rehearse_on_a_copy_never_touches_the_database(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    db = project.root / ".gonogo" / "local" / "staging" / "app.db"
    before = db.read_bytes() if db.exists() else None  # the running app may have created it
    doc = project.json("migrate", "staging", "rehearse", check=0)
    assert doc["ok"] is True
    assert doc["revisions"] == ["0001_create_notes", "0002_add_notes_body", "0003_create_audit_log"]
    actions = [s["action"] for s in doc["steps"]][:3]
    assert actions == ["upgrade", "downgrade", "reupgrade"]
    assert (db.read_bytes() if db.exists() else None) == before  # the real one is untouched
    evidence = project.root / doc["evidence"] if not doc["evidence"].startswith("/") else None
    folder = evidence or Path(doc["evidence"])
    assert (folder / "rehearsal.json").is_file()
    assert not list(folder.glob("*.db"))  # no copy of the data in the evidence


BROKEN_0004 = '''"""a revision that fails half way"""
from alembic import op

revision = "0004_broken"
down_revision = "0003_create_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade() -> None:
    pass
'''


def test_a_failing_revision_stops_apply_and_says_where_the_database_is(project: Any) -> None:
    (project.root / "migrations" / "versions" / "0004_broken.py").write_text(BROKEN_0004)
    project.commit("WO-11: a broken migration")
    project.gonogo(
        "deploy", "staging", "--override", "rollback-feasible", "--reason", "test fixture", check=0
    )
    project.gonogo("migrate", "staging", "approve", check=0)
    proc = project.gonogo("migrate", "staging", "apply", check=3)
    message = proc.stderr.strip()
    assert "migration 0004_broken failed" in message
    assert "The database is at 0003_create_audit_log" in message
    applied = "applied before it: 0001_create_notes, 0002_add_notes_body, 0003_create_audit_log"
    assert applied in message
    status = project.json("migrate", "staging", "status", check=0)
    assert status["current"] == ["0003_create_audit_log"] and status["pending"] == ["0004_broken"]
    history = project.json("history", "staging", check=0)
    assert history["runs"][0]["command"] == "migrate apply"
    assert history["runs"][0]["status"] == "failed"
    assert "0004_broken" in status["last_problem"]["message"]
    env = project.json("status", "staging", check=0)["environments"][0]
    assert env["database"]["revisions"] == ["0003_create_audit_log"]
    assert env["database"]["problem"]["status"] == "failed"


SLOW_0004 = '''"""an index that takes long to build"""
import os
import time
from pathlib import Path

from alembic import context, op

revision = "0004_slow_index"
down_revision = "0003_create_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The test drops slow.flag beside the database to hold the migration here.
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("sqlite:///"):
        held = (Path(url.removeprefix("sqlite:///")).parent / "slow.flag").exists()
        if held and not context.is_offline_mode():  # not while rendering the SQL
            time.sleep(60)
    op.create_index("ix_notes_title", "notes", ["title"])


def downgrade() -> None:
    op.drop_index("ix_notes_title", table_name="notes")
'''


def test_a_crash_midway_is_visible_in_status_and_history(project: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from support import ledger_rows

    migrated(project)
    (project.root / "migrations" / "versions" / "0004_slow_index.py").write_text(SLOW_0004)
    project.commit("WO-12: slow index")
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    (project.root / ".gonogo" / "local" / "staging" / "slow.flag").write_text("hold\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gonogo", "migrate", "staging", "apply"],
        cwd=project.root, env=project.base_env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ledger_rows(
            project, "SELECT * FROM steps WHERE name = 'migrate' AND status = 'running'"
        ):
            assert time.monotonic() < deadline, "migrate apply never started its step"
            assert proc.poll() is None, "migrate apply ended early"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the machine "crashes": nothing gets recorded
        proc.wait(timeout=30)

    env = project.json("status", "staging", check=0)["environments"][0]
    problem = env["database"]["problem"]
    assert problem["status"] == "crashed" and "0004_slow_index" in problem["failed_step"]
    assert env["lock"]["stale"] is True
    text = project.gonogo("status", "staging", check=0).stdout
    assert "crashed" in text and "0004_slow_index" in text
    history = project.json("history", "staging", check=0)
    assert history["runs"][0]["command"] == "migrate apply"
    assert history["runs"][0]["status"] == "crashed"
    status = project.json("migrate", "staging", "status", check=0)
    assert status["last_problem"]["status"] == "crashed"
    assert status["current"] == ["0003_create_audit_log"]

    # Clearing the lock records the dead run as interrupted; the problem stays visible.
    project.gonogo("unlock", "staging", "--reason", "machine crashed", check=0)
    again = project.json("migrate", "staging", "status", check=0)
    assert again["last_problem"]["status"] == "interrupted"
    (project.root / ".gonogo" / "local" / "staging" / "slow.flag").unlink()
    project.gonogo("migrate", "staging", "apply", check=0)
    assert project.json("migrate", "staging", "status", check=0)["last_problem"] is None


def _db_revision(project: Any) -> list[str]:
    import sqlite3

    path = project.root / ".gonogo" / "local" / "staging" / "app.db"
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


def _deploy_anyway(project: Any) -> None:
    project.gonogo(
        "deploy", "staging", "--override", "rollback-feasible", "--reason", "bad input test",
        check=0,
    )


@pytest.mark.parametrize("breakage", ["ahead", "broken-file", "no-ini", "app-import"])
def test_bad_migration_input_is_one_line_and_applies_nothing(project: Any, breakage: str) -> None:
    migrated(project)
    versions = project.root / "migrations" / "versions"
    words = {
        "ahead": "not in this repository's migration history",
        "broken-file": "0004_broken_syntax.py",
        "no-ini": "alembic.ini",
        "app-import": "0004_imports_app.py",
    }[breakage]
    if breakage == "ahead":
        (versions / "0003_create_audit_log.py").unlink()
    elif breakage == "broken-file":
        (versions / "0004_broken_syntax.py").write_text(
            'revision = "0004"\ndown_revision = "0003_create_audit_log"\ndef upgrade(:\n'
        )
    elif breakage == "no-ini":
        (project.root / "alembic.ini").unlink()
    else:
        (versions / "0004_imports_app.py").write_text(
            '"""imports a module that raises"""\nfrom app.settings_that_do_not_exist import X\n'
            'revision = "0004"\ndown_revision = "0003_create_audit_log"\n'
        )
    project.commit(f"WO-13: {breakage}")
    _deploy_anyway(project)
    for action in ("status", "plan", "approve", "apply"):
        proc = project.gonogo("migrate", "staging", action, check=1)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (action, proc.stderr)
        assert words in lines[0], (action, lines[0])
    assert _db_revision(project) == ["0003_create_audit_log"]
