"""`gonogo certify ENV` and `gonogo certify --verify FILE` end to end on the example app.

The example app's head revision (0003, a plain CREATE TABLE) does not re-apply after a
stamp-back, which certify requires; the happy path adds an idempotent head revision to the
test's copy of the app (examples/webapp itself is unchanged). The traceback comes from a
route the test adds to its copy of the app, hit over HTTP: the app really logs it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import IDEMPOTENT_HEAD, ledger_rows

from gonogo.migrations.pending import MigrationTarget
from gonogo.migrations.rehearse import rehearse

pytestmark = pytest.mark.integration

BOOM_ROUTE = """
    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("boom: an unhandled error certify must see")

    return app
"""

NO_VERSION_PROBE = """[verify]
probes = [
  { name = "health", path = "/api/health", json = { status = "healthy" } },
  { name = "csrf", path = "/api/auth/csrf", cookie = "csrf_token" },
]
"""


def configure(
    project: Any, *, migrations: bool = True, version_probe: bool = True, staging_vars: str = ""
) -> None:
    project.set_vars(staging_vars=staging_vars)
    text = (project.root / "gonogo.toml").read_text()
    if not migrations:
        text = text.replace('[migrations]\nconfig = "alembic.ini"\n\n', "")
    if not version_probe:
        text = text.replace("[verify]\n", NO_VERSION_PROBE)
    project.write_config(text)


def certificate(project: Any) -> Path:
    return project.root / ".release" / "webapp-test_certified"


def issued_events(project: Any) -> list[dict[str, Any]]:
    rows = ledger_rows(
        project, "SELECT * FROM events WHERE kind = 'certification.issued' ORDER BY seq"
    )
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def check(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    found = [c for c in doc["checks"] if c["id"] == check_id]
    assert len(found) == 1, doc["checks"]
    return found[0]


def test_a_clean_release_is_certified_signed_and_verified_and_tampering_is_caught(
    project: Any, tmp_path: Path
) -> None:
    (project.root / "migrations" / "versions" / "0004_certify_marks.py").write_text(IDEMPOTENT_HEAD)
    sha = project.commit("WO-8: an idempotent head revision")
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)

    doc = project.json("certify", "staging", check=0)
    assert [c["verdict"] for c in doc["checks"]] == ["GO"] * 5
    assert doc["certificate"] == ".release/webapp-test_certified" and doc["signed"] is False
    path = certificate(project)
    stmt = json.loads(path.read_text())
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://gonogo.dev/certification/v1"
    [subject] = stmt["subject"]
    assert subject["name"] == "webapp-test@v1"
    assert subject["digest"]["gitCommit"] == sha
    assert "sha256:" + subject["digest"]["sha256"] == doc["artifact"]
    pred = stmt["predicate"]
    assert (pred["app"], pred["environment"], pred["release"], pred["sha"]) == (
        "webapp-test",
        "staging",
        "v1",
        sha,
    )
    assert pred["migration_revision"] == "0004_certify_marks"
    assert pred["migrations"]["second_upgrade_ok"] is True
    assert pred["migrations"]["reapply_ok"] is True
    assert {p["name"] for p in pred["probes"]["results"]} == {"health", "csrf", "version"}
    assert pred["version"]["reported"] == sha
    assert pred["log_scan"]["counts"] == {"traceback": 0, "http_5xx": 0}
    assert pred["log_scan"]["lines"] > 0
    assert pred["gates"]["verdict"] == "GO" and pred["gates"]["run_id"]
    assert pred["overrides"] == []
    assert pred["run_id"] == doc["run_id"] and pred["certified_at"]
    [event] = issued_events(project)
    assert (event["hash"], event["seq"]) == (pred["ledger_event_hash"], pred["ledger_event_seq"])
    assert event["payload"]["statement_sha256"] == doc["statement_sha256"]
    assert event["run_id"] == doc["run_id"]

    ok = project.json("certify", "--verify", str(path), check=0)
    assert ok["valid"] is True and ok["release"] == "v1" and ok["signed"] is False
    project.gonogo("certify", "staging", "--verify", str(path), check=0)
    assert (
        "for staging"
        in project.gonogo("certify", "production", "--verify", str(path), check=2).stdout
    )

    # An edited file no longer matches the digest the ledger recorded.
    forged = tmp_path / "forged.json"
    forged.write_text(path.read_text().replace(sha, "f" * 40))
    bad = project.gonogo("certify", "--verify", str(forged), check=2)
    assert "digest mismatch" in bad.stdout, bad.stdout

    # Signed: a DSSE envelope; the key is a secret and lands nowhere.
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    secret = base64.b64encode(seed).decode()
    pub = tmp_path / "certify.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    signed_doc = project.json(
        "certify",
        "staging",
        "--output",
        "signed/{env}.json",
        env={"GONOGO_SIGNING_KEY": secret},
        check=0,
    )
    assert signed_doc["signed"] is True and signed_doc["certificate"] == "signed/staging.json"
    signed = project.root / "signed" / "staging.json"
    envelope = json.loads(signed.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    inner = json.loads(base64.b64decode(envelope["payload"]))
    assert inner["predicate"]["ledger_event_seq"] == signed_doc["ledger_event_seq"]
    assert envelope["signatures"][0]["keyid"] == signed_doc["keyid"]
    for where in [signed, path, *(project.root / ".gonogo").rglob("*")]:
        if where.is_file():
            assert secret.encode() not in where.read_bytes(), where

    project.gonogo("certify", "--verify", str(signed), "--public-key", str(pub), check=0)
    project.gonogo("certify", "--verify", str(signed), env={"GONOGO_SIGNING_KEY": secret}, check=0)
    needs_key = project.gonogo("certify", "--verify", str(signed), check=1)
    assert "--public-key" in needs_key.stderr
    other = base64.b64encode(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    wrong_key = project.gonogo("certify", "--verify", str(signed), "--public-key", other, check=2)
    assert "bad signature" in wrong_key.stdout
    inner["predicate"]["release"] = "v9"
    envelope["payload"] = base64.b64encode(json.dumps(inner).encode()).decode()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(envelope))
    tampered = project.gonogo(
        "certify", "--verify", str(altered), "--public-key", str(pub), check=2
    )
    assert "bad signature" in tampered.stdout
    unsigned = project.gonogo("certify", "--verify", str(path), "--public-key", str(pub), check=2)
    assert "not signed" in unsigned.stdout

    # Someone edits the certification event in the ledger: the chain gives it away.
    conn = sqlite3.connect(project.root / ".gonogo" / "ledger.db")
    with conn:
        conn.execute(
            "UPDATE events SET payload = replace(payload, ?, ?) WHERE hash = ?",
            (doc["statement_sha256"], "0" * 64, pred["ledger_event_hash"]),
        )
    conn.close()
    broken = project.gonogo("certify", "--verify", str(path), check=2)
    assert "tampered ledger" in broken.stdout and f"#{event['seq']}" in broken.stdout


def test_a_traceback_in_the_logs_is_no_go_and_writes_no_certificate(project: Any) -> None:
    configure(project, migrations=False)
    main = project.root / "app" / "main.py"
    main.write_text(main.read_text().replace("\n    return app\n", BOOM_ROUTE))
    project.commit("WO-8: a route that raises")
    project.gonogo("deploy", "staging", check=0)
    boom = httpx.get(f"http://127.0.0.1:{project.staging_port}/api/boom", trust_env=False)
    assert boom.status_code == 500

    refused = project.gonogo("certify", "staging", check=2)
    text = refused.stdout + refused.stderr
    assert "log-scan" in text and "1 traceback, 1 http_5xx" in text, text
    assert "RuntimeError: boom: an unhandled error certify must see" in text, text
    assert "no certificate was written" in text
    [message] = [ln for ln in refused.stderr.splitlines() if ln.startswith("gonogo:")]
    assert "line 13: Traceback (most recent call last): … RuntimeError: boom" in message
    assert "crash report" not in text
    assert not certificate(project).exists()
    assert issued_events(project) == []
    doc = project.json("certify", "staging", check=2)
    scan = check(doc, "log-scan")
    assert scan["verdict"] == "NO-GO"
    assert check(doc, "database")["verdict"] == "SKIP"  # no [migrations] configured
    assert check(doc, "probes")["verdict"] == "GO"


def test_a_wrong_version_sha_is_named_and_an_older_certificate_is_left_alone(
    project: Any,
) -> None:
    configure(project, migrations=False, version_probe=False, staging_vars='WEBAPP_WRONG_SHA = "1"')
    sha = project.head()
    project.gonogo("deploy", "staging", check=0)  # no version probe: the deploy verifies
    old = certificate(project)
    old.parent.mkdir()
    old.write_text('{"predicate": {"environment": "staging", "release": "v0"}}\n')

    refused = project.gonogo("certify", "staging", check=2)
    assert "version-sha" in refused.stderr
    assert f"gitSha 0000000 but v1 is {sha}" in refused.stderr, refused.stderr
    assert "the existing .release/webapp-test_certified (for staging v0) was left as it is" in (
        refused.stderr
    )
    assert old.read_text() == '{"predicate": {"environment": "staging", "release": "v0"}}\n'


def test_a_head_revision_that_is_not_idempotent_is_no_go(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    behind = project.json("certify", "staging", check=2)
    assert check(behind, "database")["verdict"] == "NO-GO"
    assert check(behind, "migrations")["verdict"] == "SKIP"

    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    db = project.root / ".gonogo" / "local" / "staging" / "app.db"
    before = db.read_bytes()
    refused = project.gonogo("certify", "staging", check=2)
    assert "NO-GO (migrations)" in refused.stderr, refused.stderr
    assert "0003_create_audit_log does not re-apply cleanly after stamp-back one" in (
        refused.stderr
    )
    assert "table audit_log already exists" in refused.stderr
    assert db.read_bytes() == before  # only a copy was rehearsed on
    assert not certificate(project).exists()


def test_usage_errors_and_unreadable_certificates_exit_1(project: Any, tmp_path: Path) -> None:
    assert "needs ENV" in project.gonogo("certify", check=1).stderr
    missing = project.gonogo("certify", "--verify", str(tmp_path / "nope.json"), check=1)
    assert "cannot read" in missing.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("not json")
    assert "not JSON" in project.gonogo("certify", "--verify", str(junk), check=1).stderr
    assert "no live release" in project.gonogo("certify", "staging", check=1).stderr
    bad_key = project.gonogo(
        "certify", "staging", env={"GONOGO_SIGNING_KEY": "not-a-key-at-all"}, check=1
    )
    assert "not an Ed25519 private key" in bad_key.stderr
    assert "not-a-key-at-all" not in bad_key.stderr


# An env.py that changes the schema whenever alembic runs: a second upgrade is not a no-op.
NOISY_ENV = """
if not context.is_offline_mode():
    with create_engine(_url()).begin() as _conn:
        _conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS touched_by_env (id INTEGER)")
"""


def test_a_second_upgrade_that_changes_the_schema_is_not_a_no_op(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[1] / "migration_fixtures" / "rehearse_idempotent"
    project = tmp_path / "project"
    shutil.copytree(fixture, project, ignore=shutil.ignore_patterns("__pycache__"))
    url = f"sqlite:///{tmp_path / 'real.db'}"
    environ = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=project,
        env=environ,
        check=True,
        capture_output=True,
    )
    target = MigrationTarget(cwd=project, environ=environ, database_url=url, ini="alembic.ini")
    clean = rehearse(target, workdir=tmp_path / "clean", second_upgrade=True)
    assert [(s.action, s.ok) for s in clean.steps] == [
        ("second-upgrade", True),
        ("stamp-back", True),
        ("reapply", True),
    ]
    assert clean.second_upgrade_ok is True and clean.reapply_ok is True

    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + NOISY_ENV)
    for mode in ("batch", "per-command"):
        noisy = rehearse(target, workdir=tmp_path / mode, second_upgrade=True, mode=mode)
        assert [(s.action, s.ok) for s in noisy.steps] == [("second-upgrade", False)]
        assert noisy.second_upgrade_ok is False and noisy.reapply_ok is None
        assert noisy.second_upgrade_error == (
            "the schema after it differs from before it (a second upgrade at the head must "
            "change nothing): table touched_by_env is left over"
        )
        assert "a second upgrade at i2_create_tags is not a no-op" in noisy.summary
    assert rehearse(target, workdir=tmp_path / "plain").second_upgrade_ok is None  # not asked
