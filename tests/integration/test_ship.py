"""`gonogo ship ENV`: test → build → deploy → verify as one recorded run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import ledger_rows

from conftest import config_text

pytestmark = pytest.mark.integration

SHIP_CONFIG = '\n[test]\ncommand = "sh run_tests.sh"\n\n[gates.ci-passed]\nsources = ["ledger"]\n'


def with_tests(project: Any, script: str) -> None:
    (project.root / "run_tests.sh").write_text(script)
    text = config_text(project.staging_port, project.production_port)
    text = text.replace("[verify]", SHIP_CONFIG + "\n[verify]", 1)
    project.write_config(text, commit=False)
    project.commit("WO-7: ship it")


def test_ship_tests_builds_deploys_verifies_with_one_evidence_folder(project: Any) -> None:
    with_tests(project, 'echo "collected 3 items"; echo "3 passed"\n')
    doc = project.json("ship", "staging", check=0)
    assert doc["work_order"] in ("WO-7", "WO-1")
    folder = Path(doc["evidence"])
    folder = folder if folder.is_absolute() else project.root / folder
    assert folder.parent.parent == project.root / "docs" / "evidence"
    for name in ("log.txt", "run.json", "test.log", "gates.json"):
        assert (folder / name).is_file(), name
    assert list(folder.glob("probes-staging-v1.json"))
    assert "3 passed" in (folder / "test.log").read_text()
    log = (folder / "log.txt").read_text()
    assert "$ sh run_tests.sh (exit 0)" in log and "gate ci-passed: GO" in log
    # The migration SQL the release brings is kept with the evidence, not applied.
    assert "CREATE TABLE notes" in (folder / "migration.sql").read_text()
    gates = {g["id"]: g for g in doc["gates"]["gates"]}
    assert gates["ci-passed"]["verdict"] == "GO"
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "succeeded" or run.get("summary", "").startswith("shipped")
    rows = ledger_rows(project, "SELECT * FROM runs WHERE command = 'ship'")
    assert [r["status"] for r in rows] == ["succeeded"]
    steps = [r["name"] for r in ledger_rows(
        project, "SELECT name FROM steps WHERE run_id = ? ORDER BY idx", (rows[0]["id"],))]
    assert steps[0] == "test" and "verify" in steps
    # ci-passed for a later deploy of the same SHA is answered by this ship's test step.
    check = project.json("check", "staging", "--gate", "ci-passed", check=0)
    assert check["gates"][0]["verdict"] == "GO"


def test_failed_tests_stop_the_ship_before_anything_is_built(project: Any) -> None:
    with_tests(project, 'echo "1 failed: test_login"; exit 1\n')
    proc = project.gonogo("ship", "staging", check=2)
    assert "tests failed (exit 1)" in proc.stderr and "nothing was built" in proc.stderr
    assert ledger_rows(project, "SELECT * FROM releases") == []
    assert not (project.root / ".gonogo" / "artifacts").exists() or not list(
        (project.root / ".gonogo" / "artifacts").iterdir()
    )
    (run,) = ledger_rows(project, "SELECT * FROM runs WHERE command = 'ship'")
    assert run["status"] == "refused" and run["exit_code"] == 2
    step = ledger_rows(project, "SELECT * FROM steps WHERE run_id = ?", (run["id"],))
    assert [(s["name"], s["status"]) for s in step] == [("test", "failed")]
    # The red test step is what ci-passed now answers for this SHA.
    check = project.json("check", "staging", "--gate", "ci-passed", check=2)
    assert "failed" in check["gates"][0]["reason"]


def test_ship_without_a_test_command_is_a_usage_error(project: Any) -> None:
    proc = project.gonogo("ship", "staging", check=1)
    assert "[test]" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_secrets_from_the_environment_never_reach_the_evidence_folder(project: Any) -> None:
    secrets = {
        "DB_PASS": "plain-db-pass-123",
        "HEROKU_API_KEY": "hk-api-key-456",
        "BACKUP_URL": "s3://backup:embedded-pw-789@bucket.example/x",
        "REPORTS_URL": "postgresql://rep@db.example/r?sslmode=require&password=query-pw-246",
    }
    # The test step prints every one of them, alone and inside its URL.
    with_tests(
        project,
        'echo "pass=$DB_PASS key=$HEROKU_API_KEY"\n'
        'echo "backup=$BACKUP_URL reports=$REPORTS_URL"\n'
        'echo "just the passwords: embedded-pw-789 query-pw-246"\n'
        'echo "3 passed"\n',
    )
    doc = project.json("ship", "staging", env=secrets, check=0)
    folder = Path(doc["evidence"])
    folder = folder if folder.is_absolute() else project.root / folder
    assert "3 passed" in (folder / "test.log").read_text()
    values = [
        "plain-db-pass-123", "hk-api-key-456", "embedded-pw-789", "query-pw-246",
    ]
    for path in [*folder.rglob("*"), *(project.root / ".gonogo").rglob("*")]:
        # (.gonogo/local and artifacts hold the app's own files, this script included)
        if path.is_file() and not {"artifacts", "local"} & set(path.parts):
            data = path.read_bytes()
            for value in values:
                assert value.encode() not in data, (path, value)
