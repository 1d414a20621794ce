"""Rehearse pending migrations on a throwaway copy of an environment's database.

`rehearse(target, workdir=...)` copies the database and, against that copy only, runs for
every pending revision R, in order:

``upgrade``    ``alembic upgrade R``
``downgrade``  ``alembic downgrade P`` (P = R's down revision, ``base`` for the first one;
               ``R@-1`` while other branches are applied; the first parent for a merge)
``reupgrade``  ``alembic upgrade R`` again

then, at the head, ``stamp-back`` (``alembic stamp P``: alembic_version says P, the schema
still has R) and ``reapply`` (``alembic upgrade head``: R's upgrade runs again against a
schema that already has it). With ``second_upgrade=True`` (``certify``), a ``second-upgrade``
step (``alembic upgrade head`` once more, at the head) comes before the stamp-back: a
second upgrade at the head must be a no-op. A step fails when its command fails, or when
it leaves the schema different from what it should be: after ``downgrade`` the schema must
be the one before ``upgrade`` (tables, columns, indexes, foreign keys, views, triggers),
after ``reupgrade`` the one after ``upgrade``, after ``reapply`` the one before
``stamp-back``, after ``second-upgrade`` the one before it.
The first failed step stops the rehearsal; later revisions build on the failed one.

``Rehearsal.ok`` is about the round trips (apply, undo, re-apply) of the pending revisions:
the question ``migrate ENV rehearse`` answers before an apply. The stamp-back-one re-apply
is a separate finding, ``Rehearsal.reapply_ok``: it only passes when the head revision's
upgrade is idempotent (``CREATE TABLE IF NOT EXISTS``...), which ordinary alembic revisions
are not; ``certify`` (issue 8) requires it, a rehearsal before an apply merely reports it.
So is the second upgrade at the head, ``Rehearsal.second_upgrade_ok`` (None unless asked).

How the commands run: by default (``mode="batch"``) one child process (``python -m
gonogo.migrations.rehearse``, cwd = the release's files, the app's environment with
``DATABASE_URL`` pointing at the copy) runs every step through ``alembic.config.main``, the
function behind ``python -m alembic``, so the project's ``env.py`` and the app code it
imports never run inside gonogo, and interpreter start-up is paid once instead of per step
(about 0.5 s a step; see ``benchmarks/rehearse_time.py``). ``mode="per-command"`` starts
one child per step. Either way each step has a timeout (``step_timeout``): the child is
killed and the step fails. The child refuses any database connection other than the copy
(a SQLAlchemy ``do_connect`` hook), so an ``env.py`` that ignores ``DATABASE_URL`` fails
the first step instead of touching the real database.

The copy (``Rehearsal.basis`` says which it was):

- SQLite (``"file copy"``): the file, rows included, through SQLite's backup API so a live
  database gives a consistent copy, into ``workdir`` (a missing file starts empty); it stays
  there for the caller to look at or delete with ``workdir``.
- PostgreSQL: a scratch database on the same server, ``gonogo_rehearse_<UTC time>_<random>``
  (the role needs CREATEDB), with a copy of the schema and of the ``alembic_version`` rows,
  never of the table data: ``pg_dump --schema-only`` of the target, so drift made by hand is
  rehearsed too; when pg_dump is missing or fails (a server newer than the client), ``alembic
  upgrade <the target's revision>`` on the empty scratch database, which ``basis`` says (the
  revisions' schema then, without any drift). The scratch database is dropped when the
  rehearsal ends, however it ends; one left by a gonogo killed outright is recognisable by
  its name prefix and comment (see `gonogo.migrations.scratch_pg`). Only ``workdir``'s log
  remains. The child's guard admits only the scratch database (same host, port and name).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal, cast
from urllib.parse import quote

from gonogo.errors import GonogoError
from gonogo.migrations import scratch_pg
from gonogo.migrations.alembic import current_revisions
from gonogo.migrations.history import History, load_history, pending
from gonogo.migrations.pending import MigrationTarget

Action = Literal["upgrade", "downgrade", "reupgrade", "second-upgrade", "stamp-back", "reapply"]
Mode = Literal["batch", "per-command"]

ROUND_TRIP: frozenset[str] = frozenset({"upgrade", "downgrade", "reupgrade"})
STAMP_BACK: frozenset[str] = frozenset({"stamp-back", "reapply"})
DEFAULT_STEP_TIMEOUT = 300.0
DUMP_MIN_TIMEOUT = 60.0  # pg_dump's bound, even when the steps' is shorter
LOG_NAME = "rehearse-alembic.log"
_HEADER = "== gonogo rehearse: "
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*:")

# Schema snapshot: {"table notes": {"column body": "TEXT NULL", ...}, "index ix_a": ...}
Snapshot = dict[str, dict[str, str]]


@dataclass(frozen=True)
class RehearsalStep:
    """One alembic command run against the copy."""

    revision: str
    action: Action
    command: str
    ok: bool
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "action": self.action,
            "command": self.command,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class Rehearsal:
    """What happened on the copy. ``steps`` are the steps that ran, in order."""

    database: str
    start: list[str]
    revisions: list[str]
    head: str | None
    steps: list[RehearsalStep]
    seconds: float
    log: str
    mode: Mode = "batch"
    # How the copy was made: "file copy" (SQLite), pg_dump, or alembic upgrade (and why).
    basis: str = "file copy"
    # Problems that do not change the findings (a scratch database left behind).
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> list[RehearsalStep]:
        """Failed round-trip steps (apply, undo, re-apply): at most one, the rehearsal stops."""
        return [s for s in self.steps if not s.ok and s.action in ROUND_TRIP]

    @property
    def rehearsed(self) -> list[str]:
        """Pending revisions whose three round-trip steps all passed."""
        passed: dict[str, int] = {}
        for s in self.steps:
            if s.ok and s.action in ROUND_TRIP:
                passed[s.revision] = passed.get(s.revision, 0) + 1
        return [r for r in self.revisions if passed.get(r) == len(ROUND_TRIP)]

    @property
    def ok(self) -> bool:
        """Every pending revision applied, undid and re-applied cleanly."""
        return len(self.rehearsed) == len(self.revisions)

    @property
    def reapply_ok(self) -> bool | None:
        """Stamp-back-one then ``upgrade head`` re-applied the head revision cleanly.

        None when it was not tried: a round trip failed first, or there is no revision.
        """
        tail = [s for s in self.steps if s.action in STAMP_BACK]
        if not tail:
            return None
        return all(s.ok for s in tail) and tail[-1].action == "reapply"

    @property
    def reapply_error(self) -> str | None:
        for s in self.steps:
            if s.action in STAMP_BACK and not s.ok:
                return s.error
        return None

    @property
    def second_upgrade_ok(self) -> bool | None:
        """A second ``upgrade head`` at the head ran and changed nothing; None: not tried."""
        for s in self.steps:
            if s.action == "second-upgrade":
                return s.ok
        return None

    @property
    def second_upgrade_error(self) -> str | None:
        for s in self.steps:
            if s.action == "second-upgrade" and not s.ok:
                return s.error
        return None

    @property
    def summary(self) -> str:
        return "; ".join([self._findings(), *(f"warning: {w}" for w in self.warnings)])

    def _findings(self) -> str:
        n = len(self.revisions)
        failed = self.failed
        if failed:
            step = failed[0]
            text = f"{step.revision}: {_ACTION_WORDS[step.action]} failed: {step.error}"
            if n > 1:
                clean = len(self.rehearsed)
                text += f" ({clean} of {n} revisions rehearsed clean before it)"
            return text
        if not self.ok:  # stopped without a failed step: not expected, but never "clean"
            return f"rehearsal stopped after {len(self.rehearsed)} of {n} revisions"
        if n:
            text = f"rehearsed {n} revision{'s' if n != 1 else ''}: apply, undo, re-apply all clean"
        elif self.head is None:
            return "no revisions to rehearse"
        else:
            text = f"nothing pending (the database is at {self.head})"
        if self.second_upgrade_ok is False:
            return (
                f"{text}; a second upgrade at {self.head} is not a no-op: "
                f"{self.second_upgrade_error}"
            )
        if self.second_upgrade_ok:
            text += "; a second upgrade at the head is a no-op"
        if self.reapply_ok:
            return text + "; stamp-back-one re-apply clean"
        if any(s.action == "stamp-back" and not s.ok for s in self.steps):
            return f"{text}; stamp back one revision from {self.head} failed: {self.reapply_error}"
        return (
            f"{text}; stamp-back-one re-apply of {self.head} failed "
            f"(its upgrade is not idempotent): {self.reapply_error}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary,
            "database": self.database,
            "start": list(self.start),
            "revisions": list(self.revisions),
            "rehearsed": self.rehearsed,
            "head": self.head,
            "reapply_ok": self.reapply_ok,
            "reapply_error": self.reapply_error,
            "second_upgrade_ok": self.second_upgrade_ok,
            "steps": [s.to_dict() for s in self.steps],
            "failed": [s.to_dict() for s in self.failed],
            "seconds": round(self.seconds, 3),
            "log": self.log,
            "mode": self.mode,
            "basis": self.basis,
            "warnings": list(self.warnings),
        }


_ACTION_WORDS: dict[str, str] = {
    "upgrade": "upgrade",
    "downgrade": "downgrade",
    "reupgrade": "upgrade after downgrade",
    "second-upgrade": "second upgrade at the head",
    "stamp-back": "stamp back one revision",
    "reapply": "re-apply after stamp-back",
}


def rehearse(
    target: MigrationTarget,
    *,
    workdir: Path,
    mode: Mode = "batch",
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
    second_upgrade: bool = False,
) -> Rehearsal:
    """Rehearse ``target``'s pending revisions on a copy of its database (see the module).

    ``second_upgrade``: also check that a second ``upgrade head`` at the head is a no-op.

    Raises `GonogoError` (one line) for a database that is neither SQLite nor PostgreSQL, an
    unreadable database or migration history, several heads, a database ahead of the
    repository, or PostgreSQL credentials that cannot create a database. A failing migration
    is not an error: it is in the returned `Rehearsal`.
    """
    if mode not in ("batch", "per-command"):
        raise GonogoError(f"unknown rehearse mode {mode!r}")
    run = _Run(target, Path(workdir), mode, step_timeout, time.perf_counter(), second_upgrade)
    if scratch_pg.is_postgresql(_scheme(target.database_url)):
        return _rehearse_postgresql(run)
    scratch = _sqlite_scratch(target, run.workdir)
    history = _history(target)
    scratch.create()
    request = run.request(scratch.url, scratch.guard())
    return _rehearse_on(
        run,
        history,
        request,
        database=str(scratch.path),
        start=current_revisions(scratch.url),
        basis="file copy",
    )


@dataclass(frozen=True)
class _Run:
    """One `rehearse` call's arguments."""

    target: MigrationTarget
    workdir: Path
    mode: Mode
    step_timeout: float
    started: float
    second_upgrade: bool = False

    def request(self, url: str, guard: Mapping[str, str]) -> _Request:
        """The child's request, with a fresh log in ``workdir``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / LOG_NAME
        log.write_text("")
        return _Request(
            ini=self.target.ini,
            cwd=self.target.cwd,
            environ={**self.target.environ, "DATABASE_URL": url},
            scratch=guard,
            log=log,
        )


def _scheme(raw: str | None) -> str:
    raw = (raw or "").strip()
    if not raw:
        raise GonogoError("no database URL to rehearse against")
    return raw.split("://", 1)[0] if "://" in raw else raw.split(":", 1)[0]


def _history(target: MigrationTarget) -> History:
    history = load_history(target.cwd / target.ini)
    if len(history.heads) > 1:
        raise GonogoError(
            f"the migration history has {len(history.heads)} heads "
            f"({', '.join(history.heads)}); merge them first: "
            f"alembic merge -m 'merge heads' {' '.join(history.heads)}"
        )
    return history


def _pending(history: History, start: Sequence[str]) -> list[str]:
    if len(start) > 1:
        raise GonogoError(
            f"the database has several revisions stamped ({', '.join(start)}); "
            "resolve that before rehearsing"
        )
    return pending(history, start)


def _rehearse_on(
    run: _Run,
    history: History,
    request: _Request,
    *,
    database: str,
    start: list[str],
    basis: str,
) -> Rehearsal:
    """Run the plan for ``start``'s pending revisions against the copy in ``request``."""
    todo = _pending(history, start)
    plan = _plan(history, start, todo, second_upgrade=run.second_upgrade)
    if run.mode == "batch":
        outcomes = _run_child(request, plan, {}, run.step_timeout)
    else:
        outcomes = _run_per_command(request, plan, run.step_timeout)
    steps = [
        RehearsalStep(
            revision=plan[o.index].revision,
            action=plan[o.index].action,
            command=_display_command(run.target.ini, plan[o.index].args),
            ok=o.ok,
            seconds=o.seconds,
            error=o.error,
        )
        for o in outcomes
    ]
    return Rehearsal(
        database=database,
        start=list(start),
        revisions=list(todo),
        head=history.heads[0] if history.heads else None,
        steps=steps,
        seconds=time.perf_counter() - run.started,
        log=str(request.log),
        mode=run.mode,
        basis=basis,
    )


def _run_per_command(
    request: _Request, plan: Sequence[_Planned], step_timeout: float
) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    snapshots: dict[int, Snapshot] = {}
    for planned in plan:
        # A step compared with the schema before itself, as the first step: the child takes
        # that snapshot.
        expect = planned.expect
        needed = {expect: snapshots[expect]} if expect is not None and expect in snapshots else {}
        got = _run_child(request, [planned], needed, step_timeout)
        outcomes.extend(got)
        for outcome in got:
            if outcome.snapshot is not None:
                snapshots[outcome.index + 1] = outcome.snapshot
            if outcome.before is not None:
                snapshots.setdefault(outcome.index, outcome.before)
        if not got or not got[-1].ok:
            break
    return outcomes


# -- PostgreSQL: a scratch database ------------------------------------------------------------


def _rehearse_postgresql(run: _Run) -> Rehearsal:
    """Rehearse on a scratch database, and drop it whatever happens."""
    target = scratch_pg.PgUrl.parse(run.target.database_url)
    history = _history(run.target)
    scratch = scratch_pg.ScratchDatabase.create(target)
    try:
        result = _rehearse_on_scratch(run, history, scratch)
    except BaseException as exc:  # a GonogoError, Ctrl-C, a bug: drop it all the same
        problem = scratch.drop()
        if problem is not None and isinstance(exc, GonogoError):
            # The one-line message is all a person sees: the leftover goes in it.
            exc.message = f"{exc.message}; also, {problem}"
            exc.args = (exc.message,)
        elif problem is not None:
            exc.add_note(problem)
        raise
    problem = scratch.drop()
    if problem is None:
        return result
    return replace(result, warnings=(*result.warnings, problem))


def _rehearse_on_scratch(
    run: _Run, history: History, scratch: scratch_pg.ScratchDatabase
) -> Rehearsal:
    request = run.request(scratch.url.render(), scratch.url.guard())
    copy = scratch.copy_schema(timeout=max(run.step_timeout, DUMP_MIN_TIMEOUT))
    if copy.copied:
        basis = "pg_dump --schema-only of the database, with its alembic_version rows"
    else:
        _note(request.log, f"schema copy: {copy.reason}")
        basis = _rebuild_schema(run, history, request, copy)
    return _rehearse_on(
        run,
        history,
        request,
        database=scratch.url.display(),
        start=scratch.revisions(),
        basis=basis,
    )


def _rebuild_schema(
    run: _Run, history: History, request: _Request, copy: scratch_pg.SchemaCopy
) -> str:
    """Without pg_dump's copy: ``alembic upgrade`` the empty scratch database to the
    target's revision, in a guarded child like every step. Returns the basis."""
    _pending(history, copy.revisions)  # the same one-line errors as for a copy
    if not copy.revisions:
        return f"an empty database, not a copy of the schema ({copy.reason})"
    [revision] = copy.revisions
    _note(request.log, f"schema copy: alembic upgrade {revision} instead")
    step = _Planned(0, revision, "upgrade", ("upgrade", revision))
    outcomes = _run_child(request, [step], {}, run.step_timeout)
    if not outcomes or not outcomes[-1].ok:
        why = outcomes[-1].error if outcomes else "no result"
        raise GonogoError(
            f"cannot build the scratch database's schema with alembic upgrade {revision} "
            f"({copy.reason}): {why}"
        )
    return (
        f"alembic upgrade {revision} on an empty database, not a copy of the schema ({copy.reason})"
    )


def _note(log: Path, text: str) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"{_HEADER}{text}\n")


# -- SQLite: a file copy -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Scratch:
    """The SQLite copy the rehearsal runs against: its URL for DATABASE_URL and its file."""

    url: str
    path: Path
    source: Path | None

    def create(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()
        if self.source is None:
            return
        try:
            src = sqlite3.connect(_ro_uri(self.source), uri=True)
            try:
                dst = sqlite3.connect(self.path)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.Error as exc:
            raise GonogoError(
                f"cannot copy the SQLite database {self.source}: {_one_line(str(exc))}"
            ) from None

    def guard(self) -> dict[str, str]:
        return {"dialect": "sqlite", "path": str(self.path)}


def _sqlite_scratch(target: MigrationTarget, workdir: Path) -> _Scratch:
    raw = (target.database_url or "").strip()
    scheme = _scheme(raw)
    if scheme.split("+", 1)[0].lower() != "sqlite":
        raise GonogoError(f"rehearse supports SQLite and PostgreSQL databases; {scheme} is not")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise GonogoError(f"cannot read the database URL: {_one_line(str(exc))}") from None
    database = url.database or ""
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    source: Path | None = None
    name = "memory.db"
    if database and database != ":memory:":
        path = Path(database).expanduser()
        if not path.is_absolute():
            path = Path(target.cwd) / path
        name = path.name
        if path.exists():
            if not path.is_file():
                raise GonogoError(f"the SQLite database {path} is not a file")
            source = path.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Not resolved: a symlink left at the copy's place is replaced, never written through.
    copy = workdir.resolve() / f"rehearse-{name}"
    if source is not None and copy == source:
        raise GonogoError(f"the rehearsal copy would overwrite {source}; use another workdir")
    query = {k: v for k, v in url.query.items() if k not in ("uri", "mode", "immutable")}
    copy_url = url.set(database=str(copy), query=query).render_as_string(hide_password=False)
    return _Scratch(url=copy_url, path=copy, source=source)


def _ro_uri(path: Path) -> str:
    return f"file:{quote(str(path))}?mode=ro"


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    """Step ``index`` of the plan. ``expect``: the schema afterwards must equal snapshot
    ``expect`` (snapshot k is the schema before step k; k = index + 1 is after it)."""

    index: int
    revision: str
    action: Action
    args: tuple[str, ...]
    expect: int | None = None


def _plan(
    history: History, start: Sequence[str], todo: Sequence[str], *, second_upgrade: bool = False
) -> list[_Planned]:
    plan: list[_Planned] = []

    def add(revision: str, action: Action, args: Sequence[str], expect: int | None) -> int:
        plan.append(_Planned(len(plan), revision, action, tuple(args), expect))
        return len(plan) - 1

    heads = set(start)
    for revision in todo:
        info = history.get(revision)
        after = (heads - set(info.down_revisions)) | {revision}
        if info.is_merge:
            down = info.down_revisions[0]
        elif after == {revision}:
            down = info.down_revisions[0] if info.down_revisions else "base"
        else:
            down = f"{revision}@-1"
        first = add(revision, "upgrade", ("upgrade", revision), None)
        add(revision, "downgrade", ("downgrade", down), first)
        add(revision, "reupgrade", ("upgrade", revision), first + 1)
        heads = after
    if history.heads:
        head = history.get(history.heads[0])
        if second_upgrade:  # at the head now: another upgrade must leave the schema alone
            add(head.revision, "second-upgrade", ("upgrade", "head"), len(plan))
        parents = head.down_revisions
        if not parents:
            back: tuple[str, ...] = ("stamp", "base")
        elif len(parents) == 1:
            back = ("stamp", parents[0])
        else:
            back = ("stamp", "--purge", *parents)
        at = add(head.revision, "stamp-back", back, None)
        add(head.revision, "reapply", ("upgrade", "head"), at)
    return plan


def _display_command(ini: str, args: Sequence[str]) -> str:
    return " ".join(["alembic", "-c", ini, *args])


# -- running the child -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    ini: str
    cwd: Path
    environ: Mapping[str, str]
    scratch: Mapping[str, str]  # what the child may connect to and snapshot (a "guard")
    log: Path


@dataclass(frozen=True)
class _Outcome:
    index: int
    ok: bool
    seconds: float
    error: str | None
    snapshot: Snapshot | None = None
    before: Snapshot | None = None


def _run_child(
    request: _Request,
    steps: Sequence[_Planned],
    snapshots: Mapping[int, Snapshot],
    step_timeout: float,
) -> list[_Outcome]:
    """Run ``steps`` in one child process; stop at the first failure. Outcomes in order."""
    payload = {
        "ini": request.ini,
        "scratch": dict(request.scratch),
        "steps": [
            {
                "index": s.index,
                "revision": s.revision,
                "action": s.action,
                "args": list(s.args),
                "expect": s.expect,
            }
            for s in steps
        ],
        "snapshots": {str(k): v for k, v in snapshots.items()},
    }
    outcomes: list[_Outcome] = []
    finished = False
    with request.log.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gonogo.migrations.rehearse"],
            cwd=request.cwd,
            env=dict(request.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        events = _events(proc)
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(payload).encode("utf-8"))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        current: int | None = None
        before: Snapshot | None = None
        ready = False
        while True:
            try:
                event = events.get(timeout=step_timeout)
            except queue.Empty:
                _kill(proc)
                if current is None:
                    what = "stopped responding" if ready else "did not start"
                    raise GonogoError(
                        f"the rehearsal process {what} within {step_timeout:g} s"
                    ) from None
                outcomes.append(
                    _Outcome(current, False, step_timeout, f"timed out after {step_timeout:g} s")
                )
                break
            if event is None:
                break
            kind = event.get("event")
            if kind == "ready":
                ready = True
                before = cast(Snapshot | None, event.get("snapshot"))
            elif kind == "start":
                current = int(event["index"])
            elif kind == "done":
                outcome = _Outcome(
                    index=int(event["index"]),
                    ok=bool(event["ok"]),
                    seconds=float(event["seconds"]),
                    error=cast(str | None, event.get("error")),
                    snapshot=cast(Snapshot | None, event.get("snapshot")),
                    before=before,
                )
                before = None
                outcomes.append(outcome)
                current = None
                if not outcome.ok:
                    break
        if current is not None and (not outcomes or outcomes[-1].index != current):
            outcomes.append(_Outcome(current, False, 0.0, _died(_exit_status(proc), request.log)))
        elif not ready and not outcomes:
            rc = _exit_status(proc)
            last = _last_error_line(request.log, step_only=False) or f"exit status {rc}"
            raise GonogoError(f"cannot start the rehearsal process: {last}")
        finished = True
    finally:
        if proc.poll() is None:
            if finished:  # it is exiting on its own after its last step
                _exit_status(proc)
            else:  # an error or Ctrl-C here: do not leave it running
                _kill(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    return outcomes


def _events(proc: subprocess.Popen[bytes]) -> queue.Queue[dict[str, Any] | None]:
    """The child's protocol lines as dicts, then None at end of output."""
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    stream = proc.stdout
    assert stream is not None

    def read() -> None:
        try:
            for line in stream:
                with suppress(ValueError):
                    data = json.loads(line)
                    if isinstance(data, dict):
                        events.put(data)
        finally:
            events.put(None)

    threading.Thread(target=read, name="rehearse-events", daemon=True).start()
    return events


def _exit_status(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return proc.returncode if proc.returncode is not None else -int(signal.SIGKILL)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _died(rc: int, log: Path) -> str:
    how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
    last = _last_error_line(log)
    return f"alembic process died ({how})" + (f": {last}" if last else "")


def _last_error_line(log: Path, *, step_only: bool = True) -> str | None:
    """The error line in the log; with ``step_only``, in what the last step wrote."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if step_only:
        text = text.rpartition(_HEADER)[2].partition("\n")[2]
    return _error_line(text)


def _error_line(text: str) -> str | None:
    """The line that says what went wrong in alembic's stderr: the last traceback's
    exception line, else alembic's ``FAILED: ...``, else the last line that looks like an
    exception (``ModuleNotFoundError: ...``), else the last non-blank line."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    tracebacks = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent")]
    if tracebacks:
        for ln in lines[tracebacks[-1] + 1 :]:
            if ln and not ln.startswith((" ", "\t")):
                return _one_line(ln)
    for ln in reversed(lines):
        if ln.strip().startswith("FAILED:"):
            return _one_line(ln.strip())
    for ln in reversed(lines):
        if _EXCEPTION_LINE.match(ln):
            return _one_line(ln)
    for ln in reversed(lines):
        if ln.strip():
            return _one_line(ln.strip())
    return None


def _one_line(text: str, limit: int = 400) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    first = " ".join(first.split())
    return first if len(first) <= limit else first[: limit - 3] + "..."


# -- schema snapshots (SQLite) -----------------------------------------------------------------


def _sqlite_schema(path: str) -> Snapshot:
    """Tables (columns, indexes, foreign keys), views and triggers of the SQLite file, in a
    form that survives alembic's batch mode recreating a table (no SQL text for tables)."""
    if not Path(path).exists():
        return {}
    con = sqlite3.connect(_ro_uri(Path(path)), uri=True)
    try:
        rows = con.execute(
            "SELECT type, name, sql FROM sqlite_master "
            "WHERE type IN ('table', 'view', 'trigger') AND name != 'alembic_version' "
            r"AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY type, name"
        ).fetchall()
        snap: Snapshot = {}
        for kind, name, sql in rows:
            if kind == "table":  # its indexes (explicit and automatic) are recorded with it
                snap[f"table {name}"] = _sqlite_table(con, name)
            else:
                snap[f"{kind} {name}"] = {"sql": " ".join(str(sql or "").split())}
        return snap
    finally:
        con.close()


def _sqlite_table(con: sqlite3.Connection, table: str) -> dict[str, str]:
    q = table.replace('"', '""')
    shape: dict[str, str] = {}
    for _cid, name, type_, notnull, default, pk in con.execute(f'PRAGMA table_info("{q}")'):
        parts = [str(type_ or "").upper() or "(no type)", "NOT NULL" if notnull else "NULL"]
        if default is not None:
            parts.append(f"DEFAULT {' '.join(str(default).split()).strip('()')}")
        if pk:
            parts.append(f"PK{pk}")
        shape[f"column {name}"] = " ".join(parts)
    for _seq, name, unique, origin, partial in con.execute(f'PRAGMA index_list("{q}")'):
        iq = str(name).replace('"', '""')
        cols = [str(r[2]) for r in con.execute(f'PRAGMA index_info("{iq}")')]
        desc = f"{'UNIQUE ' if unique else ''}({', '.join(cols)}){' partial' if partial else ''}"
        if origin == "c":
            shape[f"index {name}"] = desc
        else:  # a UNIQUE or PRIMARY KEY constraint's automatic index: its name is positional
            shape[f"{'primary key' if origin == 'pk' else 'unique'} ({', '.join(cols)})"] = desc
    fks: dict[int, list[Any]] = {}
    for row in con.execute(f'PRAGMA foreign_key_list("{q}")'):
        fks.setdefault(int(row[0]), []).append(row)
    for rows in fks.values():
        rows.sort(key=lambda r: int(r[1]))
        src = ", ".join(str(r[3]) for r in rows)
        ref = f"{rows[0][2]}({', '.join(str(r[4]) for r in rows)})"
        shape[f"foreign key ({src}) -> {ref}"] = f"ON UPDATE {rows[0][5]} ON DELETE {rows[0][6]}"
    return shape


def _schema_diff(expected: Snapshot, actual: Snapshot, limit: int = 4) -> list[str]:
    diffs: list[str] = []
    for obj in sorted(expected.keys() | actual.keys()):
        if obj not in actual:
            diffs.append(f"{obj} is missing")
        elif obj not in expected:
            diffs.append(f"{obj} is left over")
        else:
            old, new = expected[obj], actual[obj]
            for part in sorted(old.keys() | new.keys()):
                where = f"{obj}: {part}"
                if part not in new:
                    diffs.append(f"{where} is missing")
                elif part not in old:
                    diffs.append(f"{where} is left over")
                elif old[part] != new[part]:
                    diffs.append(f"{where} is {new[part]}, was {old[part]}")
    if len(diffs) > limit:
        diffs = [*diffs[:limit], f"{len(diffs) - limit} more difference(s)"]
    return diffs


_REFERENCE = {
    "downgrade": "before the upgrade",
    "reupgrade": "after the first upgrade",
    "reapply": "before the stamp-back",
    "second-upgrade": "before it (a second upgrade at the head must change nothing)",
}


# -- the child process -------------------------------------------------------------------------


@contextmanager
def _protocol_stream() -> Iterator[IO[str]]:
    """The real stdout becomes the protocol channel; anything the project prints (env.py,
    the app, alembic) goes to stderr, i.e. the rehearsal log."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield channel
    finally:
        channel.close()


def _install_guard(scratch: Mapping[str, str]) -> None:
    """Refuse any database connection but the copy's."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    postgresql = scratch["dialect"] == "postgresql"
    check = _pg_guard(scratch) if postgresql else _sqlite_guard(scratch)
    event.listen(Engine, "do_connect", check)


_Check = Callable[[Any, Any, list[Any], dict[str, Any]], None]


def _sqlite_guard(scratch: Mapping[str, str]) -> _Check:
    allowed = os.path.realpath(scratch["path"])

    def check(dialect: Any, _rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        database = str(cargs[0]) if cargs else str(cparams.get("database", ""))
        if database.startswith("file:"):
            database = database[len("file:") :].split("?", 1)[0]
        if dialect.name == "sqlite" and os.path.realpath(database) == allowed:
            return
        raise RuntimeError(
            f"gonogo rehearse refused a connection to {dialect.name} database "
            f"{database or '?'}: only the copy {allowed} may be used "
            "(does env.py take its URL from DATABASE_URL?)"
        )

    return check


def _pg_guard(scratch: Mapping[str, str]) -> _Check:
    def check(dialect: Any, _rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        if dialect.name == "postgresql" and not cargs and scratch_pg.allows(scratch, cparams):
            return
        where = scratch_pg.describe(cparams) if not cargs else "?"
        raise RuntimeError(
            f"gonogo rehearse refused a connection to {dialect.name} database {where}: "
            f"only the scratch copy {scratch['display']} may be used "
            "(does env.py take its URL from DATABASE_URL?)"
        )

    return check


def _schema(scratch: Mapping[str, str]) -> Snapshot:
    if scratch["dialect"] == "postgresql":
        return scratch_pg.snapshot(scratch["url"])
    return _sqlite_schema(scratch["path"])


def _child_error(exc: BaseException) -> str:
    from alembic.util import CommandError

    if isinstance(exc, CommandError):
        return _one_line(f"FAILED: {exc}")
    return _one_line("".join(traceback.format_exception_only(type(exc), exc)))


def _run_alembic(ini: str, args: Sequence[str]) -> None:
    from alembic.config import main

    main(argv=["-c", ini, "--raiseerr", *args], prog="alembic")


def _driver(
    request: Mapping[str, Any],
    emit: Callable[[dict[str, Any]], None],
    run: Callable[[str, Sequence[str]], None] = _run_alembic,
) -> int:
    scratch = cast(Mapping[str, str], request["scratch"])
    _install_guard(scratch)
    snapshots: dict[int, Snapshot] = {
        int(k): v for k, v in cast(Mapping[str, Snapshot], request["snapshots"]).items()
    }
    steps = cast(list[dict[str, Any]], request["steps"])
    before: Snapshot | None = None
    if steps and int(steps[0]["index"]) not in snapshots:
        before = _schema(scratch)
        snapshots[int(steps[0]["index"])] = before
    emit({"event": "ready", "snapshot": before})
    for step in steps:
        index = int(step["index"])
        args = [str(a) for a in step["args"]]
        emit({"event": "start", "index": index})
        print(
            f"{_HEADER}{step['action']} {step['revision']}: alembic {' '.join(args)}",
            file=sys.stderr,
            flush=True,
        )
        error: str | None = None
        started = time.perf_counter()
        try:
            run(str(request["ini"]), args)
        except BaseException as exc:  # anything env.py or a revision raises, SystemExit too
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc(file=sys.stderr)
            error = _child_error(exc)
        seconds = time.perf_counter() - started
        snapshot: Snapshot | None = None
        if error is None:
            try:
                snapshot = _schema(scratch)
            except Exception as exc:  # the copy went away, the server stopped...
                traceback.print_exc(file=sys.stderr)
                error = f"cannot read the schema after it: {_child_error(exc)}"
        if snapshot is not None:
            snapshots[index + 1] = snapshot
            expect = step.get("expect")
            if expect is not None and int(expect) in snapshots:
                diffs = _schema_diff(snapshots[int(expect)], snapshot)
                if diffs:
                    error = (
                        f"the schema after it differs from {_REFERENCE[str(step['action'])]}: "
                        + "; ".join(diffs)
                    )
        emit(
            {
                "event": "done",
                "index": index,
                "ok": error is None,
                "seconds": seconds,
                "error": error,
                "snapshot": snapshot,
            }
        )
        if error is not None:
            return 1
    return 0


def _main() -> int:
    request = json.loads(sys.stdin.read())
    with _protocol_stream() as channel:

        def emit(event: dict[str, Any]) -> None:
            channel.write(json.dumps(event) + "\n")
            channel.flush()

        return _driver(request, emit)


if __name__ == "__main__":
    raise SystemExit(_main())
