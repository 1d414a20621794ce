"""Bad input: each is a one-line error naming what to fix, the right exit code, no traceback,
and nothing live changes."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import pid_alive

pytestmark = pytest.mark.integration


def one_line_error(proc: Any) -> str:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    assert "internal error" not in both, both
    message = proc.stderr.strip()
    assert message, f"no message on stderr (stdout: {proc.stdout})"
    assert len(message.splitlines()) == 1, f"not one line:\n{proc.stderr}"
    return message


def run_count(project: Any) -> int:
    path = project.root / ".gonogo" / "ledger.db"
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=15)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def nothing_started(project: Any) -> None:
    assert project.proc_info("staging") is None
    assert not (project.root / ".gonogo" / "local" / "staging" / "releases").exists()
    with socket.socket() as sock:
        sock.settimeout(0.5)
        assert sock.connect_ex(("127.0.0.1", project.staging_port)) != 0


@pytest.fixture
def live_v1(project: Any) -> dict[str, Any]:
    """staging v1 deployed and verified; returns its proc.json."""
    project.json("deploy", "staging", check=0)
    info = project.proc_info("staging")
    assert info is not None and pid_alive(int(info["pid"]))
    return info


def assert_still_live(project: Any, before: dict[str, Any]) -> None:
    info = project.proc_info("staging")
    assert info is not None
    assert (info["pid"], info["version"]) == (before["pid"], before["version"])
    assert pid_alive(int(info["pid"]))


# ---------------------------------------------------------------------------------------------
# gonogo.toml
# ---------------------------------------------------------------------------------------------


def test_missing_config(project: Any) -> None:
    (project.root / "gonogo.toml").unlink()
    proc = project.gonogo("deploy", "staging", check=1)
    message = one_line_error(proc)
    assert "gonogo.toml" in message
    nothing_started(project)
    assert not (project.root / ".gonogo").exists()


def test_malformed_toml_names_file_and_line(project: Any) -> None:
    text = (project.root / "gonogo.toml").read_text()
    lines = text.splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("deadline"))
    lines[n] = 'deadline = "15s'  # unterminated string
    project.write_config("\n".join(lines) + "\n", commit=False)
    for args in (("deploy", "staging"), ("config", "validate")):
        proc = project.gonogo(*args, check=1)
        message = one_line_error(proc)
        assert f"gonogo.toml:{n + 1}" in message, message
    nothing_started(project)


def test_unknown_key_names_the_key_path(project: Any) -> None:
    text = (project.root / "gonogo.toml").read_text()
    text = text.replace('provider = "local"\n', 'provider = "local"\ncolour = "blue"\n', 1)
    line = text.splitlines().index('colour = "blue"') + 1
    project.write_config(text, commit=False)
    for args in (("deploy", "staging"), ("config", "validate")):
        proc = project.gonogo(*args, check=1)
        message = one_line_error(proc)
        assert "environments.staging.colour" in message, message
        assert f"gonogo.toml:{line}" in message, message
    nothing_started(project)


def test_config_validate_ok(project: Any) -> None:
    proc = project.gonogo("config", "validate", check=0)
    assert "Traceback" not in proc.stdout + proc.stderr
    doc = project.json("config", "validate", check=0)
    assert doc["exit_code"] == 0


def test_bad_value_names_key_and_value(project: Any) -> None:
    text = (project.root / "gonogo.toml").read_text()
    text = text.replace(f"port = {project.staging_port}", "port = 80", 1)
    project.write_config(text, commit=False)
    proc = project.gonogo("config", "validate", check=1)
    message = one_line_error(proc)
    assert "environments.staging.port" in message, message
    assert "gonogo.toml:" in message


# ---------------------------------------------------------------------------------------------
# command line and environment
# ---------------------------------------------------------------------------------------------


def test_unknown_environment(project: Any) -> None:
    proc = project.gonogo("deploy", "nope", check=1)
    message = one_line_error(proc)
    assert "nope" in message
    assert "production" in message and "staging" in message
    assert run_count(project) == 0
    for args in (("status", "nope"), ("rollback", "nope"), ("history", "nope")):
        proc = project.gonogo(*args, check=1)
        assert "nope" in one_line_error(proc)


@pytest.mark.parametrize(
    "args",
    [("deploy",), ("deploy", "staging", "--bogus"), ("nosuchcommand",)],
    ids=["missing-env", "unknown-option", "unknown-command"],
)
def test_usage_errors_exit_1(project: Any, args: tuple[str, ...]) -> None:
    # DESIGN.md: 1 is a usage error; argparse's own 2 would read as NO-GO.
    proc = project.gonogo(*args, check=1)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert run_count(project) == 0


def test_port_in_use(project: Any) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", project.staging_port))
        squatter.listen()
        proc = project.gonogo("deploy", "staging", check=1)
        message = one_line_error(proc)
        assert str(project.staging_port) in message
        assert "in use" in message
        assert project.proc_info("staging") is None
        assert not (project.root / ".gonogo" / "local" / "staging" / "releases").exists()
    assert run_count(project) == 0


def test_port_in_use_dry_run(project: Any) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", project.staging_port))
        squatter.listen()
        proc = project.gonogo("deploy", "staging", "--dry-run", check=1)
        assert str(project.staging_port) in one_line_error(proc)


# ---------------------------------------------------------------------------------------------
# the repository
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "procfile", ["release: echo no web here\n", None], ids=["no-web-line", "no-procfile"]
)
def test_procfile_without_web_line(project: Any, procfile: str | None) -> None:
    if procfile is None:
        (project.root / "Procfile").unlink()
    else:
        (project.root / "Procfile").write_text(procfile)
    project.commit("WO-1: Procfile without web")
    proc = project.gonogo("deploy", "staging", check=1)
    message = one_line_error(proc)
    assert "Procfile" in message
    assert "web:" in message
    nothing_started(project)
    assert run_count(project) == 0


def test_bad_repository_states_leave_the_live_release_alone(
    project: Any, live_v1: dict[str, Any]
) -> None:
    v2 = project.root / ".gonogo" / "local" / "staging" / "releases" / "v2"

    # A dirty tree: the clean-tree gate refuses (2), nothing changes.
    readme = project.root / "README.md"
    original = readme.read_text()
    readme.write_text(original + "\nuncommitted\n")
    runs = run_count(project)
    proc = project.gonogo("deploy", "staging", check=2)
    message = one_line_error(proc)
    assert "NO-GO" in message and "clean-tree" in message
    assert "README.md" in message
    assert "nothing was changed" in message
    assert_still_live(project, live_v1)
    assert run_count(project) == runs + 1  # the refusal is recorded
    assert not v2.exists()
    readme.write_text(original)

    # A committed Procfile without `web:`: a usage error (1), nothing changes.
    (project.root / "Procfile").write_text("release: echo no web here\n")
    project.commit("WO-1: Procfile without web")
    runs = run_count(project)
    proc = project.gonogo("deploy", "staging", check=1)
    message = one_line_error(proc)
    assert "Procfile" in message and "web:" in message
    assert_still_live(project, live_v1)
    assert run_count(project) == runs
    assert not v2.exists()

    # Not a git repository any more: 1, nothing changes.
    shutil.rmtree(project.root / ".git")
    proc = project.gonogo("deploy", "staging", check=1)
    message = one_line_error(proc)
    assert "not a git repository" in message
    assert_still_live(project, live_v1)
    assert not v2.exists()


def test_untracked_files_do_not_make_the_tree_dirty(project: Any) -> None:
    (project.root / "notes.txt").write_text("scratch\n")
    project.gonogo("deploy", "staging", "--dry-run", check=0)


def test_not_a_git_repository_fresh_copy(project: Any, tmp_path: Path) -> None:
    copy = tmp_path / "nogit"
    shutil.copytree(project.root, copy, ignore=shutil.ignore_patterns(".git", ".gonogo"))
    project_copy = type(project)(
        copy, project.staging_port, project.production_port, project.base_env
    )
    proc = project_copy.gonogo("deploy", "staging", check=1)
    message = one_line_error(proc)
    assert "not a git repository" in message
    assert project_copy.proc_info("staging") is None
