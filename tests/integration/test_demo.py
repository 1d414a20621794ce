"""`gonogo demo` end to end, as a new user runs it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from pathlib import Path


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_demo_runs_the_playbook_and_cleans_up(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "gonogo", "demo", "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    titles = [s["title"] for s in doc["steps"]]
    assert len(titles) == 11
    assert all(s["ok"] for s in doc["steps"]), doc["steps"]
    codes = [s["exit_code"] for s in doc["steps"]]
    assert codes == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3]
    assert "prod-guard" in doc["steps"][5]["message"]
    assert "Rolled back automatically" in doc["steps"][10]["message"]
    # The human summary went to stderr, stdout is only the JSON document.
    assert "✔ 2. Deploy staging" in proc.stderr

    # Every process the demo started is stopped (no --keep): both ports are free again.
    config = tomllib.loads((workspace / "gonogo.toml").read_text())
    for env in config["environments"].values():
        assert _port_free(env["port"])

    # Production got the very artifact verified on staging.
    ledger = workspace / ".gonogo" / "ledger.db"
    import sqlite3

    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT env, version, artifact, state, verified_at FROM releases ORDER BY env, version"
        ).fetchall()
    by_env = {(env, v): (art, state, verified) for env, v, art, state, verified in rows}
    assert by_env[("production", 1)][0] == by_env[("staging", 1)][0]
    assert by_env[("staging", 2)][1] == "failed"
    assert by_env[("staging", 1)][1] == "live"


def test_demo_refuses_a_non_empty_workspace(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "gonogo", "demo", "--workspace", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "not empty" in proc.stderr
    assert "Traceback" not in proc.stderr
