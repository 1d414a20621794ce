"""gonogo migrate ENV apply: the explicit migration step, its own run with its own lock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gonogo.commands._common import (
    dry_run_result,
    evaluate_gates,
    make_overrides,
    record_gates,
    refuse,
)
from gonogo.commands._db_steps import run_db_steps
from gonogo.context import Context
from gonogo.errors import EXIT_NOGO, DeployFailed, GonogoError, NoGo
from gonogo.executor import Run
from gonogo.ledger.store import ApprovalRow, ReleaseRow, now_iso
from gonogo.migrations.pending import MigrationTarget, pending_sql
from gonogo.output import Output
from gonogo.providers.base import Provider
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def _live(ctx: Context, env: str) -> tuple[Provider, ReleaseRow]:
    ctx.env(env)
    provider = provider_for(ctx, env)
    release = ctx.ledger.live_release(env)
    if release is None:
        raise GonogoError(
            f"{env} has no live release; migrations run with the live release's "
            f"code, so run `gonogo deploy {env}` first"
        )
    return provider, release


def status(ctx: Context, env: str) -> Result:
    """Where env's database is, where the live release's migrations end, what is pending."""
    from gonogo.commands._run_state import migration_problem
    from gonogo.migrations.history import load_history, pending

    provider, release = _live(ctx, env)
    target = provider.migration_target(env, release)
    current = provider.database_revisions(env)
    history = load_history(target.cwd / target.ini)
    single = len(history.heads) == 1
    todo = pending(history, current) if single else []
    data: dict[str, Any] = {
        "command": "migrate status",
        "env": env,
        "release": release.label,
        "current": current,
        "heads": history.heads,
        "single_head": single,
        "pending": todo,
    }
    ctx.out.line(f"{env} database: {', '.join(current) or 'base (empty)'}")
    ctx.out.line(f"{release.label} migrations head: {', '.join(history.heads)}")
    problem = migration_problem(ctx, env)
    data["last_problem"] = problem
    if problem:
        ctx.out.line(f"  ! {problem['message']}")
    if not single:
        merge = f"alembic merge -m 'merge heads' {' '.join(history.heads)}"
        data["merge_command"] = merge
        return Result(
            EXIT_NOGO,
            f"NO-GO for apply: the history has {len(history.heads)} heads; merge them: {merge}",
            data,
        )
    for rev in todo:
        ctx.out.line(f"  pending: {rev}")
    message = (
        f"{len(todo)} pending revision(s): {', '.join(todo)}"
        if todo
        else f"{env} is at head; nothing pending"
    )
    return Result(0, message, data)


def plan(ctx: Context, env: str) -> Result:
    """Each pending revision with its SQL, its operations and its rollback class."""
    from gonogo.migrations.classify import classify_history
    from gonogo.migrations.history import load_history, pending

    provider, release = _live(ctx, env)
    target = provider.migration_target(env, release)
    sql = pending_sql(target)
    history = load_history(target.cwd / target.ini)
    todo = pending(history, list(sql.current))
    dialect = target.database_url.split(":", 1)[0].split("+", 1)[0]
    classes = classify_history(history, dialect=dialect, revisions=todo).revisions
    for c in classes:
        ctx.out.line(f"{c.revision}  {c.klass.upper()}  {c.reason}")
        for op in c.operations:
            ctx.out.line(f"    - {op}")
        for line in c.upgrade_sql.strip().splitlines():
            ctx.out.line(f"    | {line}")
    worst = next(
        (k for k in ("irreversible", "lossy") if any(c.klass == k for c in classes)), "reversible"
    )
    data: dict[str, Any] = {
        "command": "migrate plan",
        "env": env,
        "release": release.label,
        "from": sql.start,
        "to": sql.target,
        "sql_sha256": sql.sha256,
        "sql_basis": sql.basis,
        "sql": sql.sql,
        "revisions": [c.to_dict(sql=True) for c in classes],
    }
    if not classes:
        return Result(0, f"{env} is at {sql.target}: nothing pending", data)
    return Result(
        0,
        f"{len(classes)} pending revision(s) {sql.start} → {sql.target}, worst class: {worst}; "
        f"approve exactly this ({sql.basis}) with `gonogo migrate {env} approve` "
        f"(sha256 {sql.sha256[:12]})",
        data,
    )


def rehearse(ctx: Context, env: str) -> Result:
    """Apply, undo and re-apply each pending revision on a throwaway copy of env's database."""
    import tempfile

    from gonogo.migrations.rehearse import rehearse as run_rehearsal

    provider, release = _live(ctx, env)
    target = provider.migration_target(env, release)
    with Run(ctx, "migrate rehearse", env, sha=release.sha) as run:
        # A SQLite copy may hold real rows: it lives in a temporary folder, never in the
        # evidence. A PostgreSQL rehearsal copies the schema only, into a scratch database.
        with tempfile.TemporaryDirectory(prefix="gonogo-rehearse-") as tmp:
            result = run_rehearsal(target, workdir=Path(tmp))
            log = Path(result.log)
            if log.is_file():
                run.evidence.write_text("rehearsal.log", log.read_text(errors="replace"))
        doc = result.to_dict()
        run.evidence.write_json("rehearsal.json", doc)
        ctx.out.line(f"  copy: {result.basis}")
        for step in result.steps:
            mark = "✔" if step.ok else "✘"
            ctx.out.line(
                f"  {mark} {step.revision:<28} {step.action:<10} {step.command}"
                + (f"  → {step.error}" if step.error else "")
            )
        data: dict[str, Any] = {
            "command": "migrate rehearse",
            "env": env,
            "release": release.label,
            "run_id": run.id,
            "evidence": str(run.evidence.folder),
            **doc,
        }
        if not result.ok:
            raise NoGo(
                f"NO-GO: the rehearsal on a copy of {env}'s database failed: "
                f"{result.summary}; {env}'s database was not touched",
                details=data,
            )
        run.summary = result.summary
    return Result(0, run.summary, data)


def approve(ctx: Context, env: str, *, by: str | None = None, note: str = "") -> Result:
    """Record an approval of exactly the SQL `migrate apply` would run now."""
    provider, release = _live(ctx, env)
    pending = pending_sql(provider.migration_target(env, release))
    data: dict[str, Any] = {
        "command": "migrate approve",
        "env": env,
        "from": pending.start,
        "to": pending.target,
        "sql_sha256": pending.sha256,
        "sql_basis": pending.basis,
    }
    if not pending.pending:
        return Result(
            0,
            f"{env}'s database is at {pending.target}: nothing to approve",
            {**data, "approved": False},
        )
    approver = by or ctx.actor
    with Run(ctx, "migrate approve", env, sha=release.sha) as run:
        run.evidence.write_text("migration.sql", pending.sql)
        ctx.ledger.add_approval(
            ApprovalRow(
                env=env,
                run_id=run.id,
                from_revision=pending.start,
                to_revision=pending.target,
                sql_sha256=pending.sha256,
                approved_by=approver,
                note=note,
                approved_at=now_iso(),
            ),
            actor=ctx.actor,
        )
        run.summary = (
            f"approved {env} migration {pending.start} → {pending.target} "
            f"(sql sha256 {pending.sha256[:12]}) by {approver}"
        )
        data.update(
            run_id=run.id, evidence=str(run.evidence.folder), approved=True, by=approver, note=note
        )
    return Result(0, run.summary, data)


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
    provider, release = _live(ctx, env)
    ctx.out.line(f"gonogo migrate {env} apply ({release.label}){' (dry run)' if dry_run else ''}")
    pending = pending_sql(provider.migration_target(env, release))
    overrides = make_overrides(ctx, override, reason)
    report = evaluate_gates(
        ctx,
        "migrate",
        env,
        sha=release.sha,
        confirm=confirm,
        overrides=overrides,
        extra={"pending_sql": pending},
    )
    plan = provider.plan_migrate(env, release)
    data: dict[str, Any] = {
        "command": "migrate apply",
        "env": env,
        "release": release.label,
        "from": pending.start,
        "to": pending.target,
        "sql_sha256": pending.sha256,
        "sql_basis": pending.basis,
        "gates": report.to_dict(),
        "plan": plan.to_dict(),
    }
    if dry_run:
        for line in pending.sql.splitlines():
            ctx.out.line(f"    | {line}")
        return dry_run_result(ctx, plan, report, {**data, "sql": pending.sql})
    with Run(ctx, "migrate apply", env, sha=release.sha, plan=plan, lock=report.go) as run:
        data.update(run_id=run.id, evidence=str(run.evidence.folder))
        if not report.go:
            raise refuse(ctx, run, report)
        record_gates(ctx, run, report)
        run.evidence.write_text("migration.sql", pending.sql)
        start = provider.database_revisions(env)
        applied = run_db_steps(
            ctx, run, provider, plan, env, revision_hashes=pending.revision_hashes()
        )
        after = provider.database_revisions(env)
        data.update(before=start, after=after, applied=applied)
        if sorted(after) != sorted(pending.heads):
            raise DeployFailed(
                f"after applying {', '.join(applied) or 'nothing'}, {env}'s alembic_version is "
                f"{', '.join(after) or 'empty'}, not {pending.target} as planned; check "
                f"`gonogo migrate {env} status`",
                details=data,
            )
        if not applied:
            run.summary = f"{env} database already at {', '.join(after) or 'base'}; nothing to do"
        else:
            run.summary = (
                f"{env} database migrated {', '.join(start) or 'base'} → {', '.join(after)} "
                f"({len(applied)} revision(s), alembic_version checked)"
            )
    return Result(0, run.summary, data)


def lint(ctx: Context, env: str, *, pg_version: str | None = None) -> Result:
    """squawk and gonogo's own checks on each revision pending on env; changes nothing."""
    from gonogo.config.schema import MigrationsLint
    from gonogo.migrations.classify import classify_history
    from gonogo.migrations.history import load_history, pending
    from gonogo.migrations.lint import connection_timeouts, find_squawk, lint_revisions

    provider, release = _live(ctx, env)
    target = provider.migration_target(env, release)
    history = load_history(target.cwd / target.ini)
    todo = pending(history, provider.database_revisions(env))
    dialect = target.database_url.split(":", 1)[0].split("+", 1)[0]
    classes = classify_history(history, dialect=dialect, revisions=todo)
    squawk = find_squawk(ctx.environ) if classes.dialect == "postgresql" else None
    source = None
    if squawk is not None and todo:
        pg_version, source = _pg_version_for_squawk(target, pg_version)
        if pg_version is not None:
            ctx.out.line(f"squawk assumes PostgreSQL {pg_version} ({source})")
    rules = ctx.config.migrations.lint if ctx.config.migrations else MigrationsLint()
    preset = (
        sorted(connection_timeouts(target.database_url, target.environ))
        if classes.dialect == "postgresql"
        else []
    )
    if preset:
        ctx.out.line(f"the connection sets {' and '.join(preset)} for every statement")
    report = lint_revisions(
        classes.revisions,
        dialect=classes.dialect,
        squawk=squawk,
        pg_version=pg_version,
        cwd=target.cwd,
        error_rules=rules.errors,
        ignore_rules=rules.ignore,
        preset_timeouts=preset,
    )
    _print_lint(ctx.out, report)
    data: dict[str, Any] = {
        "command": "migrate lint",
        "env": env,
        "release": release.label,
        "pending": todo,
        **report.to_dict(),
        "pg_version_source": source,
        "connection_timeouts": preset,
        "rules": {"errors": list(rules.errors), "ignore": list(rules.ignore)},
    }
    if not todo:
        return Result(0, f"{env} is at head: nothing pending to lint", data)
    if not report.ok:
        return Result(EXIT_NOGO, f"NO-GO: {report.summary()}", data)
    return Result(0, report.summary(), data)


def _pg_version_for_squawk(
    target: MigrationTarget, given: str | None
) -> tuple[str | None, str | None]:
    """The PostgreSQL version squawk should judge for, and where it came from.

    squawk's advice depends on it (a column default stopped rewriting the table in 11), so
    an explicit --pg-version wins, then the project's own .squawk.toml, then the server.
    """
    import tomllib

    from gonogo.migrations.alembic import server_version

    if given is not None:
        return given, "--pg-version"
    config = target.cwd / ".squawk.toml"
    try:
        if "pg_version" in tomllib.loads(config.read_text(encoding="utf-8")):
            return None, ".squawk.toml"
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass  # no file, or one squawk itself will complain about
    found = server_version(target.database_url)
    return (found, "the server") if found is not None else (None, None)


def lint_alembic(
    out: Output,
    ini: Path | None,
    *,
    directory: Path | None = None,
    dialect: str = "sqlite",
    pg_version: str | None = None,
) -> Result:
    """Every revision of an alembic history, linted; no gonogo.toml needed."""
    from gonogo.migrations.lint import lint_project

    path = ini or _default_ini(directory or Path.cwd())
    report = lint_project(path, dialect=dialect, pg_version=pg_version)
    _print_lint(out, report)
    data = {"command": "migrate lint", "alembic_ini": str(path), **report.to_dict()}
    return Result(0 if report.ok else EXIT_NOGO, report.summary(), data)


def _print_lint(out: Output, report: Any) -> None:
    # The summary line is the Result's message; print it once.
    for line in report.lines():
        if line != report.summary():
            out.line(line)


def classify(
    out: Output, ini: Path | None, *, directory: Path | None = None, dialect: str = "sqlite"
) -> Result:
    """Every revision of an alembic history with its rollback class; no gonogo.toml needed."""
    from gonogo.migrations.classify import classify_project

    path = ini or _default_ini(directory or Path.cwd())
    result = classify_project(path, dialect=dialect)
    for line in result.lines():
        out.line(line)
    heads = len(result.heads)
    counts = ", ".join(f"{n} {k}" for k, n in result.to_dict()["counts"].items() if n)
    message = (
        f"{len(result.revisions)} revision(s) ({counts or 'none'}), "
        f"{heads} head{'s' if heads != 1 else ''}"
    )
    if heads > 1:
        message += f"; merge them: alembic merge -m 'merge heads' {' '.join(result.heads)}"
    return Result(
        0, message, {"command": "migrate classify", "alembic_ini": str(path), **result.to_dict()}
    )


def _default_ini(start: Path) -> Path:
    """[migrations].config of the project's gonogo.toml, else ./alembic.ini."""
    from gonogo.config import find_config, load_config
    from gonogo.errors import ConfigError

    try:
        config_path = find_config(start.resolve())
    except ConfigError:
        return start / "alembic.ini"
    config = load_config(config_path)
    return config_path.parent / config.alembic_ini
