"""What `migrate apply` would run now: the database's revisions, the repository's heads,
and the offline SQL between them, whose sha256 is what an approval approves."""

from __future__ import annotations

import hashlib
import re
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


def release_ini(files: Path, ini: str, release: str, config_file: str) -> str:
    """`ini` once it is known to exist in a release's files (`release` names the release)."""
    if not (files / ini).is_file():
        raise GonogoError(f"{release} has no {ini}; set [migrations] config in {config_file}")
    return ini


@dataclass(frozen=True)
class PendingSql:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    sql: str
    # What `sql` is: alembic's offline SQL, or, where alembic cannot render it offline
    # (SQLite batch operations need a live table to copy), the revision scripts themselves.
    basis: str = "offline SQL"

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

    def revision_sql(self) -> dict[str, str]:
        """Each pending revision's own part of `sql`, in apply order.

        alembic heads each revision's offline SQL with `-- Running upgrade A -> B`; the
        fallback text heads each script with `-- revision B: file`. What comes before the
        first heading (creating alembic_version, BEGIN) belongs to no revision, and the
        transaction lines around a part depend on where the span ends, so they are left out:
        a revision's part then reads the same whichever revision the database started from.
        """
        parts: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in self.sql.splitlines():
            heading = _HEADING.match(line)
            if heading is not None:
                current = parts.setdefault(heading.group("to") or heading.group("rev"), [])
                continue  # a comment naming the revision, not SQL it runs
            # Stamping alembic_version is INSERT or UPDATE depending on what was applied
            # before (and names the revision before it): it is bookkeeping, not the
            # revision's own SQL, and would make the same revision differ between runs.
            if current is not None and not _VERSION_STAMP.match(line):
                current.append(line)
        return {rev: _trimmed(lines) for rev, lines in parts.items()}

    def revision_hashes(self) -> dict[str, str]:
        """sha256 of each pending revision's part (see `revision_sql`)."""
        return {
            rev: hashlib.sha256(text.encode("utf-8")).hexdigest()
            for rev, text in self.revision_sql().items()
        }


# `-- Running upgrade a1 -> b1`, or for a merge `-- Running upgrade b1, c1 -> m1`.
_HEADING = re.compile(
    r"^-- (?:Running upgrade [^>]* -> (?P<to>[^ ]+)|revision (?P<rev>[^ :]+): .*)\s*$"
)
_VERSION_STAMP = re.compile(
    r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\S*alembic_version\b", re.IGNORECASE
)
_EDGE = {"", "BEGIN;", "COMMIT;", "BEGIN TRANSACTION;"}


def _trimmed(lines: list[str]) -> str:
    start, end = 0, len(lines)
    while start < end and lines[start].strip() in _EDGE:
        start += 1
    while end > start and lines[end - 1].strip() in _EDGE:
        end -= 1
    return "\n".join(lines[start:end]) + "\n"


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


def pending_sql(target: MigrationTarget) -> PendingSql:
    from gonogo.migrations.history import load_history, pending

    current = tuple(current_revisions(target.database_url))
    history = load_history(target.cwd / target.ini)
    repo_heads = tuple(sorted(history.heads))
    # A database ahead of the code is named as such, before alembic's own wording.
    pending(history, list(current))
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
    try:
        return PendingSql(current, repo_heads, _alembic(target, "upgrade", span, "--sql"))
    except GonogoError as exc:
        if "--sql mode" not in exc.message and "batch mode" not in exc.message:
            raise
    return PendingSql(
        current,
        repo_heads,
        _scripts(target, current),
        basis="revision scripts (alembic cannot render this SQL offline)",
    )


def _scripts(target: MigrationTarget, current: tuple[str, ...]) -> str:
    """The pending revision files, in apply order: what will run, when the SQL cannot be
    shown in advance."""
    from gonogo.migrations.history import load_history, pending

    history = load_history(target.cwd / target.ini)
    parts = []
    for revision in pending(history, list(current)):
        path = Path(history.get(revision).path)
        parts.append(f"-- revision {revision}: {path.name}\n{path.read_text(encoding='utf-8')}")
    return "\n".join(parts)
