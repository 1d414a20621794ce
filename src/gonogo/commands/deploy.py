"""gonogo deploy ENV: gates → lock → artifact → release → verify, with automatic rollback.

Deploy never runs migrations; `gonogo migrate ENV apply` is its own run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gonogo import gitrepo
from gonogo.commands._common import (
    database_state,
    dry_run_result,
    evaluate_gates,
    execute,
    halt_message,
    make_overrides,
    migrations_since_verified,
    put_back,
    record_gates,
    refuse,
    verify_live,
    verify_step,
)
from gonogo.context import Context
from gonogo.errors import DeployFailed
from gonogo.executor import Run
from gonogo.ledger.store import ReleaseRow
from gonogo.output import short
from gonogo.plan import Plan, Step
from gonogo.providers.base import DeployIntent, Provider
from gonogo.providers.registry import provider_for
from gonogo.result import Result

NOTE = "migrations are never part of deploy: run `gonogo migrate {env} apply` separately"


@dataclass(frozen=True)
class DeployPlan:
    """Everything decided before a deploy changes anything: the data a dry run prints."""

    env: str
    sha: str
    version: int
    provider: Provider
    plan: Plan
    previous: ReleaseRow | None


def plan_deploy(ctx: Context, env: str, sha: str, *, lead: Sequence[Step] = ()) -> DeployPlan:
    """The provider's steps for releasing `sha` to `env`, then verification.

    `lead` steps (ship's test step) go first. The release to fall back to is the last one
    known good, which is not always the live one: a halted deploy leaves an unverified
    release live.
    """
    cfg_env = ctx.env(env)
    provider = provider_for(ctx, env)
    previous = ctx.ledger.last_good_release(env)
    reuse = None
    if cfg_env.promote_from:
        upstream = ctx.ledger.verified_release_of(cfg_env.promote_from, sha)
        reuse = upstream.artifact if upstream else None
    version = ctx.ledger.next_release_version(env)
    intent = DeployIntent(
        env=env,
        version=version,
        sha=sha,
        vars=dict(cfg_env.vars),
        reuse_artifact=reuse,
        reuse_from=cfg_env.promote_from,
        previous=previous,
    )
    provider_plan = provider.plan_deploy(intent)
    steps = (*lead, *provider_plan.steps, verify_step(ctx, env, version))
    plan = Plan("deploy", env, steps, (NOTE.format(env=env),))
    return DeployPlan(env, sha, version, provider, plan, previous)


def release_and_verify(
    ctx: Context, run: Run, dp: DeployPlan, data: dict[str, Any], steps: Sequence[Step]
) -> str:
    """Perform `steps` of the deploy plan, verify, and roll back or halt on a failure."""
    env, version = dp.env, dp.version
    outcome: dict[str, Any] = {}

    def on_verify(step: Step) -> dict[str, Any]:
        release = ctx.ledger.release(env, version)
        assert release is not None
        result = verify_live(ctx, run, dp.provider, env, release)
        outcome["verify"] = result
        return {"ok": result.ok, "reason": result.reason, "rounds": result.rounds}

    execute(ctx, run, Plan(dp.plan.command, env, tuple(steps)), dp.provider, on_verify)
    result = outcome["verify"]
    data["verification"] = result.to_dict()
    release = ctx.ledger.release(env, version)
    assert release is not None
    data["artifact"] = release.artifact
    if not result.ok:
        data["rollback"] = _recover(ctx, run, dp.provider, env, release, dp.previous, result.reason)
    return f"{env} v{version} ({short(dp.sha)}) is live and verified: {result.reason}"


def deploy(
    ctx: Context,
    env: str,
    *,
    ref: str | None = None,
    dry_run: bool = False,
    confirm: str | None = None,
    override: Sequence[str] = (),
    reason: str | None = None,
) -> Result:
    ctx.dry_run = dry_run
    ctx.env(env)
    gitrepo.require_repo(ctx.root)
    sha = gitrepo.resolve(ctx.root, ref or "HEAD")
    # An unknown provider, a refused API key or a missing app: a usage error before any gate.
    provider_for(ctx, env).preflight(env)
    ctx.out.line(f"gonogo deploy {env} {short(sha)}{' (dry run)' if dry_run else ''}")
    overrides = make_overrides(ctx, override, reason)
    report = evaluate_gates(
        ctx,
        "deploy",
        env,
        sha=sha,
        confirm=confirm,
        overrides=overrides,
        extra=database_state(ctx, env),
    )
    dp = plan_deploy(ctx, env, sha)
    data: dict[str, Any] = {
        "command": "deploy",
        "env": env,
        "sha": sha,
        "release": f"v{dp.version}",
        "gates": report.to_dict(),
        "plan": dp.plan.to_dict(),
    }

    if dry_run:
        return dry_run_result(ctx, dp.plan, report, data)

    with Run(ctx, "deploy", env, sha=sha, plan=dp.plan, lock=report.go) as run:
        data.update(run_id=run.id, evidence=run.evidence.folder)
        if not report.go:
            raise refuse(ctx, run, report)
        record_gates(ctx, run, report)
        summary = release_and_verify(ctx, run, dp, data, dp.plan.steps)
        run.summary = summary
    return Result(0, summary + f". Evidence: {run.evidence.folder}", data)


def _recover(
    ctx: Context,
    run: Run,
    provider: Any,
    env: str,
    failed: ReleaseRow,
    previous: ReleaseRow | None,
    reason: str,
) -> dict[str, Any]:
    """Verification failed: put the previous release back if that is safe, else halt."""
    ctx.out.line(f"  ✘ v{failed.version} failed verification: {reason}")
    if previous is None:
        stopped = provider.stop(env)
        ctx.ledger.set_release_state(
            env, failed.version, "failed", actor=ctx.actor, run_id=run.id, reason=reason
        )
        state = "stopped" if not stopped.startswith("left running") else stopped
        raise DeployFailed(
            f"{env} {failed.label} failed verification: {reason}. There is no "
            f"earlier release to roll back to, so {env} is {state}; fix the "
            f"release and deploy again"
        )
    migs = migrations_since_verified(ctx, env, previous)
    if migs:
        raise halt_message(ctx, env, failed, previous, migs, reason)
    ctx.out.line(f"  ↺ rolling back {env} to {previous.label}")
    back = put_back(ctx, run, provider, env, previous, failed)
    ctx.ledger.set_release_state(
        env, failed.version, "failed", actor=ctx.actor, run_id=run.id, reason=reason
    )
    info = {"to": previous.label, "ok": back.ok, "reason": back.reason}
    ctx.ledger.record(
        "rollback.automatic",
        actor=ctx.actor,
        env=env,
        run_id=run.id,
        payload={"from": failed.label, "to": previous.label, "ok": back.ok, "cause": reason},
    )
    run.record["rollback"] = info
    if back.ok:
        raise DeployFailed(
            f"{env} {failed.label} ({short(failed.sha)}) failed verification: {reason}. "
            f"Rolled back automatically: {previous.label} ({short(previous.sha)}) is live and "
            f"verified again. Evidence: {run.evidence.folder}",
            details={
                "status": "rolled_back",
                "rolled_back_to": previous.label,
                "failed": failed.label,
            },
        )
    raise DeployFailed(
        f"{env} {failed.label} failed verification ({reason}) and the rollback to "
        f"{previous.label} failed verification too ({back.reason}); {env} is NOT healthy. "
        f"Look at `gonogo status {env}` and the evidence in {run.evidence.folder}",
        details={"rolled_back_to": previous.label, "failed": failed.label},
    )


__all__ = ["DeployPlan", "deploy", "plan_deploy", "release_and_verify"]
