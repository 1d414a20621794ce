"""`gonogo deploy` end to end with the local provider and the real example app.

Every test drives the real CLI in a subprocess against a fresh git repository of
examples/webapp (the `project` fixture) and checks what is really running: the process,
its port, its /api/version, the ledger and the evidence folder.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from support import group_alive, ledger_rows, pid_alive

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------------------------------------
# helpers (kept local: each integration module stands on its own)
# ---------------------------------------------------------------------------------------------


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    """Wait until the app started as pid (a process group leader) and its group are gone."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid) and not group_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid) and not group_alive(pid)


def http_json(port: int, path: str) -> Any:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5.0, trust_env=False)
    return response.status_code, response.json()


def port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def events(project: Any, kind: str) -> list[dict[str, Any]]:
    rows = ledger_rows(project, "SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,))
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def staging_status(project: Any) -> dict[str, Any]:
    doc = project.json("status", "staging", check=0)
    envs = doc["environments"]
    assert isinstance(envs, list) and len(envs) == 1
    return envs[0]


def production_status(project: Any) -> dict[str, Any]:
    doc = project.json("status", "production", check=0)
    envs = doc["environments"]
    assert isinstance(envs, list) and len(envs) == 1
    return envs[0]


def history(project: Any, env: str = "staging") -> dict[str, Any]:
    return project.json("history", env, check=0)


def started_pids(project: Any, run_id: str) -> list[int]:
    """Pids of the app processes a run started (its `start` steps, in order)."""
    rows = ledger_rows(
        project,
        "SELECT detail FROM steps WHERE run_id = ? AND name = 'start' ORDER BY id",
        (run_id,),
    )
    return [int(json.loads(r["detail"])["pid"]) for r in rows if r["detail"]]


def assert_clean_failure(proc: Any) -> None:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    assert proc.returncode != 4, both


def assert_live(project: Any, label: str, sha: str) -> dict[str, Any]:
    st = staging_status(project)
    assert st["release"] == label, st
    assert st["sha"] == sha, st
    assert st["running"] is True, st
    assert pid_alive(int(st["pid"])), st
    assert st["health"] == "200 healthy", st
    code, body = http_json(project.staging_port, "/api/version")
    assert code == 200
    assert body["gitSha"] == sha
    return st


def bump(project: Any, name: str = "CHANGES.txt", text: str | None = None) -> str:
    """Commit a harmless change; returns the new HEAD."""
    path = project.root / name
    path.write_text(text if text is not None else f"change at {time.time_ns()}\n")
    return project.commit(f"WO-1: {name}")


# ---------------------------------------------------------------------------------------------
# a good deploy
# ---------------------------------------------------------------------------------------------


def test_good_deploy_is_live_verified_and_leaves_redacted_evidence(project: Any) -> None:
    head = project.head()
    doc = project.json("deploy", "staging", check=0)

    assert doc["release"] == "v1"
    assert doc["sha"] == head
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", str(doc["artifact"])), doc["artifact"]
    assert doc["verification"]["ok"] is True
    assert doc["gates"]["verdict"] == "GO"

    # The CLI has exited (subprocess.run returned); the app it started is still serving.
    st = assert_live(project, "v1", head)
    assert st["port"] == project.staging_port
    assert st["artifact"] == doc["artifact"]
    assert st["verified_at"]
    info = project.proc_info("staging")
    assert info is not None and int(info["pid"]) == st["pid"] and info["version"] == 1

    # The ledger agrees.
    h = history(project)
    assert {r["release"]: r["state"] for r in h["releases"]} == {"v1": "live"}
    runs = h["runs"]
    assert [(r["command"], r["status"], r["exit_code"]) for r in runs] == [
        ("deploy", "succeeded", 0)
    ]

    # Evidence: log, run record, gate verdicts, probe transcript.
    evidence = Path(str(doc["evidence"]))
    assert evidence.is_dir()
    assert evidence.parent == project.root / ".gonogo" / "evidence"
    for name in ("log.txt", "run.json", "gates.json", "probes-staging-v1.json"):
        assert (evidence / name).is_file(), f"{name} missing from {evidence}"
    run_json = json.loads((evidence / "run.json").read_text())
    assert run_json["status"] == "succeeded" and run_json["exit_code"] == 0
    assert run_json["sha"] == head

    probes = json.loads((evidence / "probes-staging-v1.json").read_text())
    assert probes["ok"] is True
    csrf_answers = [
        a["response"]
        for a in probes["transcript"]
        if a["probe"] == "csrf" and a["response"] is not None
    ]
    assert csrf_answers, "the transcript has no csrf response"
    for resp in csrf_answers:
        cookies = [v for k, v in resp["headers"] if k.lower() == "set-cookie"]
        assert cookies, resp
        for value in cookies:
            assert value.startswith("csrf_token=<redacted>"), value
        assert json.loads(resp["body"])["csrf_token"] == "<redacted>"

    # No token-looking value anywhere in the evidence (token_urlsafe(32) is 43 characters).
    token_value = re.compile(
        r"csrf_token[\"']?\s*[:=]\s*\\?[\"']?(?!<redacted>)([A-Za-z0-9_\-]{20,})"
    )
    for path in evidence.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            found = token_value.findall(text)
            assert not found, f"{path.name} contains a csrf token value: {found[:1]}"
    # Nor in what the CLI printed.
    assert not token_value.findall(json.dumps(doc))


def test_dry_run_on_a_fresh_repository_creates_no_ledger(project: Any) -> None:
    project.gonogo("deploy", "staging", "--dry-run", check=0)
    assert not (project.root / ".gonogo").exists()


def test_dry_run_prints_the_plan_and_changes_nothing(project: Any) -> None:
    before = history(project)
    proc = project.gonogo("deploy", "staging", "--dry-run", "--json", check=0)
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True
    assert doc["verdict"] == "GO"
    assert doc["release"] == "v1"
    assert [s["action"] for s in doc["plan"]["steps"]] == ["pack", "unpack", "start", "verify"]
    assert all(s["description"] for s in doc["plan"]["steps"])

    after = history(project)
    assert after["runs"] == before["runs"] == []
    assert after["releases"] == []
    assert project.proc_info("staging") is None
    assert not (project.root / ".gonogo" / "local" / "staging" / "releases").exists()
    assert not (project.root / ".gonogo" / "artifacts").exists() or not any(
        (project.root / ".gonogo" / "artifacts").iterdir()
    )
    evidence = project.root / ".gonogo" / "evidence"
    assert not evidence.exists() or not any(evidence.iterdir())
    assert not port_listening(project.staging_port)
    st = staging_status(project)
    assert st["running"] is False and st["release"] is None

    # Human-readable form prints numbered steps and also changes nothing.
    text = project.gonogo("deploy", "staging", "--dry-run", check=0)
    assert "pack" in text.stdout and "verify" in text.stdout
    assert ledger_rows(project, "SELECT id FROM runs") == []


def test_second_deploy_replaces_the_first(project: Any) -> None:
    sha1 = project.head()
    first = project.json("deploy", "staging", check=0)
    pid1 = staging_status(project)["pid"]

    sha2 = bump(project)

    # A dry run with v1 live plans the stop of v1, and changes nothing.
    runs_before = ledger_rows(project, "SELECT id, status FROM runs")
    plan = project.json("deploy", "staging", "--dry-run", check=0)
    assert [s["action"] for s in plan["plan"]["steps"]] == [
        "pack",
        "unpack",
        "stop",
        "start",
        "verify",
    ]
    assert plan["release"] == "v2"
    assert [tuple(r) for r in ledger_rows(project, "SELECT id, status FROM runs")] == [
        tuple(r) for r in runs_before
    ]
    assert not (project.root / ".gonogo" / "local" / "staging" / "releases" / "v2").exists()
    info = project.proc_info("staging")
    assert info is not None and info["pid"] == pid1 and pid_alive(pid1)

    second = project.json("deploy", "staging", check=0)
    assert second["release"] == "v2" and second["sha"] == sha2
    assert second["artifact"] != first["artifact"]

    st = assert_live(project, "v2", sha2)
    assert st["pid"] != pid1
    assert wait_dead(pid1), f"v1's process {pid1} is still alive after v2 went live"

    h = history(project)
    assert {r["release"]: (r["state"], r["sha"]) for r in h["releases"]} == {
        "v2": ("live", sha2),
        "v1": ("retired", sha1),
    }
    assert all(r["verified_at"] for r in h["releases"])
    assert [(r["command"], r["status"]) for r in h["runs"]] == [
        ("deploy", "succeeded"),
        ("deploy", "succeeded"),
    ]


# ---------------------------------------------------------------------------------------------
# misbehaviour switches: caught by verification, previous release put back
# ---------------------------------------------------------------------------------------------

SWITCHES = [
    pytest.param('WEBAPP_CRASH_ON_BOOT = "1"', "20s", ("exit",), id="crash-on-boot"),
    pytest.param('WEBAPP_HEALTH_500 = "1"', "3s", ("health",), id="health-500"),
    pytest.param('WEBAPP_DEGRADED = "1"', "3s", ("health", "degraded"), id="degraded"),
    pytest.param('WEBAPP_SLOW_START = "30"', "3s", ("deadline",), id="slow-start-past-deadline"),
    pytest.param('WEBAPP_WRONG_SHA = "1"', "3s", ("version", "gitSha"), id="wrong-sha"),
    pytest.param('WEBAPP_NO_CSRF_COOKIE = "1"', "3s", ("csrf", "csrf_token"), id="no-csrf-cookie"),
    # Healthy on every other request: one lucky round must not pass verification.
    pytest.param('WEBAPP_FLAP = "1"', "3s", ("health", "status 500"), id="flapping"),
]


@pytest.mark.parametrize(("switch", "deadline", "words"), SWITCHES)
def test_misbehaving_release_is_rolled_back(
    project: Any, switch: str, deadline: str, words: tuple[str, ...]
) -> None:
    sha1 = project.head()
    project.json("deploy", "staging", check=0)

    project.set_vars(staging_vars=switch, deadline=deadline)
    sha2 = project.head()
    assert sha2 != sha1

    started = time.monotonic()
    proc = project.gonogo("deploy", "staging", check=3)
    elapsed = time.monotonic() - started
    assert_clean_failure(proc)

    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, proc.stderr
    assert "rolled back" in message.lower(), message
    assert "v2" in message and "v1" in message, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    if "CRASH" in switch:
        # A release whose process exits fails at once, not at the 20 s deadline.
        assert elapsed < 10, f"crash on boot took {elapsed:.1f}s to be caught"

    # v1 is back: running, healthy, serving v1's commit.
    st = assert_live(project, "v1", sha1)
    info = project.proc_info("staging")
    assert info is not None and info["version"] == 1

    # The ledger records v2 as failed and the automatic rollback.
    h = history(project)
    assert {r["release"]: r["state"] for r in h["releases"]} == {"v2": "failed", "v1": "live"}
    v2 = next(r for r in h["releases"] if r["release"] == "v2")
    assert v2["sha"] == sha2 and v2["verified_at"] is None
    newest = h["runs"][0]
    assert (newest["command"], newest["status"], newest["exit_code"]) == (
        "deploy",
        "rolled_back",
        3,
    )
    rollbacks = events(project, "rollback.automatic")
    assert len(rollbacks) == 1
    assert rollbacks[0]["run_id"] == newest["run_id"]
    assert rollbacks[0]["payload"]["from"] == "v2"
    assert rollbacks[0]["payload"]["to"] == "v1"
    assert rollbacks[0]["payload"]["ok"] is True

    # v2's process is gone, and both verifications are in the evidence.
    v2_pid, v1_again_pid = started_pids(project, newest["run_id"])
    assert wait_dead(v2_pid), f"the failed v2 process {v2_pid} is still alive"
    assert st["pid"] == v1_again_pid
    evidence = project.root / newest["evidence"]
    failed = json.loads((evidence / "probes-staging-v2.json").read_text())
    assert failed["ok"] is False
    again = json.loads((evidence / "probes-staging-v1.json").read_text())
    assert again["ok"] is True


def test_slow_start_within_the_deadline_passes(project: Any) -> None:
    project.set_vars(staging_vars='WEBAPP_SLOW_START = "1.5"', deadline="10s")
    head = project.head()
    started = time.monotonic()
    doc = project.json("deploy", "staging", check=0)
    assert time.monotonic() - started >= 1.5
    assert doc["verification"]["ok"] is True
    assert doc["verification"]["rounds"] > 1  # it polled, it did not get lucky
    assert_live(project, "v1", head)


def test_failed_first_deploy_has_nothing_to_roll_back_to(project: Any) -> None:
    project.set_vars(staging_vars='WEBAPP_HEALTH_500 = "1"', deadline="3s")
    proc = project.gonogo("deploy", "staging", "--json", check=3)
    assert_clean_failure(proc)
    doc = json.loads(proc.stdout)  # --json: one document on stdout, even for a failure
    assert doc["exit_code"] == 3
    assert doc["run_id"] and doc["evidence"]
    message = doc["error"]
    assert "\n" not in message
    assert "nothing to roll back to" in message.lower() or "no earlier release" in message.lower()
    assert "stopped" in message.lower(), message

    st = staging_status(project)
    assert st["running"] is False, st
    assert project.proc_info("staging") is None
    assert not port_listening(project.staging_port)
    h = history(project)
    assert {r["release"]: r["state"] for r in h["releases"]} == {"v1": "failed"}
    assert (h["runs"][0]["status"], h["runs"][0]["exit_code"]) == ("failed", 3)
    (pid,) = started_pids(project, h["runs"][0]["run_id"])
    assert wait_dead(pid)


# ---------------------------------------------------------------------------------------------
# migrations: explicit, never part of deploy; a failed deploy after one halts
# ---------------------------------------------------------------------------------------------


def alembic_revisions(project: Any, env: str = "staging") -> list[str]:
    db = project.root / ".gonogo" / "local" / env / "app.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" not in tables:
            return []
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    finally:
        conn.close()


def test_deploy_never_migrates_and_migrate_apply_is_its_own_run(project: Any) -> None:
    project.json("deploy", "staging", check=0)
    assert alembic_revisions(project) == []
    code, body = http_json(project.staging_port, "/api/notes")
    assert code == 503  # the schema is not there: deploy did not create it

    # Not approved yet: refused, nothing applied.
    refused = project.gonogo("migrate", "staging", "apply", check=2)
    assert "migration-approved" in refused.stderr and "no approval" in refused.stderr
    assert alembic_revisions(project) == []

    dry = project.json("migrate", "staging", "apply", "--dry-run", check=2)
    assert "CREATE TABLE notes" in dry["sql"]
    approved = project.json("migrate", "staging", "approve", "--note", "reviewed", check=0)
    assert approved["sql_sha256"] == dry["sql_sha256"]
    assert (approved["from"], approved["to"]) == ("base", "0003_create_audit_log")

    doc = project.json("migrate", "staging", "apply", check=0)
    assert doc["before"] == []
    assert doc["after"] == ["0003_create_audit_log"]
    assert alembic_revisions(project) == ["0003_create_audit_log"]
    code, body = http_json(project.staging_port, "/api/notes")
    assert code == 200 and body == {"notes": []}

    runs = history(project)["runs"]
    assert [(r["command"], r["status"]) for r in runs] == [
        ("migrate apply", "succeeded"),
        ("migrate approve", "succeeded"),
        ("migrate apply", "refused"),
        ("deploy", "succeeded"),
    ]
    # One record per revision, in order, each with the sha256 of its own SQL.
    applied = events(project, "migration.applied")
    assert [e["payload"]["to"] for e in applied] == [
        "0001_create_notes",
        "0002_add_notes_body",
        "0003_create_audit_log",
    ]
    assert all(len(e["payload"]["sql_sha256"]) == 64 for e in applied)


def test_failed_deploy_after_a_migration_halts_instead_of_rolling_back(project: Any) -> None:
    project.json("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    # No verify after the migration: v1 was last verified before it ran.

    project.set_vars(staging_vars='WEBAPP_HEALTH_500 = "1"', deadline="3s")
    sha2 = project.head()
    proc = project.gonogo("deploy", "staging", check=3)
    assert_clean_failure(proc)
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, proc.stderr
    assert "migration" in message.lower(), message
    assert "gonogo rollback staging --to v1" in message, message
    assert "rolled back automatically" not in message.lower()

    # v2 is left as it is: running (and unhealthy), not rolled back.
    st = staging_status(project)
    assert st["release"] == "v2" and st["sha"] == sha2, st
    assert st["running"] is True and pid_alive(int(st["pid"]))
    assert st["health"].startswith("500"), st
    assert http_json(project.staging_port, "/api/version") == (
        200,
        {"gitSha": sha2, "version": ANY},
    )
    assert events(project, "rollback.automatic") == []
    newest = history(project)["runs"][0]
    assert (newest["command"], newest["status"], newest["exit_code"]) == ("deploy", "halted", 3)
    assert ledger_rows(project, "SELECT * FROM env_locks") == []

    # The printed recovery works.
    project.gonogo("rollback", "staging", "--to", "v1", check=0)
    assert staging_status(project)["release"] == "v1"


def test_failed_deploy_after_a_halt_still_halts(project: Any) -> None:
    """After a halt, the live release (v2) never passed verification and a migration ran
    since the last verified one (v1). A further failed deploy must not "roll back" to v2."""
    project.json("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    project.set_vars(staging_vars='WEBAPP_HEALTH_500 = "1"', deadline="3s")
    project.gonogo("deploy", "staging", check=3)  # halted, v2 left as it is

    project.set_vars(staging_vars='WEBAPP_CRASH_ON_BOOT = "1"', deadline="3s")
    proc = project.gonogo("deploy", "staging", check=3)
    assert_clean_failure(proc)
    message = proc.stderr.strip()
    assert events(project, "rollback.automatic") == [], message
    assert "migration" in message.lower(), message
    assert "gonogo rollback staging --to v1" in message, message


# ---------------------------------------------------------------------------------------------
# promotion to the protected environment
# ---------------------------------------------------------------------------------------------

GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}


def assert_production_untouched(project: Any) -> None:
    assert project.proc_info("production") is None
    assert not (project.root / ".gonogo" / "local" / "production" / "releases").exists()
    assert not port_listening(project.production_port)
    assert history(project, "production")["releases"] == []


def test_production_is_refused_without_guard_or_promotion(project: Any) -> None:
    # No guard variables, no --confirm: NO-GO naming prod-guard.
    proc = project.gonogo("deploy", "production", check=2)
    assert_clean_failure(proc)
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, proc.stderr
    assert "NO-GO" in message and "prod-guard" in message, message
    assert "nothing was changed" in message
    assert_production_untouched(project)
    runs = history(project, "production")["runs"]
    assert [(r["status"], r["exit_code"]) for r in runs] == [("refused", 2)]

    # Guard set, but the commit was never verified on staging: NO-GO naming promoted-from.
    doc = project.json("deploy", "production", env=GUARD, check=2)
    assert "promoted-from" in doc["error"]
    verdicts = {g["id"]: g["verdict"] for g in doc["gates"]["gates"]}
    assert verdicts["prod-guard"] == "GO"
    assert verdicts["promoted-from"] == "NO-GO"
    assert "prod-guard" not in doc["error"].split(":")[0]
    assert_production_untouched(project)

    # A commit verified on staging only counts for that commit.
    project.json("deploy", "staging", check=0)
    bump(project)
    doc = project.json("deploy", "production", env=GUARD, check=2)
    assert "promoted-from" in doc["error"]
    assert_production_untouched(project)


def test_promotion_reuses_the_staging_artifact(project: Any) -> None:
    head = project.head()
    staged = project.json("deploy", "staging", check=0)
    artifacts_before = ledger_rows(project, "SELECT digest FROM artifacts")

    prod = project.json("deploy", "production", env=GUARD, check=0)
    assert prod["release"] == "v1"
    assert prod["sha"] == head
    assert prod["artifact"] == staged["artifact"]
    actions = [s["action"] for s in prod["plan"]["steps"]]
    assert "pack" not in actions and "reuse-artifact" in actions
    assert ledger_rows(project, "SELECT digest FROM artifacts") == artifacts_before

    pst = production_status(project)
    assert pst["release"] == "v1" and pst["running"] is True and pst["health"] == "200 healthy"
    assert pst["artifact"] == staged["artifact"]
    code, body = http_json(project.production_port, "/api/version")
    assert (code, body["gitSha"]) == (200, head)
    # staging is still up beside it
    assert staging_status(project)["running"] is True

    # --confirm <app> (here the environment name, there is no `app`) passes the guard too.
    doc = project.json("deploy", "production", "--confirm", "production", check=0)
    assert doc["release"] == "v2" and doc["artifact"] == staged["artifact"]

    # A wrong confirmation is a refusal that changes nothing.
    pid = production_status(project)["pid"]
    proc = project.gonogo("deploy", "production", "--confirm", "wrong", check=2)
    assert_clean_failure(proc)
    assert "prod-guard" in proc.stderr and "wrong" in proc.stderr
    pst = production_status(project)
    assert pst["release"] == "v2" and pst["pid"] == pid and pid_alive(pid)


def test_promotion_refuses_an_altered_artifact_without_changing_anything(project: Any) -> None:
    staged = project.json("deploy", "staging", check=0)
    tarball = (
        project.root
        / ".gonogo"
        / "artifacts"
        / (str(staged["artifact"]).removeprefix("sha256:") + ".tar")
    )
    assert tarball.is_file()
    with tarball.open("ab") as fh:
        fh.write(b"tampered")

    proc = project.gonogo("deploy", "production", env=GUARD)
    assert_clean_failure(proc)
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, proc.stderr
    assert "altered" in message and str(staged["artifact"]) in message
    assert "nothing was changed" in message
    assert_production_untouched(project)
    assert ledger_rows(project, "SELECT * FROM env_locks") == []
    # Nothing was changed, so this is not "failed after changes began" (3): DESIGN.md's
    # exit codes make it a refusal (2) or an error to fix (1).
    assert proc.returncode in (1, 2), f"exit {proc.returncode}: {message}"
