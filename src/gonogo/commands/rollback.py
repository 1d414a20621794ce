"""gonogo rollback ENV [--to vN] [--db REVISION]: put an earlier release and/or schema back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gonogo.commands._common import (
    database_state,
    dry_run_result,
    evaluate_gates,
    make_overrides,
    migrations_since_verified,
    print_gates,
    put_back,
    record_gates,
    refuse,
)
from gonogo.commands.db_rollback import DbRollback, data_loss_check, plan_db_rollback, show
from gonogo.commands.db_rollback import perform as perform_db
from gonogo.context import Context
from gonogo.errors import DeployFailed, GonogoError
from gonogo.executor import Run
from gonogo.gates.engine import GateReport
from gonogo.ledger.store import ReleaseRow
from gonogo.output import short
from gonogo.plan import Plan, Step
from gonogo.providers.base import ActivateIntent
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def _parse_version(text: str) -> int:
    raw = text[1:] if text[:1] in ("v", "V") else text
    if not raw.isdigit():
        raise GonogoError(f"--to {text!r}: give a release number such as v3")
    return int(raw)


def choose_target(
    ctx: Context, env: str, to: str | None, provider: Any = None
) -> tuple[ReleaseRow, ReleaseRow | None]:
    releases = ctx.ledger.releases(env)
    current = next((r for r in releases if r.state == "live"), None)
    if not releases:
        raise GonogoError(f"{env} has no releases yet; nothing to roll back to")
    if to is not None:
        # A provider with release numbers of its own (Heroku's vNNN, as in its dashboard)
        # names the ledger release that number runs.
        resolve = getattr(provider, "resolve_release", None)
        if resolve is not None:
            target = resolve(env, to)
            version = target.version
        else:
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
    db: str | None = None,
    accept_data_loss: bool = False,
    dry_run: bool = False,
    confirm: str | None = None,
    override: Sequence[str] = (),
    reason: str | None = None,
) -> Result:
    """Put an earlier release back, downgrade the database, or both, planned together.

    Without --db this is the app rollback. With --db alone only the database goes back.
    With both, the database is downgraded first (the live release's migrations know the
    revisions to undo), then the old release is started and verified.
    """
    ctx.dry_run = dry_run
    ctx.env(env)
    if accept_data_loss and db is None:
        raise GonogoError("--accept-data-loss only applies to a database rollback (--db REVISION)")
    provider = provider_for(ctx, env)
    provider.preflight(env)  # a refused key or a missing app is one line before any gate
    live = ctx.ledger.live_release(env)
    app = to is not None or db is None
    target, current = choose_target(ctx, env, to, provider) if app else (None, live)
    dbr = plan_db_rollback(ctx, provider, env, live, db) if db is not None else None
    what = [f"→ {target.label} ({short(target.sha)})"] if target else []
    what += [f"database → {db}"] if db is not None else []
    ctx.out.line(f"gonogo rollback {env} {', '.join(what)}{' (dry run)' if dry_run else ''}")
    if dbr is not None:
        show(ctx, dbr)
    overrides = make_overrides(ctx, override, reason)
    extra: dict[str, Any] = {
        **database_state(ctx, env),
        "db_after": db,
        "live_sha": live.sha if live else None,
        "target_label": target.label if target else None,
        "db_only": target is None,
    }
    gate_sha = target.sha if target else None
    report = evaluate_gates(
        ctx, "rollback", env, sha=gate_sha, confirm=confirm, overrides=overrides, extra=extra
    )
    if dbr is not None:
        check = data_loss_check(ctx, dbr, accept_data_loss, reason)
        report = GateReport((*report.results, check))
        print_gates(ctx.out, GateReport((check,)))
    steps: list[Step] = []
    db_plan = provider.plan_downgrade(env, dbr.release, dbr.steps) if dbr else None
    if db_plan is not None:
        steps += db_plan.steps
    if target is not None:
        steps += provider.plan_activate(ActivateIntent(env, target, current)).steps
    plan = Plan("rollback", env, tuple(steps))
    warnings = _warnings(ctx, env, target, dbr)
    for w in warnings:
        ctx.out.line(f"  ! {w}")
    data: dict[str, Any] = {
        "command": "rollback",
        "env": env,
        "to": target.label if target else None,
        "from": current.label if current else None,
        "sha": target.sha if target else None,
        "db": dbr.to_dict() if dbr else None,
        "gates": report.to_dict(),
        "plan": plan.to_dict(),
        "warnings": warnings,
    }
    if dry_run:
        return dry_run_result(ctx, plan, report, data)
    run_sha = target.sha if target else (live.sha if live else None)
    with Run(ctx, "rollback", env, sha=run_sha, plan=plan, lock=report.go) as run:
        data.update(run_id=run.id, evidence=str(run.evidence.folder))
        run.record["warnings"] = warnings
        if not report.go:
            raise refuse(ctx, run, report)
        record_gates(ctx, run, report)
        summary: list[str] = []
        if dbr is not None and db_plan is not None:
            undone = perform_db(ctx, run, provider, dbr, db_plan)
            data["undone"] = undone
            summary.append(f"database downgraded to {dbr.target} (undid {', '.join(undone)})")
            ctx.ledger.record(
                "rollback.db",
                actor=ctx.actor,
                env=env,
                run_id=run.id,
                payload={"from": dbr.current, "to": dbr.target, "undone": undone},
            )
        if target is not None:
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
                    f"{env} {target.label} is running but failed verification: {result.reason}."
                    + (f" ({summary[0]}.)" if summary else "")
                    + f" Check `gonogo status {env}`; `gonogo rollback {env} --to vN` puts "
                    "another release back",
                    details=data,
                )
            summary.insert(0, f"rolled back to {target.label} ({short(target.sha)}), verified")
        run.summary = f"{env} " + "; ".join(summary)
    return Result(0, run.summary, data)


def _warnings(
    ctx: Context, env: str, target: ReleaseRow | None, dbr: DbRollback | None
) -> list[str]:
    if target is None and dbr is not None:
        if dbr.target != "base" and [dbr.target] == dbr.expected_head:
            return []
        return [
            f"{dbr.release.label} (live) expects the database at "
            f"{', '.join(dbr.expected_head)}; after this it is at {dbr.target}, so "
            f"`gonogo verify {env}` fails until `gonogo migrate {env} apply` or an app rollback"
        ]
    if target is None or dbr is not None:
        return []
    return [
        f"migration {m.from_revision or 'base'} → {m.to_revision} ran after {target.label} was "
        f"verified; rolling the app back does not undo it"
        for m in migrations_since_verified(ctx, env, target)
    ]
