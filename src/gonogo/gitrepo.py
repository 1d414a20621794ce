"""Read-only questions to git about the project repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gonogo.errors import GonogoError


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except FileNotFoundError as exc:
        raise GonogoError("git is not installed or not on PATH; install git") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise GonogoError(
            f"git {' '.join(args)} failed in {root}: "
            f"{detail[-1] if detail else 'exit ' + str(proc.returncode)}"
        )
    return proc


def is_repo(root: Path) -> bool:
    proc = _git(root, "rev-parse", "--is-inside-work-tree", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def require_repo(root: Path) -> None:
    proc = _git(root, "rev-parse", "--is-inside-work-tree", check=False)
    if proc.returncode != 0 or proc.stdout.strip() != "true":
        raise GonogoError(
            f"{root} is not a git repository; gonogo releases committed code "
            "(run `git init` and commit first)"
        )
    if _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0:
        raise GonogoError(f"{root}: the repository has no commits yet; commit your code first")


def resolve(root: Path, ref: str = "HEAD") -> str:
    proc = _git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    if proc.returncode != 0:
        raise GonogoError(f"{ref!r} is not a commit in {root}; give a branch, tag or SHA")
    return proc.stdout.strip()


def dirty_files(root: Path) -> list[str]:
    """Tracked files with uncommitted changes (untracked files are never released)."""
    out = _git(root, "status", "--porcelain", "-z", "--untracked-files=no").stdout
    files: list[str] = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        files.append(entry[3:])
        if entry[0] in "RC":
            # -z writes a rename as "R  new\0old": the old name follows as its own entry.
            next(entries, None)
    return files


def branch(root: Path) -> str | None:
    proc = _git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    return proc.stdout.strip() or None


def show(root: Path, sha: str, path: str) -> str | None:
    proc = _git(root, "show", f"{sha}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def commit_messages(root: Path, since: str | None, until: str, *, limit: int = 500) -> list[str]:
    """Full messages of the commits in since..until (all of until's history without since)."""
    span = f"{since}..{until}" if since else until
    out = _git(root, "log", f"--max-count={limit}", "--format=%B%x00", span).stdout
    return [m.strip() for m in out.split("\0") if m.strip()]


def archive(root: Path, sha: str, dest: Path) -> None:
    _git(root, "archive", "--format=tar", f"--output={dest}", sha)


def config_value(root: Path, key: str) -> str | None:
    proc = _git(root, "config", "--get", key, check=False)
    return proc.stdout.strip() or None
