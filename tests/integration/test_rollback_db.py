"""`gonogo rollback ENV --db REVISION`, and app + database rollbacks planned together."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from support import DROP_BODY, INDEX_TITLE_DOWN, INDEX_TITLE_UP, ledger_rows, revision_file

pytestmark = pytest.mark.integration

ADD_INDEX = revision_file(
    "0004_index_title", "index notes.title", INDEX_TITLE_UP, INDEX_TITLE_DOWN
)



def db_revision(project: Any) -> list[str]:
    path = project.root / ".gonogo" / "local" / "staging" / "app.db"
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


def release_with(project: Any, name: str, text: str) -> None:
    """v1 migrated and verified at 0003; v2 brings `name`, migrated and verified."""
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    project.gonogo("verify", "staging", check=0)
    (project.root / "migrations" / "versions" / f"{name}.py").write_text(text)
    project.commit(f"WO-2: {name}")
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    project.gonogo("verify", "staging", check=0)
    assert db_revision(project) == [name]


def test_a_reversible_revision_is_downgraded_and_recorded(project: Any) -> None:
    release_with(project, "0004_index_title", ADD_INDEX)
    doc = project.json("rollback", "staging", "--db", "0003_create_audit_log", check=0)
    assert doc["db"]["risky"] == []
    assert [u["class"] for u in doc["db"]["undo"]] == ["reversible"]
    assert doc["undone"] == ["0004_index_title"]
    assert db_revision(project) == ["0003_create_audit_log"]
    # The live release (v2) expects 0004: the person is told verify will fail.
    assert any("0004_index_title" in w and "verify" in w for w in doc["warnings"])
    rows = ledger_rows(project, "SELECT * FROM migrations WHERE status = 'downgraded'")
    assert [(r["from_revision"], r["to_revision"]) for r in rows] == [
        ("0004_index_title", "0003_create_audit_log")
    ]
    assert ledger_rows(project, "SELECT * FROM events WHERE kind = 'migration.downgraded'")
    # The app was not touched: v2 is still the live release.
    assert project.json("status", "staging", check=0)["environments"][0]["release"] == "v2"


def test_lossy_revisions_are_refused_until_accepted_with_a_reason(project: Any) -> None:
    release_with(project, "0004_index_title", ADD_INDEX)
    refused = project.gonogo("rollback", "staging", "--db", "0002_add_notes_body", check=2)
    assert "0003_create_audit_log (lossy)" in refused.stderr
    assert "--accept-data-loss" in refused.stderr
    assert "0003_create_audit_log" in refused.stdout and "LOSSY" in refused.stdout
    assert db_revision(project) == ["0004_index_title"]  # nothing was changed

    no_reason = project.gonogo(
        "rollback", "staging", "--db", "0002_add_notes_body", "--accept-data-loss", check=1
    )
    assert "--reason" in no_reason.stderr

    doc = project.json(
        "rollback", "staging", "--db", "0002_add_notes_body", "--accept-data-loss",
        "--reason", "audit_log is empty on staging", check=0,
    )
    assert doc["undone"] == ["0004_index_title", "0003_create_audit_log"]
    assert db_revision(project) == ["0002_add_notes_body"]
    overrides = ledger_rows(project, "SELECT * FROM events WHERE kind = 'gate.override'")
    payloads = [json.loads(r["payload"]) for r in overrides]
    assert any(
        p["gate"] == "data-loss" and p["reason"] == "audit_log is empty on staging"
        for p in payloads
    )


def test_app_rollback_past_a_destructive_migration_is_pointed_out_then_done_together(
    project: Any,
) -> None:
    release_with(project, "0004_drop_body", DROP_BODY)
    refused = project.gonogo("rollback", "staging", "--to", "v1", check=2)
    assert "schema-compatible" in refused.stderr
    assert "0004_drop_body" in refused.stdout + refused.stderr
    assert "--db 0003_create_audit_log" in refused.stderr
    assert project.json("status", "staging", check=0)["environments"][0]["release"] == "v2"

    dry = project.json(
        "rollback", "staging", "--to", "v1", "--db", "0003_create_audit_log",
        "--accept-data-loss", "--reason", "body column restored empty", "--dry-run", check=0,
    )
    actions = [s["action"] for s in dry["plan"]["steps"]]
    assert actions[0] == "downgrade" and "start" in actions
    assert db_revision(project) == ["0004_drop_body"]  # dry run changed nothing

    doc = project.json(
        "rollback", "staging", "--to", "v1", "--db", "0003_create_audit_log",
        "--accept-data-loss", "--reason", "body column restored empty", check=0,
    )
    assert doc["to"] == "v1" and doc["undone"] == ["0004_drop_body"]
    assert db_revision(project) == ["0003_create_audit_log"]
    verified = project.json("verify", "staging", check=0)
    assert verified["schema"]["ok"] is True


def test_app_rollback_with_the_database_at_the_old_head_is_go(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    project.gonogo("verify", "staging", check=0)
    (project.root / "README.md").write_text("a change without migrations\n")
    project.commit("WO-3: docs")
    project.gonogo("deploy", "staging", check=0)
    doc = project.json("rollback", "staging", check=0)
    gate = next(g for g in doc["gates"]["gates"] if g["id"] == "schema-compatible")
    assert gate["verdict"] == "GO" and "0003_create_audit_log" in gate["reason"]


def test_bad_db_revisions_are_one_line_errors(project: Any) -> None:
    release_with(project, "0004_index_title", ADD_INDEX)
    for revision, words in (
        ("nope", "no such revision"),
        ("0004_index_title", "already at"),
    ):
        proc = project.gonogo("rollback", "staging", "--db", revision, check=1)
        assert words in proc.stderr and "Traceback" not in proc.stderr
    proc = project.gonogo("rollback", "staging", "--accept-data-loss", check=1)
    assert "--db" in proc.stderr


def test_a_failing_downgrade_stops_and_says_where_the_database_is(project: Any) -> None:
    bad_down = revision_file(
        "0004_bad_down", "an index whose downgrade fails", INDEX_TITLE_UP,
        'op.execute("DROP INDEX no_such_index")',
    )
    release_with(project, "0004_bad_down", bad_down)
    proc = project.gonogo(
        "rollback", "staging", "--db", "0003_create_audit_log", "--accept-data-loss",
        "--reason", "try it", check=3,
    )
    message = proc.stderr.strip()
    assert "downgrade undoing 0004_bad_down failed on staging" in message
    assert "The database is at 0004_bad_down" in message and "app was not touched" in message
    assert db_revision(project) == ["0004_bad_down"]
    rows = ledger_rows(project, "SELECT * FROM migrations WHERE status = 'downgrade-failed'")
    assert [r["from_revision"] for r in rows] == ["0004_bad_down"]
    problem = project.json("status", "staging", check=0)["environments"][0]["database"]
    assert problem["problem"]["status"] == "failed"
