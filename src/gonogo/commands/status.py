"""gonogo status [ENV]: what is live where, is it running, is it healthy, who holds the lock."""

from __future__ import annotations

from typing import Any

import httpx

from gonogo.context import Context
from gonogo.output import short
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def _health(url: str, path: str) -> str:
    try:
        response = httpx.get(url + path, timeout=1.0, trust_env=False)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    try:
        body = response.json()
        state = body.get("status") if isinstance(body, dict) else None
    except ValueError:
        state = None
    return f"{response.status_code}" + (f" {state}" if state else "")


def env_status(ctx: Context, env: str) -> dict[str, Any]:
    provider = provider_for(ctx, env)
    live = ctx.ledger.live_release(env)
    proc = provider.status(env)
    lock = ctx.ledger.lock_holder(env)
    probes = ctx.config.verify_for(env).probes
    health_path = next(
        (p.path for p in probes if p.name == "health"), probes[0].path if probes else "/"
    )
    info: dict[str, Any] = {
        "env": env,
        "provider": ctx.env(env).provider,
        "release": live.label if live else None,
        "sha": live.sha if live else None,
        "artifact": live.artifact if live else None,
        "verified_at": live.verified_at if live else None,
        "running": proc.running,
        "pid": proc.pid,
        "port": proc.port,
        "url": proc.url,
        "health": _health(proc.url, health_path) if proc.running and proc.url else None,
        "lock": None,
    }
    if proc.running and live and proc.version != live.version:
        info["warning"] = f"v{proc.version} is running but the ledger says {live.label} is live"
    if lock is not None:
        # Same host: the holder's pid; another host (a team ledger): its heartbeat.
        stale = ctx.ledger.lock_staleness(lock, ctx.host)
        info["lock"] = {**lock.__dict__, "stale": stale is not None, "stale_reason": stale}
    if ctx.config.migrations is not None:
        info["database"] = _database(ctx, provider, env)
    return info


def _database(ctx: Context, provider: Any, env: str) -> dict[str, Any]:
    """The database's revision now, and the last database change if it did not finish."""
    from gonogo.commands._run_state import migration_problem
    from gonogo.errors import GonogoError

    db: dict[str, Any] = {"revisions": None, "error": None}
    try:
        db["revisions"] = provider.database_revisions(env)
    except GonogoError as exc:
        db["error"] = exc.message
    db["problem"] = migration_problem(ctx, env)
    return db


def status(ctx: Context, env: str | None = None) -> Result:
    names = [env] if env else list(ctx.config.environments)
    for name in names:
        ctx.env(name)
    envs = [env_status(ctx, name) for name in names]
    for e in envs:
        rel = f"{e['release']} ({short(e['sha'])})" if e["release"] else "no release"
        verified = f"verified {e['verified_at']}" if e["verified_at"] else "not verified"
        run = (
            f"running pid {e['pid']} on port {e['port']}, health {e['health']}"
            if e["running"]
            else "not running"
        )
        ctx.out.line(f"{e['env']:<12} {rel}, {verified}; {run}")
        if e.get("warning"):
            ctx.out.line(f"  ! {e['warning']}")
        db = e.get("database")
        if db is not None:
            at = db["error"] or (", ".join(db["revisions"]) or "base (empty)")
            ctx.out.line(f"  database: {at}")
            if db["problem"]:
                ctx.out.line(f"  ! {db['problem']['message']}")
        if e["lock"]:
            lk = e["lock"]
            state = f"STALE ({lk['stale_reason']})" if lk["stale"] else "held"
            ctx.out.line(
                f"  lock {state}: run {lk['run_id']} ({lk['command']} by "
                f"{lk['holder']}, pid {lk['pid']}, since {lk['acquired_at']})"
            )
    return Result(0, "", {"command": "status", "environments": envs})
