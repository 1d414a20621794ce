"""gonogo verify ENV: probe the live release; a pass marks it verified in the ledger."""

from __future__ import annotations

from gonogo.commands._common import verify_live
from gonogo.context import Context
from gonogo.errors import GonogoError, NoGo
from gonogo.executor import Run
from gonogo.output import mark, short
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def verify(ctx: Context, env: str) -> Result:
    ctx.env(env)
    provider = provider_for(ctx, env)
    release = ctx.ledger.live_release(env)
    if release is None:
        raise GonogoError(f"{env} has no live release; run `gonogo deploy {env}` first")
    ctx.out.line(f"gonogo verify {env} {release.label} ({short(release.sha)})")
    with Run(ctx, "verify", env, sha=release.sha) as run:
        with run.step("verify", f"verify {release.label}") as handle:
            result = verify_live(ctx, run, provider, env, release)
            handle.detail.update(ok=result.ok, reason=result.reason)
            if not result.ok:
                handle.status = "failed"
        for probe in result.probes:
            why = "; ".join(probe.reasons) or "passed"
            ctx.out.line(f"  {mark('ok' if probe.ok else 'failed')} {probe.name:<10} {why}")
        data = {
            "command": "verify",
            "env": env,
            "release": release.label,
            "sha": release.sha,
            "run_id": run.id,
            "evidence": str(run.evidence.folder),
            "verification": result.to_dict(),
        }
        if not result.ok:
            raise NoGo(
                f"NO-GO: {env} {release.label} failed verification: {result.reason}", details=data
            )
        run.summary = f"{env} {release.label} verified: {result.reason}"
    return Result(0, run.summary, data)
