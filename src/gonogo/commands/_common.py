"""Pieces several commands share: gate evaluation, verification, putting a release back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gonogo.errors import DeployFailed, GonogoError, NoGo
from gonogo.gates import engine
from gonogo.gates.model import GateInput, Override
from gonogo.output import mark, short
from gonogo.plan import Plan, Step

if TYPE_CHECKING:
    from gonogo.context import Context
    from gonogo.executor import Run
    from gonogo.gates.engine import GateReport
    from gonogo.ledger.store import ReleaseRow
    from gonogo.output import Output
    from gonogo.probes import VerifyResult
    from gonogo.providers.base import Provider
    from gonogo.result import Result


def gate_input(
    ctx: Context,
    env: str,
    command: str,
    *,
    sha: str | None = None,
    confirm: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> GateInput:
    return GateInput(
        root=ctx.root,
        config=ctx.config,
        env=env,
        ledger=ctx.ledger,
        environ=ctx.environ,
        sha=sha,
        confirm=confirm,
        command=command,
        extra=dict(extra or {}),
    )


def database_state(ctx: Context, env: str) -> dict[str, Any]:
    """The environment's migration revision, for gates that weigh pending migrations."""
    if ctx.config.migrations is None:
        return {}
    from gonogo.providers.registry import provider_for

    try:
        return {"db_revisions": provider_for(ctx, env).database_revisions(env)}
    except GonogoError as exc:  # an unreachable database is the gate's NO-GO, not a crash
        return {"db_revisions_error": exc.message.splitlines()[0]}
    except Exception as exc:
        return {"db_revisions_error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def platform_state(ctx: Context, env: str) -> dict[str, Any]:
    """What the environment's platform says about implicit migrations (Heroku's release
    phase), for the migrations-explicit gate; {} for providers that have none."""
    from gonogo.providers.registry import provider_for

    check = getattr(provider_for(ctx, env), "release_phase", None)
    if check is None:
        return {}
    try:
        return {"release_phase": check(env).to_dict()}
    except GonogoError as exc:
        return {"release_phase": {"error": exc.message.splitlines()[0]}}


def make_overrides(ctx: Context, gates: Sequence[str], reason: str | None) -> dict[str, Override]:
    if not gates:
        return {}
    if not (reason or "").strip():
        raise GonogoError('--override needs --reason "why" (it is recorded in the ledger)')
    from gonogo.ledger.store import now_iso

    return {g: Override(g, (reason or "").strip(), ctx.actor, now_iso()) for g in gates}


def evaluate_gates(
    ctx: Context,
    command: str,
    env: str,
    *,
    sha: str | None = None,
    confirm: str | None = None,
    overrides: Mapping[str, Override] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> GateReport:
    inp = command_input(ctx, command, env, sha=sha, confirm=confirm, extra=extra)
    report = engine.for_command(command, inp, overrides)
    print_gates(ctx.out, report)
    return report


def command_input(
    ctx: Context,
    command: str,
    env: str,
    *,
    sha: str | None = None,
    confirm: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> GateInput:
    """What the gates guarding `command` read, the platform's part included."""
    # Only migrations-explicit reads the platform's release phase: ask the platform (an
    # API call on Heroku) only for commands that gate.
    if "migrations-explicit" in engine.COMMAND_GATES.get(command, ()):
        extra = {**platform_state(ctx, env), **(extra or {})}
    return gate_input(ctx, env, command, sha=sha, confirm=confirm, extra=extra)


def print_gates(out: Output, report: GateReport, *, detail: bool = False) -> None:
    width = max((len(r.id) for r in report.results), default=10) + 1
    for r in report.results:
        symbol = "!" if r.override else mark(r.verdict)
        out.line(f"  {symbol} {r.id:<{width}} {r.reason}")
        if r.override:
            out.line(f"      NO-GO overridden by {r.override.by}: {r.override.reason}")
        if not detail:
            continue
        out.line(f"      evidence: {r.evidence}")
        if not r.go and r.fix:
            out.line(f"      fix: {r.fix}")
        for f in r.findings[:5] if not r.go else ():
            where = f"{f.file}:{f.line}" if f.line else f.file
            out.line(f"      - {where}: {f.message}")
        if not r.go and len(r.findings) > 5:
            out.line(f"      … and {len(r.findings) - 5} more (see --json)")


def record_gates(ctx: Context, run: Run, report: GateReport) -> None:
    """Gate verdicts into the run's evidence, and every override into the ledger."""
    run.record["gates"] = report.to_dict()
    run.evidence.write_json("gates.json", report.to_dict())
    for r in report.results:
        run.log(f"gate {r.id}: {r.verdict}{' (overridden)' if r.override else ''}: {r.reason}")
    for r in report.results:
        if r.override is None:
            continue
        ctx.ledger.record(
            "gate.override",
            actor=r.override.by,
            env=run.env,
            run_id=run.id,
            payload={
                "gate": r.id,
                "reason": r.override.reason,
                "at": r.override.at,
                "command": run.command,
                "sha": run.sha,
                "refusal": r.reason,
            },
        )


def refuse(ctx: Context, run: Run, report: GateReport) -> NoGo:
    """Record a refusal and build the exception that exits 2."""
    ids = ", ".join(r.id for r in report.refusals())
    first = report.refusals()[0]
    record_gates(ctx, run, report)
    fix = f" Fix: {first.fix}." if first.fix else ""
    return NoGo(
        f"NO-GO ({ids}): {first.reason}; nothing was changed.{fix}",
        details={"gates": report.to_dict()},
    )


def dry_run_result(ctx: Context, plan: Plan, report: GateReport, data: dict[str, Any]) -> Result:
    """Show what would happen; exit as the gates decide (0 GO, 2 NO-GO), change nothing."""
    from gonogo.errors import EXIT_NOGO
    from gonogo.result import Result

    for line in plan.render():
        ctx.out.line(f"  {line}")
    return Result(
        0 if report.go else EXIT_NOGO,
        f"dry run: {report.verdict}; nothing was changed",
        {**data, "dry_run": True, "verdict": report.verdict},
    )


def verify_step(ctx: Context, env: str, version: int) -> Step:
    verify = ctx.config.verify_for(env)
    names = ", ".join(p.name for p in verify.probes)
    return Step(
        "verify",
        f"verify v{version}: probes {names} within {verify.deadline:g}s",
        {"env": env, "version": version},
    )


def verify_live(
    ctx: Context, run: Run, provider: Provider, env: str, release: ReleaseRow
) -> VerifyResult:
    from gonogo.evidence import looks_secret
    from gonogo.probes import config_var_names, verify_probes

    verify = ctx.config.verify_for(env)
    wanted = config_var_names(verify)
    # `{vars.NAME}`: the variables the release was given, unless the platform says what
    # the running release really has (a Heroku config var changed since).
    context = {f"vars.{k}": v for k, v in release.vars.items() if k in wanted}
    platform = getattr(provider, "verify_context", None)
    if platform is not None:  # e.g. Heroku's release version, description, commit, vars
        context.update(platform(env, release, wanted))
    context.update(sha=release.sha, env=env, version=release.label)
    secret = [v for k, v in context.items() if k.startswith("vars.") and looks_secret(k[5:])]
    if secret:  # read from the platform, so the run's redactor has not seen them yet
        run.evidence.redactor = run.evidence.redactor.with_secrets(secret)
    result = verify_probes(provider.base_url(env), verify, context, alive=provider.alive_check(env))
    run.evidence.write_json(f"probes-{env}-{release.label}.json", result.to_dict())
    run.log(f"verify {env} {release.label}: {result.reason}")
    if result.ok:
        ctx.ledger.mark_verified(env, release.version, actor=ctx.actor, run_id=run.id)
    return result


def execute(ctx: Context, run: Run, plan: Plan, provider: Provider, on_verify: Any = None) -> None:
    """Perform a plan, printing each step; the verify step is delegated to on_verify."""
    for step in plan.steps:
        ctx.out.line(f"  ▸ {step.description}")
        with run.step(step.action, step.description) as handle:
            if step.action == "verify":
                handle.detail.update(on_verify(step))
            else:
                handle.detail.update(provider.perform(step, run))
            if handle.detail.get("ok") is False:
                handle.status = "failed"


def put_back(
    ctx: Context,
    run: Run,
    provider: Provider,
    env: str,
    target: ReleaseRow,
    current: ReleaseRow | None,
) -> VerifyResult:
    """Stop what runs now, start `target` again and verify it."""
    from gonogo.providers.base import ActivateIntent

    plan = provider.plan_activate(ActivateIntent(env, target, current))
    result: dict[str, VerifyResult] = {}

    def on_verify(step: Step) -> dict[str, Any]:
        result["v"] = verify_live(ctx, run, provider, env, target)
        return {"ok": result["v"].ok, "reason": result["v"].reason}

    steps = (*plan.steps, verify_step(ctx, env, target.version))
    execute(ctx, run, Plan(plan.command, env, steps), provider, on_verify)
    return result["v"]


def migrations_since_verified(ctx: Context, env: str, release: ReleaseRow) -> list[Any]:
    since = release.verified_at or release.live_since or release.created_at
    return [m for m in ctx.ledger.migrations_since(env, since) if m.status == "ok"]


def halt_message(
    ctx: Context, env: str, failed: ReleaseRow, previous: ReleaseRow, migs: list[Any], reason: str
) -> DeployFailed:
    ini = ctx.config.alembic_ini
    first = migs[0]
    revs = ", ".join(f"{m.from_revision or 'base'} → {m.to_revision}" for m in migs)
    commands = [
        f"gonogo status {env}",
        f"python -m alembic -c {ini} downgrade {first.from_revision or 'base'}",
        f"gonogo rollback {env} --to {previous.label}",
    ]
    msg = (
        f"{env} {failed.label} ({short(failed.sha)}) failed verification: {reason}. "
        f"A migration ran since {previous.label} was last verified ({revs}), so gonogo did "
        f"not roll the app back: {failed.label} is left as it is. To recover (the downgrade "
        f"with {env}'s DATABASE_URL, only if it is safe): "
        + "; then ".join(f"`{c}`" for c in commands)
    )
    return DeployFailed(
        msg,
        details={
            "status": "halted",
            "halted": True,
            "recover": commands,
            "failed": failed.label,
            "previous": previous.label,
        },
    )
