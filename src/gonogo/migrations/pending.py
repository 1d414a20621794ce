"""What `migrate apply` would run now: the database's revisions, the repository's heads,
and the offline SQL between them, whose sha256 is what an approval approves."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gonogo.errors import GonogoError
from gonogo.migrations.alembic import current_revisions


@dataclass(frozen=True)
class MigrationTarget:
    """Where an environment's migrations run: the release's files and the app's environment."""

    cwd: Path
    environ: Mapping[str, str]
    database_url: str
    ini: str


@dataclass(frozen=True)
class PendingSql:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    sql: str

    @property
    def pending(self) -> bool:
        return sorted(self.current) != sorted(self.heads)

    @property
    def start(self) -> str:
        return ",".join(self.current) or "base"

    @property
    def target(self) -> str:
        return ",".join(self.heads)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def _alembic(target: MigrationTarget, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", target.ini, *args],
        cwd=target.cwd,
        env=dict(target.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise GonogoError(
            f"alembic {' '.join(args)} failed in {target.cwd}: "
            f"{lines[-1] if lines else 'exit ' + str(proc.returncode)}"
        )
    return proc.stdout


def heads(target: MigrationTarget) -> tuple[str, ...]:
    out = _alembic(target, "heads")
    return tuple(sorted(line.split()[0] for line in out.splitlines() if line.strip()))


def pending_sql(target: MigrationTarget) -> PendingSql:
    current = tuple(current_revisions(target.database_url))
    repo_heads = heads(target)
    if len(repo_heads) > 1:
        raise GonogoError(
            f"the migration history has {len(repo_heads)} heads ({', '.join(repo_heads)}); "
            f"merge them first: alembic merge -m 'merge heads' {' '.join(repo_heads)}"
        )
    if sorted(current) == sorted(repo_heads):
        return PendingSql(current, repo_heads, "")
    if len(current) > 1:
        raise GonogoError(
            f"the database has several revisions stamped ({', '.join(current)}); "
            "resolve that before applying"
        )
    span = f"{current[0]}:head" if current else "head"
    return PendingSql(current, repo_heads, _alembic(target, "upgrade", span, "--sql"))
