"""gonogo verify ENV: probe the live release; a pass marks it verified in the ledger."""

from __future__ import annotations

from typing import Any

from gonogo.commands._common import verify_live
from gonogo.context import Context
from gonogo.errors import GonogoError, NoGo
from gonogo.executor import Run
from gonogo.ledger.store import ReleaseRow
from gonogo.output import mark, short
from gonogo.providers.base import Provider
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
        schema = _schema_check(ctx, provider, env, release)
        if schema is not None:
            with run.step("schema", f"{env}'s database at {release.label}'s head") as handle:
                handle.detail.update(schema)
                if not schema["ok"]:
                    handle.status = "failed"
            if not schema["ok"]:
                ctx.out.line(f"  ✘ database   {schema['reason']}")
                raise NoGo(
                    f"NO-GO: {env} {release.label} failed verification: {schema['reason']}",
                    details={"schema": schema},
                )
            ctx.out.line(f"  ✔ database   {schema['reason']}")
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
        if schema is not None:
            data["schema"] = schema
        run.summary = f"{env} {release.label} verified: {result.reason}"
    return Result(0, run.summary, data)


def _schema_check(
    ctx: Context, provider: Provider, env: str, release: ReleaseRow
) -> dict[str, Any] | None:
    """The playbook's `SELECT version_num FROM alembic_version`: the database must be at the
    head of the migration history in the live release's code."""
    if ctx.config.migrations is None:
        return None
    from gonogo.migrations.history import load_history

    target = provider.migration_target(env, release)
    expected = sorted(load_history(target.cwd / target.ini).heads)
    current = sorted(provider.database_revisions(env))
    ok = current == expected
    shown_current = ", ".join(current) or "base (empty)"
    reason = (
        f"at {shown_current}, the head of {release.label}'s migrations"
        if ok
        else f"database is at {shown_current} but {release.label} expects "
        f"{', '.join(expected)}; run `gonogo migrate {env} plan`, approve, then apply"
    )
    return {"ok": ok, "current": current, "expected": expected, "reason": reason}
