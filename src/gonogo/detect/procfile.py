"""Procfile: the `release` process (every Heroku release) and the processes that boot dynos.

`release:` runs on every release; a `web:` (or worker, clock, ...) line runs on every dyno
start, so a migration chained before the server there is implicit too. Process types named
like a one-off migration task (`migrate:`, `db-migrate:`) are run only on request
(`heroku run migrate`) and are not reported. Heroku also sources `.profile` at every dyno
boot, and the Python buildpack runs `bin/pre_compile` / `bin/post_compile` at every build.
"""

from __future__ import annotations

import re

from gonogo.detect._base import Ctx, Env, Trail
from gonogo.detect.shell import Interp, Loc, SlugView, State

SOURCE = "procfile"
ONE_OFF = frozenset(
    {"migrate", "migration", "migrations", "db-migrate", "db_migrate", "dbmigrate", "upgrade"}
)
_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.*)$")


def processes(text: str) -> list[tuple[int, str, str]]:
    """(line, name, command) of each process, in file order."""
    out: list[tuple[int, str, str]] = []
    for num, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m and m.group(2).strip():
            out.append((num, m.group(1), m.group(2).strip()))
    return out


def origin(name: str) -> str | None:
    if name == "release":
        return "Procfile release process runs on every Heroku release"
    if name.lower() in ONE_OFF:
        return None
    return f"Procfile {name} process runs on every dyno start"


def slug_state(env: Env) -> State:
    return State(SlugView(), "/app", dict(env), set(env), [])


def scan(ctx: Ctx, rel: str = "Procfile") -> None:
    if not ctx.repo.is_file(rel):
        return
    text = ctx.repo.read(rel)
    if text is None:
        return
    interp = Interp(ctx)
    for num, name, command in processes(text):
        why = origin(name)
        if why is None:
            continue
        interp.run_text(command, Loc(rel, SOURCE, num, True), slug_state(ctx.env()), Trail(why))


def scan_buildpack_hooks(ctx: Ctx) -> None:
    hooks = {
        ".profile": "Heroku sources .profile at every dyno boot",
        "bin/pre_compile": "the Heroku Python buildpack runs bin/pre_compile at every build",
        "bin/post_compile": "the Heroku Python buildpack runs bin/post_compile at every build",
    }
    interp = Interp(ctx)
    for rel, why in hooks.items():
        if not ctx.repo.is_file(rel):
            continue
        text = ctx.repo.read(rel)
        if text is None:
            continue
        st = slug_state(ctx.env())
        st.scripts = (rel,)
        interp.run_text(text, Loc(rel, "script"), st, Trail(why))
