"""gonogo migrate ENV apply: the explicit migration step, its own run with its own lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gonogo.commands._common import (
    dry_run_result,
    evaluate_gates,
    execute,
    make_overrides,
    record_gates,
    refuse,
)
from gonogo.context import Context
from gonogo.errors import DeployFailed, GonogoError
from gonogo.executor import Run
from gonogo.ledger.store import MigrationRow, now_iso
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def apply(
    ctx: Context,
    env: str,
    *,
    dry_run: bool = False,
    confirm: str | None = None,
    override: Sequence[str] = (),
    reason: str | None = None,
) -> Result:
    ctx.dry_run = dry_run
    ctx.env(env)
    provider = provider_for(ctx, env)
    release = ctx.ledger.live_release(env)
    if release is None:
        raise GonogoError(
            f"{env} has no live release; migrations run with the live release's "
            f"code, so run `gonogo deploy {env}` first"
        )
    ctx.out.line(f"gonogo migrate {env} apply ({release.label}){' (dry run)' if dry_run else ''}")
    overrides = make_overrides(ctx, override, reason)
    report = evaluate_gates(
        ctx, "migrate", env, sha=release.sha, confirm=confirm, overrides=overrides
    )
    plan = provider.plan_migrate(env, release)
    data: dict[str, Any] = {
        "command": "migrate apply",
        "env": env,
        "release": release.label,
        "gates": report.to_dict(),
        "plan": plan.to_dict(),
    }
    if dry_run:
        return dry_run_result(ctx, plan, report, data)
    with Run(ctx, "migrate apply", env, sha=release.sha, plan=plan, lock=report.go) as run:
        data.update(run_id=run.id, evidence=str(run.evidence.folder))
        if not report.go:
            raise refuse(ctx, run, report)
        record_gates(ctx, run, report)
        execute(ctx, run, plan, provider)
        detail = run.to_dict()["steps"][-1]["detail"]
        before, after = detail.get("before") or [], detail.get("after") or []
        ok = detail.get("exit_code") == 0
        ctx.ledger.record_migration(
            MigrationRow(
                env=env,
                run_id=run.id,
                from_revision=",".join(before) or None,
                to_revision=",".join(after) or None,
                status="ok" if ok else "failed",
                applied_at=now_iso(),
            ),
            actor=ctx.actor,
        )
        data.update(before=before, after=after)
        if not ok:
            tail = " | ".join(detail.get("output_tail") or [])
            raise DeployFailed(
                f"migration on {env} failed (exit {detail.get('exit_code')}): {tail}. The "
                f"database is at {', '.join(after) or 'base'}; see {run.evidence.folder}/"
                f"migrate.log",
                details=data,
            )
        if before == after:
            run.summary = f"{env} database already at {', '.join(after) or 'base'}; nothing to do"
        else:
            run.summary = (
                f"{env} database migrated {', '.join(before) or 'base'} → {', '.join(after)}"
            )
    return Result(0, run.summary, data)
