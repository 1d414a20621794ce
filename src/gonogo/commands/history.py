"""gonogo history ENV: runs and releases, newest first, who and when."""

from __future__ import annotations

import json
from typing import Any

from gonogo.context import Context
from gonogo.output import short
from gonogo.result import Result


def history(ctx: Context, env: str, *, limit: int = 20) -> Result:
    ctx.env(env)
    from gonogo.commands._run_state import shown_status

    runs = ctx.ledger.runs(env, limit=limit)
    releases = ctx.ledger.releases(env)
    rows: list[dict[str, Any]] = [
        {
            "run_id": r.id,
            "command": r.command,
            # A run the ledger calls running whose process is gone is shown as crashed.
            "status": shown_status(ctx, r),
            "exit_code": r.exit_code,
            "sha": r.sha,
            "actor": r.actor,
            "host": r.host,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "summary": r.summary,
            "evidence": r.evidence,
        }
        for r in runs
    ]
    rels: list[dict[str, Any]] = [
        {
            "release": r.label,
            "sha": r.sha,
            "artifact": r.artifact,
            "state": r.state,
            "created_at": r.created_at,
            "verified_at": r.verified_at,
            "run_id": r.run_id,
        }
        for r in releases
    ]
    ctx.out.line(f"{env}: releases")
    for rel in rels:
        verified = "verified" if rel["verified_at"] else "unverified"
        ctx.out.line(
            f"  {rel['release']:<5} {short(rel['sha'])} {rel['state']:<8} {verified:<10} "
            f"{str(rel['created_at'])[:19]}  {rel['artifact'][:19]}"
        )
    overrides = [
        {**json.loads(e["payload"]), "by": e["actor"], "run_id": e["run_id"], "ts": e["ts"]}
        for e in reversed(ctx.ledger.events(kind="gate.override", env=env))
    ]
    if overrides:
        ctx.out.line(f"{env}: gate overrides (newest first)")
        for ov in overrides:
            ctx.out.line(
                f"  {ov['ts'][:19]} {ov['gate']} passed by {ov['by']} for {ov['command']} "
                f"{short(ov.get('sha'))}: {ov['reason']} (it said: {ov['refusal']})"
            )
    ctx.out.line(f"{env}: runs (newest first)")
    for row in rows:
        ctx.out.line(
            f"  {row['started_at'][:19]} {row['command']:<14} {row['status']:<12} "
            f"{short(row['sha'])} {row['actor']}: {row['summary'] or ''}"
        )
    return Result(
        0,
        "",
        {
            "command": "history",
            "env": env,
            "runs": rows,
            "releases": rels,
            "overrides": overrides,
        },
    )
