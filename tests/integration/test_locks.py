"""The environment lock: one deploy at a time, Ctrl-C/SIGTERM, stale locks and `unlock`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import ledger_rows as rows

pytestmark = pytest.mark.integration

SLOW = 'WEBAPP_SLOW_START = "4"'


def locks(project: Any) -> list[sqlite3.Row]:
    return rows(project, "SELECT * FROM env_locks")


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    # Generous: on a loaded 2-core CI runner the deploy's gates alone can take many seconds
    # before the lock is visible; a quick machine returns as soon as the predicate holds.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def background_deploy(project: Any, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`gonogo deploy staging` running in the background; killed if the test leaves it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gonogo", "deploy", "staging", *args],
        cwd=project.root,
        env=project.base_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
        # the app a killed deploy started, if any
        info = project.proc_info("staging")
        if info is not None and proc.returncode not in (0, None):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(info["pid"]), signal.SIGKILL)


def wait_locked(project: Any, proc: subprocess.Popen[str]) -> sqlite3.Row:
    def held() -> sqlite3.Row | None:
        assert proc.poll() is None, f"deploy ended early: {proc.communicate()}"
        found = locks(project)
        return found[0] if found else None

    return wait_for(held, "the deploy to take the staging lock")


def wait_app_started(project: Any, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait until the background deploy has started the app (it is now verifying)."""

    def started() -> dict[str, Any] | None:
        assert proc.poll() is None, f"deploy ended early: {proc.communicate()}"
        return project.proc_info("staging")

    return wait_for(started, "the deploy to start the app")


def test_second_concurrent_deploy_is_refused_naming_the_holder(project: Any) -> None:
    project.set_vars(staging_vars=SLOW, deadline="15s")
    with background_deploy(project) as first:
        lock = wait_locked(project, first)
        assert lock["env"] == "staging" and lock["command"] == "deploy"
        assert lock["pid"] == first.pid

        second = project.gonogo("deploy", "staging", check=2)
        both = second.stdout + second.stderr
        assert "Traceback" not in both
        message = second.stderr.strip()
        assert len(message.splitlines()) == 1, second.stderr
        assert "locked" in message
        assert lock["run_id"] in message, message
        assert str(first.pid) in message, message
        assert f"since {lock['acquired_at']}" in message, message
        assert "stale" not in message

        # The refusal is recorded, and the first deploy is untouched by it.
        refused = rows(project, "SELECT * FROM runs WHERE status = 'refused'")
        assert len(refused) == 1 and refused[0]["exit_code"] == 2
        assert locks(project)[0]["run_id"] == lock["run_id"]

        # `unlock` will not take a lock from a live holder without --force.
        refused_unlock = project.gonogo("unlock", "staging", "--reason", "impatient", check=2)
        assert "Traceback" not in refused_unlock.stdout + refused_unlock.stderr
        assert "--force" in refused_unlock.stderr
        assert locks(project)[0]["run_id"] == lock["run_id"]

        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err

    assert locks(project) == []
    (run,) = rows(project, "SELECT * FROM runs WHERE id = ?", (lock["run_id"],))
    assert run["status"] == "succeeded"
    live = rows(project, "SELECT version FROM releases WHERE state = 'live'")
    assert [r["version"] for r in live] == [1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_deploy_is_recorded_and_releases_its_lock(project: Any, sig: int) -> None:
    project.set_vars(staging_vars=SLOW, deadline="15s")
    with background_deploy(project) as proc:
        lock = wait_locked(project, proc)
        wait_app_started(project, proc)  # now polling the slow app
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, out + err
        assert "Traceback" not in out + err
        assert "interrupted" in err

    (run,) = rows(project, "SELECT * FROM runs WHERE id = ?", (lock["run_id"],))
    assert run["status"] == "interrupted"
    assert run["exit_code"] == 130
    assert run["finished_at"]
    assert locks(project) == []
    kinds = [
        r["kind"]
        for r in rows(
            project, "SELECT kind FROM events WHERE run_id = ? ORDER BY seq", (lock["run_id"],)
        )
    ]
    assert "lock.released" in kinds
    evidence = project.root / run["evidence"]
    run_json = json.loads((evidence / "run.json").read_text())
    assert run_json["status"] == "interrupted"


def test_stale_lock_is_reported_then_cleared_with_unlock(project: Any) -> None:
    project.set_vars(staging_vars=SLOW, deadline="15s")
    with background_deploy(project) as proc:
        lock = wait_locked(project, proc)
        info = wait_app_started(project, proc)
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=10)
        # kill the app the dead deploy left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(info["pid"]), signal.SIGKILL)
    assert [r["run_id"] for r in locks(project)] == [lock["run_id"]]

    project.set_vars(deadline="15s")
    refused = project.gonogo("deploy", "staging", check=2)
    assert "Traceback" not in refused.stdout + refused.stderr
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, refused.stderr
    assert "stale" in message, message
    assert "gonogo unlock" in message, message
    assert lock["run_id"] in message

    status = project.json("status", "staging", check=0)["environments"][0]
    assert status["lock"]["stale"] is True
    assert status["lock"]["run_id"] == lock["run_id"]

    done = project.json("unlock", "staging", "--reason", "killed in test", check=0)
    assert done["cleared"]["run_id"] == lock["run_id"]
    assert locks(project) == []
    forced = rows(project, "SELECT * FROM events WHERE kind = 'lock.forced'")
    assert len(forced) == 1
    payload = json.loads(forced[0]["payload"])
    assert payload["reason"] == "killed in test"
    assert forced[0]["actor"] == "tester"
    assert forced[0]["run_id"] == lock["run_id"]
    # The killed run no longer shows as running: it is recorded as interrupted, with why.
    killed = rows(project, f"SELECT * FROM runs WHERE id = '{lock['run_id']}'")[0]
    assert killed["status"] == "interrupted"
    assert "killed in test" in killed["summary"]

    doc = project.json("deploy", "staging", check=0)
    assert doc["verification"]["ok"] is True

    # Unlocking an unlocked environment is harmless.
    project.gonogo("unlock", "staging", "--reason", "again", check=0)


def test_unlock_without_reason_is_a_usage_error(project: Any) -> None:
    proc = project.gonogo("unlock", "staging")
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both
    assert "--reason" in proc.stderr
    # DESIGN.md: exit 1 is a usage error; 2 means a gate refused (NO-GO).
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr}"
