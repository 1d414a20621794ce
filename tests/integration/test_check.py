"""`gonogo check` through the real CLI, overrides recorded in the ledger, and the detector
alone in a repository without a gonogo.toml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import ledger_rows

pytestmark = pytest.mark.integration

WORK_ORDER = 'work_order = { pattern = "WO-[0-9]+" }'


def with_work_order(project: Any) -> None:
    text = (project.root / "gonogo.toml").read_text()
    text = text.replace('name = "webapp-test"', f'name = "webapp-test"\n{WORK_ORDER}')
    project.write_config(text, commit=False)
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "configure work orders")  # no WO id: in-scope NO-GO


def test_check_staging_is_go_on_the_example_app(project: Any) -> None:
    doc = project.json("check", "staging", check=0)
    assert doc["verdict"] == "GO"
    ids = [g["id"] for g in doc["gates"]]
    assert {"clean-tree", "migrations-explicit", "rollback-feasible", "prod-guard"} <= set(ids)
    for gate in doc["gates"]:
        assert set(gate) >= {"id", "verdict", "reason", "evidence", "findings", "duration_ms"}
    # A check changes nothing, not even by creating a ledger.
    assert not (project.root / ".gonogo").exists()


def test_check_production_lists_every_refusal_with_fixes(project: Any) -> None:
    proc = project.gonogo("check", "production", check=2)
    assert "✘ prod-guard" in proc.stdout
    assert "✘ promoted-from" in proc.stdout
    assert "fix:" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("NO-GO: 2 of")


def test_check_one_gate_alone(project: Any) -> None:
    doc = project.json("check", "staging", "--gate", "migrations-explicit", check=0)
    assert [g["id"] for g in doc["gates"]] == ["migrations-explicit"]
    proc = project.gonogo("check", "staging", "--gate", "nope", check=1)
    assert "no such gate" in proc.stderr


def test_implicit_migration_blocks_deploy_then_override_is_recorded(project: Any) -> None:
    (project.root / "Procfile").write_text(
        "web: uvicorn app.main:app --host ${HOST:-0.0.0.0} --port ${PORT:-8000}\n"
        "release: alembic upgrade head\n"
    )
    project.commit("WO-3: migrate in the release phase")
    doc = project.json("check", "staging", check=2)
    (gate,) = [g for g in doc["gates"] if g["id"] == "migrations-explicit"]
    assert gate["verdict"] == "NO-GO"
    assert gate["findings"][0]["file"] == "Procfile" and gate["findings"][0]["line"] == 2

    refused = project.gonogo("deploy", "staging", check=2)
    assert "migrations-explicit" in refused.stderr and "Procfile:2" in refused.stderr

    missing_reason = project.gonogo(
        "deploy", "staging", "--override", "migrations-explicit", check=1
    )
    assert "--reason" in missing_reason.stderr

    done = project.json(
        "deploy",
        "staging",
        "--override",
        "migrations-explicit",
        "--reason",
        "release phase is disabled on the app itself (INC-7)",
        check=0,
    )
    (gate,) = [g for g in done["gates"]["gates"] if g["id"] == "migrations-explicit"]
    assert gate["verdict"] == "NO-GO" and gate["override"]["by"] == "tester"

    events = ledger_rows(project, "SELECT * FROM events WHERE kind = 'gate.override'")
    assert len(events) == 1
    payload = json.loads(events[0]["payload"])
    assert payload["gate"] == "migrations-explicit"
    assert payload["reason"].startswith("release phase is disabled")
    history = project.json("history", "staging", check=0)
    assert history["overrides"][0]["gate"] == "migrations-explicit"
    assert history["overrides"][0]["by"] == "tester"
    human = project.gonogo("history", "staging", check=0).stdout
    assert "migrations-explicit passed by tester" in human


def test_prod_guard_override_is_refused(project: Any) -> None:
    proc = project.gonogo(
        "deploy", "production", "--override", "prod-guard", "--reason", "x", check=1
    )
    assert "cannot be overridden" in proc.stderr
    assert not (project.root / ".gonogo" / "local" / "production").exists()


def test_in_scope_refuses_without_a_work_order(project: Any) -> None:
    with_work_order(project)
    # The first release finds WO-1 in the history; later ones look only at newer commits.
    project.gonogo("deploy", "staging", check=0)
    project.git("commit", "-q", "--allow-empty", "-m", "tidy up")
    proc = project.gonogo("deploy", "staging", check=2)
    assert "in-scope" in proc.stderr and "WO-[0-9]+" in proc.stderr
    project.git("commit", "-q", "--allow-empty", "-m", "WO-12: search")
    assert project.json("check", "staging", "--gate", "in-scope", check=0)["verdict"] == "GO"


def test_detector_alone_without_a_gonogo_toml(tmp_path: Path) -> None:
    repo = tmp_path / "other"
    repo.mkdir()
    (repo / "Procfile").write_text("web: gunicorn app:app\nrelease: flask db upgrade\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gonogo",
            "check",
            "--gate",
            "migrations-explicit",
            "--json",
            str(repo),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "NO-GO"
    assert doc["gates"][0]["findings"][0]["line"] == 2

    (repo / "Procfile").write_text('web: gunicorn app:app\nrelease: echo "migrations off"\n')
    ok = subprocess.run(
        [sys.executable, "-m", "gonogo", "check", "--gate", "migrations-explicit"],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "GO" in ok.stdout


def test_example_app_copy_is_safe_for_the_detector(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "webapp"
    copy = tmp_path / "webapp"
    shutil.copytree(example, copy)
    proc = subprocess.run(
        [sys.executable, "-m", "gonogo", "check", "--gate", "migrations-explicit", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


FIXTURES = Path(__file__).resolve().parents[1] / "migration_fixtures"


def test_migrate_classify_without_a_gonogo_toml(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gonogo",
            "migrate",
            "classify",
            "--json",
            "--alembic-ini",
            str(FIXTURES / "two_heads" / "alembic.ini"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["heads"]) == 2
    for rev in doc["revisions"]:
        assert set(rev) >= {"revision", "down_revision", "class", "reason", "operations"}
    assert "alembic merge" in doc["message"]


def test_migrate_classify_uses_the_projects_alembic_ini(project: Any) -> None:
    doc = project.json("migrate", "classify", check=0)
    classes = {r["revision"]: r["class"] for r in doc["revisions"]}
    assert classes == {
        "0001_create_notes": "lossy",
        "0002_add_notes_body": "lossy",
        "0003_create_audit_log": "lossy",
    }


def test_migrate_classify_broken_revision_is_one_line_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gonogo",
            "migrate",
            "classify",
            "--alembic-ini",
            str(FIXTURES / "missing_import" / "alembic.ini"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "m2_imports_app.py" in proc.stderr and "Traceback" not in proc.stderr


IRREVERSIBLE = '''"""drop the audit log for good"""
from alembic import op

revision = "0004_drop_audit_log"
down_revision = "0003_create_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_table("audit_log")


def downgrade() -> None:
    raise NotImplementedError("the audit log is gone")
'''


def test_irreversible_migration_makes_rollback_infeasible(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    versions = project.root / "migrations" / "versions"
    (versions / "0004_drop_audit_log.py").write_text(IRREVERSIBLE)
    project.commit("WO-5: drop the audit log")
    doc = project.json("check", "staging", "--gate", "rollback-feasible", check=2)
    (gate,) = doc["gates"]
    assert "0004_drop_audit_log cannot be undone" in gate["reason"]
    assert gate["findings"][0]["file"] == "migrations/versions/0004_drop_audit_log.py"
    refused = project.gonogo("deploy", "staging", check=2)
    assert "rollback-feasible" in refused.stderr
    # Documenting the recovery is an override with a reason, kept in the ledger.
    project.gonogo(
        "deploy",
        "staging",
        "--override",
        "rollback-feasible",
        "--reason",
        "audit log archived to S3 first; restore from archive",
        check=0,
    )
