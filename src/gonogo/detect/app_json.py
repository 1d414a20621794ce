"""app.json: scripts Heroku runs by itself (review apps, Heroku Button).

`scripts.postdeploy` (and `environments.<name>.scripts.postdeploy`) runs automatically after
the app is created; a migration there is a schema change nobody asked for at that moment.
`pr-predestroy` and Heroku CI's `test` / `test-setup` are not release hooks.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gonogo.detect._base import Ctx, Trail
from gonogo.detect.shell import Interp, Loc, SlugView, State

SOURCE = "app.json"
REL = "app.json"
HOOKS = ("postdeploy", "release", "predeploy", "prerelease")


def _hooks(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(json path, hook key, command) in document order."""
    found: list[tuple[str, str, str]] = []

    def from_scripts(prefix: str, scripts: object) -> None:
        if not isinstance(scripts, dict):
            return
        for key, value in scripts.items():
            if key not in HOOKS:
                continue
            command = value.get("command") if isinstance(value, dict) else value
            if isinstance(command, str) and command.strip():
                found.append((f"{prefix}scripts.{key}", key, command))

    for key, value in data.items():
        if key == "scripts":
            from_scripts("", value)
        elif key == "environments" and isinstance(value, dict):
            for env_name, env in value.items():
                if isinstance(env, dict) and env_name != "test":
                    from_scripts(f"environments.{env_name}.", env.get("scripts"))
    return found


def scan(ctx: Ctx) -> None:
    if not ctx.repo.is_file(REL):
        return
    text = ctx.repo.read(REL)
    if text is None:
        return
    try:
        data = json.loads(text)
    except ValueError as exc:
        ctx.repo.problem(REL, f"invalid JSON: {exc}")
        return
    if not isinstance(data, dict):
        ctx.repo.problem(REL, "invalid app.json: the top level is not an object")
        return
    positions: dict[str, list[int]] = {}
    for m in re.finditer(r'"([A-Za-z-]+)"\s*:', text):
        positions.setdefault(m.group(1), []).append(text.count("\n", 0, m.start()) + 1)
    used: dict[str, int] = {}
    interp = Interp(ctx)
    for path, key, command in _hooks(data):
        lines = positions.get(key, [1])
        index = used.get(key, 0)
        used[key] = index + 1
        line = lines[min(index, len(lines) - 1)]
        why = f"app.json {path} runs automatically after the app is created"
        env = ctx.env()
        state = State(SlugView(), "/app", env, set(env), [])
        interp.run_text(command, Loc(REL, SOURCE, line, True), state, Trail(why))
