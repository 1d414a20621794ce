"""gonogo rollback ENV [--to vN]: put an earlier release back and verify it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gonogo.commands._common import (
    dry_run_result,
    evaluate_gates,
    make_overrides,
    migrations_since_verified,
    put_back,
    record_gates,
    refuse,
)
from gonogo.context import Context
from gonogo.errors import DeployFailed, GonogoError
from gonogo.executor import Run
from gonogo.ledger.store import ReleaseRow
from gonogo.output import short
from gonogo.providers.base import ActivateIntent
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def _parse_version(text: str) -> int:
    raw = text[1:] if text[:1] in ("v", "V") else text
    if not raw.isdigit():
        raise GonogoError(f"--to {text!r}: give a release number such as v3")
    return int(raw)


def choose_target(ctx: Context, env: str, to: str | None) -> tuple[ReleaseRow, ReleaseRow | None]:
    releases = ctx.ledger.releases(env)
    current = next((r for r in releases if r.state == "live"), None)
    if not releases:
        raise GonogoError(f"{env} has no releases yet; nothing to roll back to")
    if to is not None:
        version = _parse_version(to)
        target = next((r for r in releases if r.version == version), None)
        if target is None:
            known = ", ".join(r.label for r in reversed(releases))
            raise GonogoError(f"--to {to}: {env} has no release v{version} (releases: {known})")
        if current is not None and target.version == current.version:
            raise GonogoError(f"--to {to}: v{version} is already the live release of {env}")
        return target, current
    for rel in releases:
        if (
            (current is None or rel.version < current.version)
            and rel.verified_at
            and rel.state != "failed"
        ):
            return rel, current
    raise GonogoError(
        f"{env} has no earlier verified release to roll back to; name one with --to vN"
    )


def rollback(
    ctx: Context,
    env: str,
    *,
    to: str | None = None,
    dry_run: bool = False,
    confirm: str | None = None,
    override: Sequence[str] = (),
    reason: str | None = None,
) -> Result:
    ctx.dry_run = dry_run
    ctx.env(env)
    provider = provider_for(ctx, env)
    target, current = choose_target(ctx, env, to)
    ctx.out.line(
        f"gonogo rollback {env} → {target.label} ({short(target.sha)})"
        f"{' (dry run)' if dry_run else ''}"
    )
    overrides = make_overrides(ctx, override, reason)
    report = evaluate_gates(
        ctx, "rollback", env, sha=target.sha, confirm=confirm, overrides=overrides
    )
    plan = provider.plan_activate(ActivateIntent(env, target, current))
    migs = migrations_since_verified(ctx, env, target)
    warnings = [
        f"migration {m.from_revision or 'base'} → {m.to_revision} ran after {target.label} was "
        f"verified; rolling the app back does not undo it"
        for m in migs
    ]
    for w in warnings:
        ctx.out.line(f"  ! {w}")
    data: dict[str, Any] = {
        "command": "rollback",
        "env": env,
        "to": target.label,
        "from": current.label if current else None,
        "sha": target.sha,
        "gates": report.to_dict(),
        "plan": plan.to_dict(),
        "warnings": warnings,
    }
    if dry_run:
        return dry_run_result(ctx, plan, report, data)
    with Run(ctx, "rollback", env, sha=target.sha, plan=plan, lock=report.go) as run:
        data.update(run_id=run.id, evidence=str(run.evidence.folder))
        run.record["warnings"] = warnings
        if not report.go:
            raise refuse(ctx, run, report)
        record_gates(ctx, run, report)
        result = put_back(ctx, run, provider, env, target, current)
        ctx.ledger.record(
            "rollback",
            actor=ctx.actor,
            env=env,
            run_id=run.id,
            payload={"from": data["from"], "to": target.label, "ok": result.ok},
        )
        data["verification"] = result.to_dict()
        if not result.ok:
            raise DeployFailed(
                f"{env} {target.label} is running but failed verification: {result.reason}. "
                f"Check `gonogo status {env}`; `gonogo rollback {env} --to vN` puts another "
                f"release back",
                details=data,
            )
        run.summary = f"{env} rolled back to {target.label} ({short(target.sha)}), verified"
    return Result(0, run.summary, data)
