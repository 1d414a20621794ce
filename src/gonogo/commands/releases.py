"""gonogo releases ENV: the ledger's releases, and the platform's own mapped onto them.

The playbook's `make heroku-rollback REL=vNNN` starts from Heroku's release list; this shows
that list beside gonogo's, so the person picking vNNN sees which commit each one runs and
which ones gonogo never made (and so cannot verify).
"""

from __future__ import annotations

from typing import Any

from gonogo.context import Context
from gonogo.errors import GonogoError
from gonogo.output import short
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def releases(ctx: Context, env: str, *, limit: int = 20) -> Result:
    ctx.env(env)
    if limit < 1:
        raise GonogoError(f"--limit {limit}: give a number of releases, 1 or more")
    provider = provider_for(ctx, env)
    was_dry_run, ctx.dry_run = ctx.dry_run, True  # reading never creates the ledger
    try:
        rows = ctx.ledger.releases(env)[:limit]  # newest first
        platform = provider.platform_releases(env, limit)  # maps onto the same ledger
    finally:
        ctx.dry_run = was_dry_run
    ours: list[dict[str, Any]] = [
        {
            "version": row.label,
            "sha": row.sha,
            "state": row.state,
            "created_at": row.created_at,
            "verified_at": row.verified_at,
            "artifact": row.artifact,
            "description": row.description,
        }
        for row in rows
    ]
    ctx.out.line(f"gonogo releases {env} ({provider.name})")
    for rel in ours:
        verified = f"verified {rel['verified_at']}" if rel["verified_at"] else "not verified"
        ctx.out.line(
            f"  {rel['version']:>5}  {rel['state']:<9} {short(rel['sha'])}  {verified}  "
            f"{rel['description']}".rstrip()
        )
    if not ours:
        ctx.out.line("  no release recorded by gonogo")
    if platform is not None:
        ctx.out.line(f"{provider.name} releases (newest first):")
        for rel in platform:
            runs = (
                f"gonogo {rel['ledger']} ({short(rel['sha'])})"
                if rel.get("ledger")
                else "not made by gonogo: commit unknown, cannot be a rollback target"
            )
            current = " current" if rel.get("current") else ""
            ctx.out.line(
                f"  {rel['version']:>5}  {rel['status']}{current}  image {rel.get('image') or '?'}"
                f"  → {runs}"
            )
    n = len(ours)
    message = f"{env}: {n} release{'s' if n != 1 else ''} recorded by gonogo" + (
        f", {len(platform)} on {provider.name}" if platform is not None else ""
    )
    data = {"command": "releases", "env": env, "releases": ours, "platform": platform}
    return Result(0, message, data)
