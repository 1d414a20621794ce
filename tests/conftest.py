"""Shared fixtures: a real git repository of the example app, and the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pg_server import PgServer

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_APP = REPO_ROOT / "examples" / "webapp"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}


# Variables the CLI reads to know where it runs (CI systems) or what it may do; a test's
# outcome must not depend on whether the suite itself runs under CI or a gonogo user's shell.
HOST_ONLY_PREFIXES = ("ALLOW_PROD", "GONOGO_", "WEBAPP_", "GITHUB_", "GITLAB_", "CI_")
HOST_ONLY_NAMES = {"CI", "GITLAB_CI", "BUILD_URL"}


def hermetic_environ() -> dict[str, str]:
    """This process's environment without what would make the CLI think it runs in CI
    or was given gonogo settings by the person running the tests."""
    return {k: v for k, v in os.environ.items()
            if k not in HOST_ONLY_NAMES and not k.startswith(HOST_ONLY_PREFIXES)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(staging_port: int, production_port: int, *, deadline: str = "15s",
                staging_vars: str = "", production_vars: str = "") -> str:
    return f"""\
[project]
name = "webapp-test"

[migrations]
config = "alembic.ini"

[verify]
deadline = "{deadline}"

[environments.staging]
provider = "local"
port = {staging_port}
vars = {{ NODE_ENV = "staging"{", " + staging_vars if staging_vars else ""} }}

[environments.production]
provider = "local"
port = {production_port}
vars = {{ NODE_ENV = "production"{", " + production_vars if production_vars else ""} }}
protected = true
promote_from = "staging"
"""


@dataclass
class Project:
    """A git repository of the example app with a gonogo.toml, driven through the real CLI."""

    root: Path
    staging_port: int
    production_port: int
    base_env: dict[str, str] = field(default_factory=dict)

    def gonogo(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
               check: int | None = None) -> subprocess.CompletedProcess[str]:
        environ = {**self.base_env, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "gonogo", *args], cwd=self.root, env=environ,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"gonogo {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, env: dict[str, str] | None = None,
             check: int | None = None) -> dict[str, object]:
        proc = self.gonogo(*args, "--json", env=env, check=check)
        data: dict[str, object] = json.loads(proc.stdout)
        return data

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                              text=True, check=True, env={**os.environ, **GIT_ENV})
        return proc.stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def write_config(self, text: str, *, commit: bool = True) -> None:
        (self.root / "gonogo.toml").write_text(text)
        if commit:
            self.commit("update gonogo.toml")

    def set_vars(self, staging_vars: str = "", production_vars: str = "",
                 deadline: str = "15s") -> None:
        self.write_config(config_text(self.staging_port, self.production_port,
                                      deadline=deadline, staging_vars=staging_vars,
                                      production_vars=production_vars))

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def proc_info(self, env: str) -> dict[str, object] | None:
        path = self.root / ".gonogo" / "local" / env / "proc.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def stop_all(self) -> None:
        for env in ("staging", "production"):
            info = self.proc_info(env)
            if info is None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(info["pid"]), signal.SIGKILL)  # type: ignore[call-overload]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "app"
    shutil.copytree(EXAMPLE_APP, root,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv"))
    (root / ".gitignore").write_text(".gonogo/\n__pycache__/\n*.db\n")
    staging_port, production_port = free_port(), free_port()
    while production_port == staging_port:
        production_port = free_port()
    base_env = hermetic_environ()
    base_env.update(GIT_ENV)
    base_env["GONOGO_ACTOR"] = "tester"
    proj = Project(root, staging_port, production_port, base_env)
    (root / "gonogo.toml").write_text(config_text(staging_port, production_port))
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    proj.commit("WO-1: example app")
    try:
        yield proj
    finally:
        proj.stop_all()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server per test session (per xdist worker)."""
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty PostgreSQL database of its own for one test."""
    return pg_server.url(pg_server.create_database())


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private buildah store (its storage.conf) for every CLI run of one test module."""
    from buildah_env import require_buildah

    require_buildah()
    base = tmp_path_factory.mktemp("buildah")
    conf = base / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{base / "root"}"\nrunroot = "{base / "run"}"\n'
    )
    yield conf
    shutil.rmtree(base / "root", ignore_errors=True)
    shutil.rmtree(base / "run", ignore_errors=True)


@pytest.fixture(scope="module")
def api_server() -> Iterator[Any]:
    """The fake Heroku Platform API on 127.0.0.1 (a FakeServer), one per test module."""
    from fakes.heroku_server import serve_fakes

    with serve_fakes() as running:
        yield running
