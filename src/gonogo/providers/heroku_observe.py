"""The heroku provider's observing half: status, logs, release phase, release listing."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError
from gonogo.providers.base import EnvStatus, RecentLogs
from gonogo.providers.heroku_site import Site, image_at, ledger_release_for

if TYPE_CHECKING:
    from gonogo.ledger.store import ReleaseRow

# A release phase that only prints is the playbook's "release phase disabled".
_ECHO_ONLY = re.compile(
    r"""^\s*(?:/bin/|/usr/bin/)?echo(?:\s+(?:"[^"`$]*"|'[^']*'|[^\s;&|`$()<>]+))*\s*$"""
)
_RECENT = 20  # releases looked at for release phase runs


@dataclass(frozen=True)
class ReleasePhase:
    """What the app's release phase does, for the migrations-explicit gate."""

    command: str | None  # the formation's `release` command; None: no release process type
    flagged: bool  # it runs something other than an echo
    reason: str
    # (Heroku version, status) of recent releases that ran a release phase.
    runs: tuple[tuple[int, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "flagged": self.flagged,
            "reason": self.reason,
            "runs": [{"version": f"v{v}", "status": s} for v, s in self.runs],
        }


def release_phase(site: Site) -> ReleasePhase:
    """The formation's release command and recent release phase runs; flagged when it
    runs anything but an echo."""
    with site.api() as api:
        formation = api.formation(site.app)
        releases = api.releases(site.app, limit=_RECENT)
    runs = tuple((r.version, r.status) for r in releases if r.output_stream_url)
    entry = next((f for f in formation if f.type == "release"), None)
    command = entry.command if entry is not None else None
    if not command or not command.strip():
        return ReleasePhase(command, False, f"{site.app} has no release phase command", runs)
    if _ECHO_ONLY.match(command):
        return ReleasePhase(command, False, f"{site.app}'s release phase only echoes", runs)
    return ReleasePhase(
        command,
        True,
        f"{site.app}'s release phase runs `{command[:120]}` on every release (the playbook "
        "keeps it disabled: migrations run with `gonogo migrate ENV apply`)",
        runs,
    )


def recent_logs(site: Site, lines: int) -> RecentLogs:
    """At most `lines` (and at most the 1500 a log session gives) recent app log lines."""
    from gonogo.heroku import MAX_LOG_LINES

    source = f"heroku log session of {site.app}"
    if lines <= 0:
        return RecentLogs(source=source, lines=[])
    wanted = min(lines, MAX_LOG_LINES)
    if wanted < lines:
        source += f" (the last {MAX_LOG_LINES} lines: a log session gives no more)"
    try:
        with site.api() as api:
            got = api.recent_logs(site.app, wanted)
    except GonogoError as exc:
        raise GonogoError(f"cannot read {site.env}'s log from Heroku: {exc.message}") from None
    return RecentLogs(source=source, lines=got[-wanted:])


def verify_context(
    site: Site, release: ReleaseRow, var_names: Collection[str] = ()
) -> dict[str, str]:
    try:
        with site.api() as api:
            current = api.current_release(site.app)
            config = (
                api.release_config_vars(site.app, current.id)
                if current is not None and var_names
                else {}
            )
    except GonogoError:
        return {}
    if current is None:
        return {}
    # Only what the probes name leaves this function: a config var is often a secret.
    values = {f"vars.{name}": config[name] for name in var_names if name in config}
    return {
        **values,
        "heroku_release": f"v{current.version}",
        "heroku_description": current.description,
        "heroku_commit": current.commit or release.sha,
    }


def status(site: Site, url: str) -> EnvStatus:
    env = site.env
    try:
        with site.api() as api:
            current = api.current_release(site.app)
            formation = api.formation(site.app)
            preboot = api.preboot_enabled(site.app)
            releases = api.releases(site.app, limit=200) if current is not None else []
    except GonogoError as exc:
        return EnvStatus(env, running=False, url=url, detail={"error": exc.message})
    quantities = {f.type: f.quantity for f in formation}
    running = current is not None and quantities.get("web", 0) > 0
    runs = (
        ledger_release_for(site.ctx.ledger.releases(env), releases, current.version)
        if current is not None
        else None
    )
    detail: dict[str, Any] = {"app": site.app, "formation": quantities, "preboot": preboot}
    if current is not None:
        detail.update(
            heroku_release=f"v{current.version}",
            heroku_status=current.status,
            description=current.description,
            since=current.created_at,
        )
    return EnvStatus(
        env,
        running=running,
        version=runs.version if runs is not None else None,
        url=url,
        detail=detail,
    )


def heroku_releases(site: Site, limit: int) -> list[dict[str, Any]]:
    with site.api() as api:
        releases = api.releases(site.app, limit=max(limit, 200))
    rows = site.ctx.ledger.releases(site.env)
    listed = []
    for rel in releases[:limit]:
        row = ledger_release_for(rows, releases, rel.version)
        listed.append(
            {
                "version": f"v{rel.version}",
                "image": image_at(releases, rel.version),
                "description": rel.description,
                "status": rel.status,
                "current": rel.current,
                "ledger": row.label if row is not None else None,
                "sha": row.sha if row is not None else None,
            }
        )
    return listed


def stop(site: Site) -> str:
    """Scale the web dynos to 0 when the client can (`HerokuClient.scale`); otherwise say
    that the app was left running. Never raises: a failed deploy calls it on its way out."""
    hint = f"scale it down with `heroku ps:scale web=0 -a {site.app}`"
    try:
        with site.api() as api:
            scale = getattr(api, "scale", None)
            if scale is None:
                return f"left running: {hint}"
            scale(site.app, {"web": 0})
    except GonogoError as exc:
        return f"left running ({exc.message}): {hint}"
    return f"web dynos of {site.app} scaled to 0"
