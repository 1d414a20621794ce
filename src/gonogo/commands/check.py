"""gonogo check ENV: every gate guarding ENV, as a checklist. Changes nothing.

`gonogo check --gate migrations-explicit [PATH]` also works in a repository without a
gonogo.toml, so a team can try the implicit-migration detector before adopting the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gonogo import gitrepo
from gonogo.commands._common import database_state, gate_input, platform_state, print_gates
from gonogo.context import Context
from gonogo.errors import EXIT_NOGO
from gonogo.gates import engine
from gonogo.gates.engine import GateReport
from gonogo.output import Output, short
from gonogo.result import Result


def _result(out: Output, report: GateReport, data: dict[str, object]) -> Result:
    print_gates(out, report, detail=True)
    refused = report.refusals()
    if refused:
        ids = ", ".join(r.id for r in refused)
        message = f"NO-GO: {len(refused)} of {len(report.results)} gate(s) refused ({ids})"
    else:
        message = f"GO: all {len(report.results)} gate(s) passed"
    return Result(0 if report.go else EXIT_NOGO, message, {**data, **report.to_dict()})


def check(ctx: Context, env: str, *, ref: str | None = None, gates: Sequence[str] = ()) -> Result:
    ctx.env(env)
    gitrepo.require_repo(ctx.root)
    sha = gitrepo.resolve(ctx.root, ref or "HEAD")
    ctx.out.line(f"gonogo check {env} {short(sha)}")
    was_dry_run, ctx.dry_run = ctx.dry_run, True  # a check reads the ledger, never creates it
    try:
        extra = {
            **_pending_migrations(ctx, env),
            **database_state(ctx, env),
            **platform_state(ctx, env),
        }
        inp = gate_input(ctx, env, "check", sha=sha, extra=extra)
        report = engine.evaluate(engine.select(ctx.config, env, "check", gates), inp)
    finally:
        ctx.dry_run = was_dry_run
    return _result(ctx.out, report, {"command": "check", "env": env, "sha": sha})


def _pending_migrations(ctx: Context, env: str) -> dict[str, object]:
    """What `migrate apply` would run on env now, for the migration-approved gate."""
    from gonogo.errors import GonogoError
    from gonogo.migrations.pending import pending_sql
    from gonogo.providers.registry import provider_for

    release = ctx.ledger.live_release(env)
    if release is None or ctx.config.migrations is None:
        return {}
    try:
        target = provider_for(ctx, env).migration_target(env, release)
        return {"pending_sql": pending_sql(target)}
    except GonogoError as exc:
        return {"pending_sql_error": exc.message}


def check_detector(out: Output, path: Path) -> Result:
    """The migrations-explicit gate alone, on any folder, no gonogo.toml needed."""
    from gonogo.gates.builtin.migrations_explicit import scan_result

    root = path.resolve()
    out.line(f"gonogo check --gate migrations-explicit {root}")
    result = scan_result(root, None)
    report = GateReport((result,))
    return _result(out, report, {"command": "check", "env": None, "path": str(root)})
