"""A real, throwaway PostgreSQL server for the tests (no mocks, no shared cluster).

`PgServer.start()` runs initdb into a fresh folder and starts postgres on 127.0.0.1 with a
free port, trust authentication and durability off (the data dies with the test session).
PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user
that Debian's package creates. A missing server is a failure, never a skip: `.ci/run`
installs the `postgresql` package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin(name: str) -> str:
    """initdb/pg_ctl from PATH, else from Debian's versioned folder (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError(
        f"PostgreSQL's {name} is not installed; install the `postgresql` package "
        "(apt-get install postgresql) — the tests need a real server"
    )


@dataclass
class PgServer:
    folder: Path
    port: int
    user: str = "postgres"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        auth = f"{self.user}:{password}" if password else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    @staticmethod
    def _as_owner(argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    @classmethod
    def start(cls) -> PgServer:
        folder = Path(tempfile.mkdtemp(prefix="gonogo-pg-"))
        folder.chmod(0o755)
        server = cls(folder=folder, port=_free_port())
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        else:
            server.user = os.environ.get("USER") or "postgres"
        subprocess.run(
            cls._as_owner(
                [pg_bin("initdb"), "-D", str(server.data), "-U", server.user,
                 "--auth=trust", "--encoding=UTF8", "--no-instructions"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={server.port} "
            f"-c unix_socket_directories={folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            cls._as_owner(
                [pg_bin("pg_ctl"), "-D", str(server.data), "-o", options,
                 "-l", str(folder / "server.log"), "-w", "-t", "60", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        server.wait_ready()
        return server

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                self._as_owner(
                    [pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.folder, ignore_errors=True)

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def databases(self) -> set[str]:
        rows = self.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")
        return {str(r[0]) for r in rows}
