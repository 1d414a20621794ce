"""Procfile parsing (Heroku's format: `name: command`, one per line)."""

from __future__ import annotations

import re

from gonogo.errors import GonogoError

_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.+)$")


def parse(text: str) -> dict[str, str]:
    processes: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            processes[match.group(1)] = match.group(2).strip()
    return processes


def web_command(text: str | None, *, where: str) -> str:
    if text is None:
        raise GonogoError(f"{where}: no Procfile; add one with a `web:` line that starts the app")
    processes = parse(text)
    if "web" not in processes:
        raise GonogoError(
            f"{where}: Procfile has no `web:` line; add one that starts the app on $PORT"
        )
    return processes["web"]
