"""`gonogo rollback ENV [--to vN]` against real releases of the example app."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import httpx
import pytest
from support import group_alive, pid_alive

pytestmark = pytest.mark.integration


def version_sha(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=5.0, trust_env=False)
    assert response.status_code == 200
    return str(response.json()["gitSha"])


def staging(project: Any) -> dict[str, Any]:
    envs = project.json("status", "staging", check=0)["environments"]
    return envs[0]


def ledger_rows(project: Any, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(project.root / ".gonogo" / "ledger.db", timeout=15)
    try:
        return list(conn.execute(query, params))
    finally:
        conn.close()


def live_state(project: Any) -> tuple[Any, ...]:
    """What is live, by the ledger and by the process table: (release, pid, alive)."""
    (row,) = ledger_rows(
        project, "SELECT version FROM releases WHERE env='staging' AND state='live'"
    )
    info = project.proc_info("staging")
    assert info is not None
    return row[0], int(info["pid"]), pid_alive(int(info["pid"]))


def run_count(project: Any) -> int:
    return int(ledger_rows(project, "SELECT count(*) FROM runs")[0][0])


def bump(project: Any, n: int) -> str:
    (project.root / "CHANGES.txt").write_text(f"change {n} {time.time_ns()}\n")
    return project.commit(f"WO-1: change {n}")


def assert_one_line_error(proc: Any) -> str:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, proc.stderr
    return message


@pytest.fixture
def three_releases(project: Any) -> dict[str, str]:
    """staging v1, v2, v3 deployed and verified, each from a new commit; v3 live."""
    shas = {}
    for n in (1, 2, 3):
        if n > 1:
            bump(project, n)
        doc = project.json("deploy", "staging", check=0)
        assert doc["release"] == f"v{n}"
        shas[f"v{n}"] = project.head()
    assert version_sha(project.staging_port) == shas["v3"]
    return shas


def test_rollback_to_named_and_previous_releases(
    project: Any, three_releases: dict[str, str]
) -> None:
    shas = three_releases

    # Refusals first, with v3 live: none of them changes anything.
    before = live_state(project)
    runs_before = run_count(project)

    proc = project.gonogo("rollback", "staging", "--to", "v9", check=1)
    message = assert_one_line_error(proc)
    assert "v9" in message
    for label in ("v1", "v2", "v3"):
        assert label in message, f"{label} not listed in: {message}"
    assert live_state(project) == before
    assert run_count(project) == runs_before

    proc = project.gonogo("rollback", "staging", "--to", "v3", check=1)
    message = assert_one_line_error(proc)
    assert "v3" in message and "live" in message
    assert live_state(project) == before

    proc = project.gonogo("rollback", "staging", "--to", "banana", check=1)
    message = assert_one_line_error(proc)
    assert "banana" in message
    assert live_state(project) == before
    assert run_count(project) == runs_before
    assert version_sha(project.staging_port) == shas["v3"]

    v3_pid = live_state(project)[1]

    # No --to: the previous verified release (v2).
    doc = project.json("rollback", "staging", check=0)
    assert doc["to"] == "v2" and doc["from"] == "v3"
    assert doc["verification"]["ok"] is True
    assert version_sha(project.staging_port) == shas["v2"]
    version, pid, alive = live_state(project)
    assert (version, alive) == (2, True)
    assert not pid_alive(v3_pid) and not group_alive(v3_pid), "v3 outlived the rollback"

    # --to v1: any earlier release by name.
    proc = project.gonogo("rollback", "staging", "--to", "v1", check=0)
    assert "v1" in proc.stdout
    assert version_sha(project.staging_port) == shas["v1"]
    st = staging(project)
    assert st["release"] == "v1" and st["sha"] == shas["v1"]
    assert st["running"] is True and st["health"] == "200 healthy"
    assert not pid_alive(pid) and not group_alive(pid)

    # The ledger: v1 live, the rest retired, two rollback runs and events.
    states = dict(ledger_rows(project, "SELECT version, state FROM releases WHERE env='staging'"))
    assert states == {1: "live", 2: "retired", 3: "retired"}
    runs = ledger_rows(
        project, "SELECT command, status, exit_code FROM runs ORDER BY started_at DESC LIMIT 2"
    )
    assert runs == [("rollback", "succeeded", 0), ("rollback", "succeeded", 0)]
    payloads = [
        json.loads(p)
        for (p,) in ledger_rows(
            project, "SELECT payload FROM events WHERE kind='rollback' ORDER BY seq"
        )
    ]
    assert [(p["from"], p["to"], p["ok"]) for p in payloads] == [
        ("v3", "v2", True),
        ("v2", "v1", True),
    ]

    # --to the release that is live now: refused, nothing changes.
    before = live_state(project)
    proc = project.gonogo("rollback", "staging", "--to", "v1", check=1)
    message = assert_one_line_error(proc)
    assert "v1" in message and "live" in message
    assert live_state(project) == before


def test_rollback_dry_run_changes_nothing(project: Any) -> None:
    sha1 = project.head()
    project.json("deploy", "staging", check=0)
    sha2 = bump(project, 2)
    project.json("deploy", "staging", check=0)
    before = live_state(project)
    runs_before = run_count(project)

    doc = project.json("rollback", "staging", "--dry-run", check=0)
    assert doc["dry_run"] is True
    assert doc["to"] == "v1" and doc["from"] == "v2" and doc["sha"] == sha1
    assert [s["action"] for s in doc["plan"]["steps"]] == ["stop", "start"]

    text = project.gonogo("rollback", "staging", "--to", "v1", "--dry-run", check=0)
    assert "nothing was changed" in text.stdout

    assert live_state(project) == before
    assert run_count(project) == runs_before
    assert version_sha(project.staging_port) == sha2


def test_rollback_without_to_skips_a_failed_release(project: Any) -> None:
    sha1 = project.head()
    project.json("deploy", "staging", check=0)
    project.set_vars(staging_vars='WEBAPP_CRASH_ON_BOOT = "1"', deadline="5s")
    project.gonogo("deploy", "staging", check=3)  # v2 fails, v1 is put back
    project.set_vars(deadline="5s")
    sha3 = project.head()
    doc = project.json("deploy", "staging", check=0)
    assert doc["release"] == "v3"
    assert version_sha(project.staging_port) == sha3

    doc = project.json("rollback", "staging", check=0)
    assert (doc["from"], doc["to"]) == ("v3", "v1")
    assert version_sha(project.staging_port) == sha1
    states = dict(ledger_rows(project, "SELECT version, state FROM releases WHERE env='staging'"))
    assert states == {1: "live", 2: "failed", 3: "retired"}


def test_rollback_without_an_earlier_release(project: Any) -> None:
    proc = project.gonogo("rollback", "staging", check=1)
    message = assert_one_line_error(proc)
    assert "staging" in message and "no releases" in message

    project.json("deploy", "staging", check=0)
    before = live_state(project)
    proc = project.gonogo("rollback", "staging", check=1)
    message = assert_one_line_error(proc)
    assert "--to" in message
    assert live_state(project) == before
