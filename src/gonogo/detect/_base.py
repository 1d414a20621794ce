"""Shared plumbing of the detector: bounded repository reads, findings, the trail of a path.

Nothing here executes anything: files are read (bounded in number and size, never outside
the repository root) and every finding carries the chain of steps that leads to it.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

MAX_FILES = 200  # files read per scan
MAX_BYTES = 1_000_000  # bytes per file
MAX_SCRIPT_DEPTH = 5  # scripts calling scripts calling ...
MAX_CALL_DEPTH = 12  # Python calls followed from a start-up hook
MAX_CALLS = 4000  # Python function bodies walked per scan
MAX_INDEX = 20_000  # directory entries listed (for basename and apps.py look-ups)

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "env",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        ".gonogo",
        "dist",
        "build",
    }
)

# Variables the platform sets on every dyno / container: their value is unknown but present.
PLATFORM_VARS = frozenset(
    {
        "DATABASE_URL",
        "PORT",
        "DYNO",
        "HOME",
        "PATH",
        "HOSTNAME",
        "PWD",
        "USER",
        "REDIS_URL",
        "SOURCE_VERSION",
        "STACK",
    }
)
_PLATFORM_PREFIX = re.compile(r"^(HEROKU_|HEROKU$)")


def platform_var(name: str) -> bool:
    return name in PLATFORM_VARS or bool(_PLATFORM_PREFIX.match(name))


@dataclass(frozen=True)
class Detection:
    """One way the schema would be changed as a side effect of releasing or booting the app."""

    file: str  # repo-relative posix path
    line: int  # 1-based
    what: str  # what would run, e.g. "alembic upgrade head"
    why: str  # why it is implicit, with the chain of steps that leads to it
    source: str  # "procfile", "heroku.yml", "app.json", "dockerfile", "script", "startup-code"


@dataclass(frozen=True)
class EnvVal:
    """The effective default of one environment variable and where it comes from."""

    value: str | None  # None: unset
    source: str  # e.g. "Dockerfile:4 ENV", "unset"
    unknown: bool = False  # set, value unknown (platform-provided, computed)


Env = dict[str, EnvVal]


def env_lookup(env: Env, name: str, *, case_insensitive: bool = False) -> EnvVal:
    """The effective value of NAME: the overlay (Dockerfile ENV, script exports) or unset."""
    if name in env:
        return env[name]
    if case_insensitive:
        lowered = name.lower()
        for key, val in env.items():
            if key.lower() == lowered:
                return val
    if platform_var(name):
        return EnvVal(None, "set by the platform", unknown=True)
    return EnvVal(None, "unset")


@dataclass(frozen=True)
class Trail:
    """How execution got somewhere: the origin (why it runs at all), the steps, the guards."""

    origin: str
    chain: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    depth: int = 0  # scripts followed
    py_source: str = "startup-code"  # source label for findings in Python files
    quiet: bool = False  # evaluating for a value only: record no findings

    def step(self, text: str) -> Trail:
        return replace(self, chain=(*self.chain, text))

    def note(self, text: str) -> Trail:
        if text in self.notes:
            return self
        return replace(self, notes=(*self.notes, text))

    def deeper(self) -> Trail:
        return replace(self, depth=self.depth + 1)

    def why(self, final: str) -> str:
        text = f"{self.origin}: " + " → ".join((*self.chain, final))
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Repo:
    """Bounded, read-only access to the files under one root."""

    root: Path
    max_files: int = MAX_FILES
    max_bytes: int = MAX_BYTES
    examined: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _texts: dict[str, str | None] = field(default_factory=dict)
    _index: list[str] | None = None
    _problem_files: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    @staticmethod
    def norm(rel: str) -> str | None:
        """A clean repo-relative posix path, or None when it would leave the root."""
        if not rel:
            return None
        rel = rel.replace("\\", "/")
        if rel.startswith("/"):
            return None
        normed = posixpath.normpath(rel)
        if normed == ".." or normed.startswith("../"):
            return None
        return normed

    def _path(self, rel: str) -> Path | None:
        normed = self.norm(rel)
        if normed is None or "\x00" in normed:
            return None
        path = self.root / normed
        try:
            resolved = path.resolve()
        except (OSError, ValueError, RuntimeError):
            return None
        if resolved != self.root and not resolved.is_relative_to(self.root):
            return None
        return path

    def is_file(self, rel: str) -> bool:
        path = self._path(rel)
        try:
            return path is not None and path.is_file()
        except (OSError, ValueError):
            return False

    def is_dir(self, rel: str) -> bool:
        path = self._path(rel)
        try:
            return path is not None and path.is_dir()
        except (OSError, ValueError):
            return False

    def problem(self, rel: str, reason: str) -> None:
        if rel in self._problem_files:
            return
        self._problem_files.add(rel)
        self.problems.append(f"{rel}: {reason}")

    def read(self, rel: str) -> str | None:
        """The text of a repo file (utf-8), or None. Failures are recorded as problems."""
        normed = self.norm(rel)
        if normed is None or "\x00" in normed:
            return None
        if normed in self._texts:
            return self._texts[normed]
        text = self._read(normed)
        self._texts[normed] = text
        return text

    def _read(self, rel: str) -> str | None:
        path = self.root / rel
        try:
            if path.is_symlink() or not path.exists():
                resolved = path.resolve()
                if not resolved.is_relative_to(self.root):
                    self.problem(rel, "points outside the repository; not read")
                    return None
            if not path.is_file():
                return None
        except (OSError, RuntimeError) as exc:
            self.problem(rel, f"cannot be read: {getattr(exc, 'strerror', None) or exc}")
            return None
        if len(self.examined) >= self.max_files:
            self.problem(rel, f"not read: scan limit of {self.max_files} files reached")
            return None
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                self.problem(rel, f"not read: {size} bytes is over the {self.max_bytes}-byte limit")
                return None
            data = path.read_bytes()
        except OSError as exc:
            self.problem(rel, f"cannot be read: {exc.strerror or exc}")
            return None
        self.examined.append(rel)
        if b"\x00" in data:
            self.problem(rel, "binary file (NUL bytes); cannot be scanned")
            return None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.problem(rel, f"not valid UTF-8 (byte {exc.start}); cannot be scanned")
            return None

    def files(self) -> list[str]:
        """Repo-relative paths of files (bounded; skips VCS, virtualenv and dependency dirs)."""
        if self._index is not None:
            return self._index
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")
            )
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                found.append(name if rel_dir == "." else f"{rel_dir}/{name}")
            if len(found) >= MAX_INDEX:
                break
        self._index = found[:MAX_INDEX]
        return self._index

    def by_basename(self, name: str) -> list[str]:
        hits = [f for f in self.files() if posixpath.basename(f) == name]
        return sorted(hits, key=lambda f: (f.count("/"), f))


@dataclass
class Collector:
    """Findings of one scan, one per file:line (the first path that reaches it is kept)."""

    findings: dict[tuple[str, int], Detection] = field(default_factory=dict)
    calls: int = 0  # Python function bodies walked (bounded by MAX_CALLS)

    def add(self, file: str, line: int, what: str, trail: Trail, source: str) -> None:
        if trail.quiet:
            return
        key = (file, line)
        if key in self.findings:
            return
        final = f"{file}:{line} `{short(what)}`"
        self.findings[key] = Detection(file, line, short(what, 200), trail.why(final), source)


@dataclass
class Ctx:
    """One scan: the repository, the findings, and caches shared by the scanners."""

    repo: Repo
    out: Collector = field(default_factory=Collector)
    cache: dict[str, object] = field(default_factory=dict)
    overlay: Env = field(default_factory=dict)  # variables the target environment sets

    def env(self, base: Env | None = None) -> Env:
        """The launch environment: image ENV (BASE) overridden by the environment's config."""
        return {**(base or {}), **self.overlay}
