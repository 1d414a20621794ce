"""The example web app (examples/webapp) as real processes: endpoints, switches, migrations.

The app is started the way gonogo's local provider starts it: from a copy of the folder,
with PORT/HOST/GIT_SHA/DATABASE_URL in the environment and PATH led by the bin dir of the
Python that has the app's dependencies.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest

pytestmark = pytest.mark.integration

WEBAPP_SRC = Path(__file__).resolve().parents[2] / "examples" / "webapp"
SHA = "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
HEAD = "0003_create_audit_log"
REVISIONS = ["0001_create_notes", "0002_add_notes_body", HEAD]
SWITCHES = [
    "WEBAPP_CRASH_ON_BOOT",
    "WEBAPP_HEALTH_500",
    "WEBAPP_DEGRADED",
    "WEBAPP_SLOW_START",
    "WEBAPP_WRONG_SHA",
    "WEBAPP_NO_CSRF_COOKIE",
    "WEBAPP_FLAP",
]
BOOT_DEADLINE = 10.0
POLL_STEP = 0.05


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # absolute path → sqlite:////abs/path


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WEBAPP_") and k not in {"DATABASE_URL", "GIT_SHA", "PORT"}
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(HOST="127.0.0.1", GIT_SHA=SHA, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@dataclass
class RunningApp:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    spawned_at: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5.0)

    def wait_until_answering(self, deadline: float = BOOT_DEADLINE) -> float:
        """Poll until any HTTP answer; return seconds since spawn. Fails if the process dies."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"app exited with {self.proc.returncode}:\n{self.output()}")
            try:
                httpx.get(self.url + "/api/version", timeout=0.5)
            except httpx.TransportError:
                time.sleep(POLL_STEP)
                continue
            return time.monotonic() - self.spawned_at
        pytest.fail(f"app not answering after {deadline}s:\n{self.output()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=3)


def alembic(
    release: Path, database_url: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", *args],
        cwd=release,
        env=base_env(database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, f"alembic {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def columns(db: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def tables(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def db_revision(db: Path) -> str | None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/webapp, as gonogo makes one (the folder becomes the repo root)."""
    dest = tmp_path_factory.mktemp("webapp") / "release"
    shutil.copytree(WEBAPP_SRC, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.db"))
    return dest


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def start_app(release: Path, tmp_path: Path, db_path: Path) -> Iterator[Callable[..., RunningApp]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *,
        wait: bool = True,
        database_url: str | None = None,
        command: str | None = None,
        unset: tuple[str, ...] = (),
        **env_extra: str,
    ) -> RunningApp:
        port = free_port()
        env = base_env(database_url or sqlite_url(db_path), PORT=str(port), **env_extra)
        for name in unset:
            env.pop(name, None)
        if command is not None:  # e.g. the Procfile web: line, run the way gonogo runs it
            argv = ["/bin/sh", "-c", command]
        else:
            argv = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
            argv += ["--port", str(port)]
        log = tmp_path / f"app-{port}.log"
        with log.open("wb") as out:
            spawned_at = time.monotonic()
            proc = subprocess.Popen(
                argv,
                cwd=release,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(proc)
        running = RunningApp(proc, port, log, spawned_at)
        if wait:
            running.wait_until_answering()
        return running

    yield start
    for proc in started:
        stop(proc)


# --------------------------------------------------------------------------- endpoints


def test_endpoints_when_healthy(start_app: Callable[..., RunningApp]) -> None:
    app = start_app()

    health = app.get("/api/health")
    assert health.status_code == 200
    assert health.json() == {"status": "healthy", "database_connected": True}

    csrf = app.get("/api/auth/csrf")
    assert csrf.status_code == 200
    token = csrf.json()["csrf_token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    assert csrf.cookies.get("csrf_token") == token
    set_cookie = csrf.headers["set-cookie"].lower()
    assert "samesite=lax" in set_cookie
    assert "path=/" in set_cookie
    assert app.get("/api/auth/csrf").json()["csrf_token"] != token  # fresh token each time

    version = app.get("/api/version")
    assert version.status_code == 200
    assert version.json()["gitSha"] == SHA
    assert re.fullmatch(r"\d+\.\d+\.\d+", version.json()["version"])


def test_version_unknown_without_git_sha(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(unset=("GIT_SHA",))
    assert app.get("/api/version").json()["gitSha"] == "unknown"


def test_notes_needs_migrated_schema_but_health_does_not(
    start_app: Callable[..., RunningApp], release: Path, db_path: Path
) -> None:
    app = start_app()

    notes = app.get("/api/notes")
    assert notes.status_code == 503
    assert notes.json()["error"] == "schema_unavailable"
    assert app.get("/api/health").json() == {"status": "healthy", "database_connected": True}

    alembic(release, sqlite_url(db_path), "upgrade", "head")
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("INSERT INTO notes (title, body) VALUES ('hello', 'world')")
        conn.commit()

    notes = app.get("/api/notes")
    assert notes.status_code == 200
    assert notes.json() == {"notes": [{"id": 1, "title": "hello", "body": "world"}]}


@pytest.mark.parametrize(
    ("scheme", "driver_in_log"),
    [("sqlite", "sqlite3"), ("postgres", "psycopg"), ("postgresql", "psycopg")],
)
def test_degraded_when_database_unreachable(
    start_app: Callable[..., RunningApp], tmp_path: Path, scheme: str, driver_in_log: str
) -> None:
    if scheme == "sqlite":
        url = sqlite_url(tmp_path / "no-such-dir" / "x.db")
    else:  # a closed port on 127.0.0.1: refused at once; also exercises the URL rewrite
        url = f"{scheme}://user:secret@127.0.0.1:{free_port()}/app"
    app = start_app(database_url=url)

    started = time.monotonic()
    health = app.get("/api/health")
    assert time.monotonic() - started < 3.0
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "database_connected": False}
    assert driver_in_log in app.output()  # the real driver failed, not a missing module
    assert "ModuleNotFoundError" not in app.output()
    assert app.get("/api/version").json()["gitSha"] == SHA


def test_procfile_web_command_as_gonogo_runs_it(
    start_app: Callable[..., RunningApp], release: Path
) -> None:
    procfile = (release / "Procfile").read_text().splitlines()
    commands = dict(line.split(":", 1) for line in procfile if line.strip())
    assert "alembic" not in commands["release"]
    assert commands["release"].strip().startswith("echo ")

    app = start_app(command=commands["web"].strip())  # HOST and PORT come from the env
    assert app.get("/api/health").json()["status"] == "healthy"
    assert app.get("/api/version").json()["gitSha"] == SHA


# --------------------------------------------------------------------------- switches


def test_switches_off_by_default_and_when_falsy(start_app: Callable[..., RunningApp]) -> None:
    falsy = ["0", "false", "", "FALSE", "no", "off", "0"]
    app = start_app(**dict(zip(SWITCHES, falsy, strict=True)))
    for _ in range(3):  # no flapping
        health = app.get("/api/health")
        assert health.status_code == 200
        assert health.json() == {"status": "healthy", "database_connected": True}
    assert "csrf_token" in app.get("/api/auth/csrf").cookies
    assert app.get("/api/version").json()["gitSha"] == SHA


def test_crash_on_boot_exits_non_zero_quickly(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(wait=False, WEBAPP_CRASH_ON_BOOT="1")
    returncode = app.proc.wait(timeout=10)
    elapsed = time.monotonic() - app.spawned_at
    assert returncode != 0
    assert elapsed < 5.0, f"took {elapsed:.2f}s to exit"
    assert "WEBAPP_CRASH_ON_BOOT" in app.output()


def test_health_500(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(WEBAPP_HEALTH_500="1")
    health = app.get("/api/health")
    assert health.status_code == 500
    assert health.json() == {"status": "error"}
    assert app.get("/api/version").json()["gitSha"] == SHA


def test_degraded_switch(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(WEBAPP_DEGRADED="true")
    health = app.get("/api/health")
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "database_connected": False}


def test_slow_start_delays_availability(start_app: Callable[..., RunningApp]) -> None:
    delay = 1.5
    app = start_app(wait=False, WEBAPP_SLOW_START=str(delay))
    with pytest.raises(httpx.ConnectError):  # not answering yet
        httpx.get(app.url + "/api/health", timeout=0.5)
    answered_after = app.wait_until_answering()
    assert answered_after >= delay
    assert app.get("/api/health").json()["status"] == "healthy"


def test_wrong_sha(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(WEBAPP_WRONG_SHA="1")
    body = app.get("/api/version").json()
    assert body["gitSha"] != SHA
    assert body["gitSha"] == "0000000"


def test_no_csrf_cookie(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(WEBAPP_NO_CSRF_COOKIE="1")
    csrf = app.get("/api/auth/csrf")
    assert csrf.status_code == 200
    assert csrf.json()["csrf_token"]
    assert "set-cookie" not in csrf.headers
    assert "csrf_token" not in csrf.cookies


def test_flap_alternates(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(WEBAPP_FLAP="1")
    responses = [app.get("/api/health") for _ in range(6)]
    assert [r.status_code for r in responses] == [200, 500] * 3
    assert responses[0].json()["status"] == "healthy"
    assert responses[1].json() == {"status": "error"}


def _load_faults(release: Path) -> ModuleType:
    # From the copy, so no __pycache__ is written into examples/webapp.
    spec = importlib.util.spec_from_file_location(
        "webapp_faults_under_test", release / "app" / "faults.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_fault_parsing(release: Path) -> None:
    faults = _load_faults(release)
    assert faults.Faults.from_env({}) == faults.Faults()
    assert faults.Faults().active() == []
    for off in ["", "0", "false", "False", " no ", "off"]:
        assert not faults.switch_on(off)
    for on in ["1", "true", "yes", "on", "anything"]:
        assert faults.switch_on(on)
    assert faults.seconds("2.5") == 2.5
    assert faults.seconds("-1") == 0.0
    assert faults.seconds("soon") == 0.0
    parsed = faults.Faults.from_env({name: "1" for name in SWITCHES})
    assert parsed.slow_start == 1.0
    assert sorted(parsed.active()) == sorted(SWITCHES)


# --------------------------------------------------------------------------- migrations


def test_alembic_single_head(release: Path, db_path: Path) -> None:
    heads = alembic(release, sqlite_url(db_path), "heads").stdout
    assert heads.split() == [HEAD, "(head)"]
    history = alembic(release, sqlite_url(db_path), "history").stdout
    for revision in REVISIONS:
        assert revision in history
    assert not db_path.exists()  # reading the script directory never touches the database


def test_alembic_upgrade_downgrade_round_trip(release: Path, db_path: Path) -> None:
    url = sqlite_url(db_path)
    alembic(release, url, "upgrade", "head")
    assert db_revision(db_path) == HEAD
    assert columns(db_path, "notes") == ["id", "title", "body"]
    assert {"notes", "audit_log", "alembic_version"} <= tables(db_path)
    assert HEAD in alembic(release, url, "current").stdout
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("INSERT INTO notes (title, body) VALUES ('keep me', 'lose me')")
        conn.commit()

    alembic(release, url, "downgrade", "-1")
    assert db_revision(db_path) == "0002_add_notes_body"
    assert "audit_log" not in tables(db_path)
    assert columns(db_path, "notes") == ["id", "title", "body"]

    alembic(release, url, "downgrade", "-1")
    assert db_revision(db_path) == "0001_create_notes"
    assert columns(db_path, "notes") == ["id", "title"]
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT id, title FROM notes").fetchall() == [(1, "keep me")]

    alembic(release, url, "downgrade", "base")
    assert db_revision(db_path) is None
    assert tables(db_path) == {"alembic_version"}

    alembic(release, url, "upgrade", "head")
    assert db_revision(db_path) == HEAD
    assert columns(db_path, "notes") == ["id", "title", "body"]
    assert "audit_log" in tables(db_path)
    # A second upgrade is a no-op (certification runs migrations twice).
    alembic(release, url, "upgrade", "head")
    assert db_revision(db_path) == HEAD


def test_alembic_offline_sql_sqlite(release: Path, db_path: Path) -> None:
    url = sqlite_url(db_path)
    up = alembic(release, url, "upgrade", "head", "--sql").stdout
    assert "CREATE TABLE notes" in up
    assert "ALTER TABLE notes ADD COLUMN body TEXT" in up
    assert "CREATE TABLE audit_log" in up
    assert f"'{HEAD}'" in up
    down = alembic(release, url, "downgrade", f"{HEAD}:base", "--sql").stdout
    assert "DROP TABLE audit_log" in down
    assert "DROP TABLE notes" in down
    assert not db_path.exists()  # offline mode never connects


def test_alembic_offline_sql_postgres_url_rewrite(release: Path) -> None:
    url = f"postgres://user:secret@127.0.0.1:{free_port()}/app"  # nothing listens there
    up = alembic(release, url, "upgrade", "head", "--sql").stdout
    assert "SERIAL NOT NULL" in up  # PostgreSQL dialect
    assert "ALTER TABLE notes ADD COLUMN body TEXT" in up
    assert "COMMIT" in up
    down = alembic(release, url, "downgrade", f"{HEAD}:0001_create_notes", "--sql").stdout
    assert "ALTER TABLE notes DROP COLUMN body" in down


def test_alembic_fails_loudly_on_unreachable_database(release: Path, tmp_path: Path) -> None:
    result = alembic(
        release, sqlite_url(tmp_path / "no-such-dir" / "x.db"), "upgrade", "head", check=False
    )
    assert result.returncode != 0
