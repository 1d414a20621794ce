"""An alembic project's revision history, read from its files: no env.py, no database.

`load_history(ini)` reads ``script_location`` (and ``version_locations``, ``prepend_sys_path``)
from an ``alembic.ini`` - relative paths are taken from the ini's folder, ``%(here)s`` works -
and walks the revision files with ``alembic.script.ScriptDirectory``. Loading a revision file
imports it (that is how alembic reads ``revision``/``down_revision``), so a revision that does
not compile, or that imports the app and the import fails, becomes a one-line
`GonogoError` naming that file instead of a traceback.

`pending(history, current)` answers "what would ``alembic upgrade heads`` apply, in order",
given the revisions stamped in a database's ``alembic_version``.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from gonogo.errors import GonogoError

DownRevision = str | tuple[str, ...] | None


@dataclass(frozen=True)
class RevisionInfo:
    """One revision file. ``down_revision`` is a tuple for a merge revision, None for a base."""

    revision: str
    down_revision: DownRevision
    path: Path
    doc: str
    depends_on: tuple[str, ...] = ()
    branch_labels: tuple[str, ...] = ()
    module: ModuleType | None = field(default=None, repr=False, compare=False)

    @property
    def down_revisions(self) -> tuple[str, ...]:
        return _as_tuple(self.down_revision)

    @property
    def is_merge(self) -> bool:
        return len(self.down_revisions) > 1


@dataclass(frozen=True)
class History:
    """Revisions in apply order (every revision after all of its down revisions), and heads."""

    heads: list[str]
    revisions: list[RevisionInfo]
    ini: Path | None = None
    script_location: Path | None = None
    sys_path: tuple[str, ...] = ()

    def get(self, revision: str) -> RevisionInfo:
        for info in self.revisions:
            if info.revision == revision:
                return info
        raise GonogoError(f"revision {revision} is not in the migration history")

    def __contains__(self, revision: object) -> bool:
        return any(info.revision == revision for info in self.revisions)

    @property
    def single_head(self) -> bool:
        return len(self.heads) == 1

    @contextmanager
    def importable(self) -> Iterator[None]:
        """Put the project's ``prepend_sys_path`` entries on sys.path while revisions run."""
        with _prepended(self.sys_path):
            yield


def load_history(ini: Path | str) -> History:
    """Read the revision history of the alembic project configured by ``ini``."""
    ini = Path(ini)
    if not ini.is_file():
        raise GonogoError(f"{_display(ini)}: no such alembic config file")
    here = ini.resolve().parent
    config = _read_config(ini)
    script_location = _option(config, ini, "script_location")
    if not script_location:
        raise GonogoError(f"{_display(ini)}: no script_location in its [alembic] section")
    location = _resolve(here, script_location)
    if not location.is_dir():
        raise GonogoError(
            f"{_display(ini)}: script_location {script_location} does not exist ({location})"
        )
    version_locations = [
        str(_resolve(here, v))
        for v in _split_paths(config, ini, "version_locations", "version_path_separator")
    ]
    sys_path = tuple(
        str(_resolve(here, p)) for p in _split_paths(config, ini, "prepend_sys_path", None)
    )

    from alembic.script import ScriptDirectory

    caught: list[warnings.WarningMessage] = []
    try:
        with _prepended(sys_path), warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            caught = recorded
            script = ScriptDirectory(
                str(location),
                version_locations=version_locations or None,
                sourceless=_bool_option(config, ini, "sourceless"),
                recursive_version_locations=_bool_option(
                    config, ini, "recursive_version_locations"
                ),
            )
            heads = list(script.get_heads())
            scripts = list(script.walk_revisions(base="base", head="heads"))
    except GonogoError:
        raise
    except (Exception, SystemExit) as exc:
        broken = _failing_file(exc)
        if broken is not None:
            raise GonogoError(
                f"cannot load alembic revision {_display(broken)}: {_one_line(exc)}",
                details={"file": str(broken)},
            ) from None
        # alembic warns "Revision X referenced from Y is not present" before failing
        warned = [" ".join(str(w.message).split()) for w in caught if "alembic" in w.filename]
        if warned or _raised_in_alembic(exc):
            detail = warned[-1] if warned else _one_line(exc, with_type=False)
            raise GonogoError(f"{_display(ini)}: broken revision history: {detail}") from None
        raise GonogoError(f"{_display(ini)}: cannot read revisions: {_one_line(exc)}") from None

    revisions = [
        RevisionInfo(
            revision=str(s.revision),
            down_revision=_down(s.down_revision),
            path=Path(s.path),
            doc=str(s.doc or ""),
            depends_on=_as_tuple(getattr(s, "dependencies", None)),
            branch_labels=tuple(sorted(getattr(s, "branch_labels", None) or ())),
            module=s.module,
        )
        for s in reversed(scripts)
    ]
    return History(
        heads=sorted(heads),
        revisions=revisions,
        ini=ini,
        script_location=location,
        sys_path=sys_path,
    )


def pending(history: History, current: Sequence[str]) -> list[str]:
    """Revisions after ``current`` up to the heads, in apply order.

    ``current`` is what ``alembic_version`` holds ([] for an empty database). A revision the
    repository does not know (the database is ahead of the repo, or on another branch) is a
    `GonogoError`.
    """
    by_id = {info.revision: info for info in history.revisions}
    unknown = [rev for rev in current if rev not in by_id]
    if unknown:
        raise GonogoError(
            f"the database is at revision {', '.join(unknown)}, which is not in this "
            "repository's migration history (is the database ahead of the code?)"
        )
    applied: set[str] = set()
    stack = list(current)
    while stack:
        rev = stack.pop()
        if rev in applied:
            continue
        applied.add(rev)
        info = by_id[rev]
        stack.extend(info.down_revisions)
        stack.extend(info.depends_on)
    return [info.revision for info in history.revisions if info.revision not in applied]


def applied_set(history: History, current: Sequence[str]) -> set[str]:
    """Every revision a database at ``current`` has applied (``current`` and its ancestors)."""
    by_id = {info.revision: info for info in history.revisions}
    applied: set[str] = set()
    stack = [rev for rev in current if rev in by_id]
    while stack:
        rev = stack.pop()
        if rev not in applied:
            applied.add(rev)
            stack.extend(by_id[rev].down_revisions)
            stack.extend(by_id[rev].depends_on)
    return applied


def to_undo(history: History, current: Sequence[str], target: str) -> list[str]:
    """Revisions a downgrade from ``current`` to ``target`` undoes, in undo order (newest first).

    ``target`` is a revision at or below ``current``, or ``base``. A target that is not below
    the database's revision, or a path through a merge, is a `GonogoError`: alembic would
    have to guess which branch to take apart.
    """
    pending(history, current)  # the same check that the database is known to this history
    applied = applied_set(history, current)
    keep: set[str] = set()
    if target != "base":
        if target not in history:
            raise GonogoError(f"revision {target} is not in the migration history")
        if target not in applied:
            raise GonogoError(
                f"revision {target} is not below the database's revision "
                f"{', '.join(current) or 'base'}; a downgrade can only go back"
            )
        keep = applied_set(history, [target])
    undo = [info for info in reversed(history.revisions) if info.revision in applied - keep]
    merges = [info.revision for info in undo if info.is_merge]
    if merges:
        raise GonogoError(
            f"undoing {merges[0]} would take a merge revision apart; downgrade it with "
            "alembic directly, choosing the branch"
        )
    return [info.revision for info in undo]


# -- helpers -------------------------------------------------------------------------------


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _down(value: Any) -> DownRevision:
    if value is None or isinstance(value, str):
        return value
    items = tuple(str(v) for v in value)
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _one_line(exc: BaseException, *, with_type: bool = True) -> str:
    text = f"{exc.msg} (line {exc.lineno})" if isinstance(exc, SyntaxError) else str(exc)
    text = " ".join(text.split())
    if len(text) > 300:
        text = text[:297] + "..."
    if not with_type:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failing_file(exc: BaseException) -> Path | None:
    """The revision file whose loading raised ``exc``, from the traceback or a SyntaxError."""
    found: Path | None = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in ("_from_path", "load_module_py", "load_python_file"):
            candidate = tb.tb_frame.f_locals.get("path")
            if candidate is not None:
                found = Path(candidate)
        tb = tb.tb_next
    if found is None and isinstance(exc, SyntaxError) and exc.filename:
        found = Path(exc.filename)
    return found


def _raised_in_alembic(exc: BaseException) -> bool:
    if type(exc).__module__.startswith("alembic"):
        return True
    tb: TracebackType | None = exc.__traceback__
    last = ""
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return f"{os.sep}alembic{os.sep}" in last


def _read_config(ini: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": str(ini.resolve().parent)})
    try:
        with ini.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise GonogoError(
            f"{_display(ini)}: cannot read alembic config: {_one_line(exc, with_type=False)}"
        ) from None
    return parser


def _option(config: configparser.ConfigParser, ini: Path, name: str) -> str | None:
    if not config.has_section("alembic"):
        raise GonogoError(f"{_display(ini)}: no [alembic] section")
    try:
        value = config.get("alembic", name, fallback=None)
    except configparser.Error as exc:
        raise GonogoError(
            f"{_display(ini)}: cannot read {name}: {_one_line(exc, with_type=False)}"
        ) from None
    if value is None:
        return None
    return value.strip() or None


def _bool_option(config: configparser.ConfigParser, ini: Path, name: str) -> bool:
    value = _option(config, ini, name)
    return value is not None and value.lower() in ("true", "1", "yes", "on")


_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";", ",": ","}


def _split_paths(
    config: configparser.ConfigParser, ini: Path, name: str, legacy_separator: str | None
) -> list[str]:
    """Split a path-list option the way alembic does (``path_separator``, else legacy rules)."""
    value = _option(config, ini, name)
    if not value:
        return []
    sep_name = _option(config, ini, "path_separator")
    if sep_name is None and legacy_separator is not None:
        sep_name = _option(config, ini, legacy_separator)
    if sep_name is not None:
        sep = _SEPARATORS.get(sep_name, sep_name)
        return [part.strip() for part in value.split(sep) if part.strip()]
    if name == "prepend_sys_path":
        return [p for p in re.split(r", *|(?: +)|\:", value) if p]
    return [p for p in re.split(r", *|(?: +)", value) if p]


def _resolve(here: Path, location: str) -> Path:
    if ":" in location and not Path(location).is_absolute() and location[1:3] != ":\\":
        # "package:folder" resource form; let alembic resolve it.
        from alembic.util import coerce_resource_to_filename

        return Path(coerce_resource_to_filename(location))
    path = Path(location).expanduser()
    return path if path.is_absolute() else (here / path).resolve()


@contextmanager
def _prepended(paths: Sequence[str]) -> Iterator[None]:
    added = [p for p in paths if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)
