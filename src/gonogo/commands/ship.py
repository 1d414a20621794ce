"""gonogo ship ENV: test → build → deploy → verify as one run with one evidence folder.

The playbook's `ship-autorisen-log` (§6.4) as a recorded run: the configured test command
runs first, at the checked-out commit; a failure stops the ship before anything is built
(exit 2). Then the deploy gates (ci-passed is answered by this run's own test step), the
artifact build, the release and its verification, with deploy's automatic rollback. The
evidence folder holds a timestamped log of everything, `run.json`, the test output, the
probe transcripts, the gate verdicts and the pending migration SQL, if any. When the change
set is linked to a work order it lives in `docs/evidence/<WO-ID>/<run-id>/`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gonogo import gitrepo
from gonogo.commands._common import (
    command_input,
    database_state,
    gate_input,
    make_overrides,
    print_gates,
    record_gates,
    refuse,
)
from gonogo.commands.deploy import plan_deploy, release_and_verify
from gonogo.context import Context
from gonogo.errors import GonogoError, NoGo
from gonogo.executor import Run
from gonogo.gates import engine
from gonogo.output import short
from gonogo.plan import Step
from gonogo.result import Result

TEST_TIMEOUT_S = 1800.0
CI_GATE = "ci-passed"


def work_order_folder(ctx: Context, env: str, sha: str) -> tuple[str | None, Path | None]:
    """The first work-order id the change set names, and its evidence folder."""
    from gonogo.config.schema import WorkOrder
    from gonogo.gates.builtin.in_scope import work_orders

    inp = gate_input(ctx, env, "ship", sha=sha)
    if ctx.config.project.work_order is None:
        # Ship files evidence by work order even when the in-scope gate is not configured.
        project = ctx.config.project.model_copy(update={"work_order": WorkOrder()})
        inp = replace(inp, config=ctx.config.model_copy(update={"project": project}))
    try:
        ids, _ = work_orders(inp)
    except Exception:  # no branch, no history: ship still runs, filed by run id
        ids = []
    if not ids:
        return None, None
    wo = ids[0]
    return wo, ctx.root / "docs" / "evidence" / wo


def _test_step(ctx: Context, run: Run, command: str) -> None:
    """Run the test command; its output goes to the evidence (test.log) and the log."""
    ctx.out.line(f"  ▸ test: {command}")
    with run.step("test", f"test: {command}") as handle:
        started = time.perf_counter()
        try:
            # The project's own configured command line, as its shell would run it.
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=ctx.root,
                env=dict(ctx.environ),
                capture_output=True,
                text=True,
                timeout=TEST_TIMEOUT_S,
                check=False,
            )
            code: int | None = proc.returncode
            output = (proc.stdout or "") + (proc.stderr or "")
        except subprocess.TimeoutExpired as exc:
            code = None
            partial = [
                x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
                for x in (exc.stdout, exc.stderr)
            ]
            output = "".join(partial) + f"\n(timed out after {TEST_TIMEOUT_S}s)"
        run.evidence.write_text("test.log", f"$ {command}\n{output}")
        run.log(f"$ {command} (exit {code})\n{output.rstrip()}")
        seconds = round(time.perf_counter() - started, 2)
        handle.detail.update(command=command, exit_code=code, seconds=seconds)
        if code != 0:
            tail = [ln for ln in output.splitlines() if ln.strip()][-3:]
            handle.detail["error"] = f"exit {code}: " + " | ".join(tail)
            handle.status = "failed"
    if code != 0:
        raise NoGo(
            f"ship stopped: the tests failed ({'timed out' if code is None else f'exit {code}'}"
            f"); nothing was built or deployed. Output: {run.evidence.folder}/test.log",
            details={"test_exit_code": code},
        )


def _pending_sql(ctx: Context, run: Run, env: str, version: int) -> dict[str, Any] | None:
    """The migration SQL the new release brings, for the evidence; never applied here."""
    if ctx.config.migrations is None:
        return None
    from gonogo.migrations.pending import pending_sql
    from gonogo.providers.registry import provider_for

    release = ctx.ledger.release(env, version)
    if release is None:
        return None
    try:
        pending = pending_sql(provider_for(ctx, env).migration_target(env, release))
    except GonogoError as exc:
        return {"error": exc.message}
    if not pending.pending:
        return None
    run.evidence.write_text("migration.sql", pending.sql)
    ctx.out.line(
        f"  ! migrations pending {pending.start} → {pending.target}: not applied by ship; "
        f"`gonogo migrate {env} plan`, approve, apply"
    )
    return {"from": pending.start, "to": pending.target, "sql_sha256": pending.sha256}


def ship(
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
    if ctx.config.test is None:
        raise GonogoError(
            f"ship runs the tests first, but {ctx.config_path.name} has no [test] command; "
            'add [test] command = "..."'
        )
    gitrepo.require_repo(ctx.root)
    from gonogo.providers.registry import provider_for

    provider_for(ctx, env).preflight(env)  # before the tests run: they may take a while
    sha = gitrepo.resolve(ctx.root, "HEAD")
    ctx.out.line(f"gonogo ship {env} {short(sha)}{' (dry run)' if dry_run else ''}")
    overrides = make_overrides(ctx, override, reason)
    inp = command_input(
        ctx, "deploy", env, sha=sha, confirm=confirm, extra=database_state(ctx, env)
    )
    gates = engine.select(ctx.config, env, "deploy")
    # ci-passed is answered after this run's own test step, so it is judged then.
    ci = [g for g in gates if g.id == CI_GATE]
    before = [g for g in gates if g.id != CI_GATE]
    report = engine.evaluate(before, inp, {k: v for k, v in overrides.items() if k != CI_GATE})
    print_gates(ctx.out, report)
    test = Step("test", f"test: {ctx.config.test.command}", {"command": ctx.config.test.command})
    dp = plan_deploy(ctx, env, sha, lead=(test,))
    wo, folder = work_order_folder(ctx, env, sha)
    data: dict[str, Any] = {
        "command": "ship",
        "env": env,
        "sha": sha,
        "work_order": wo,
        "release": f"v{dp.version}",
        "gates": report.to_dict(),
        "plan": dp.plan.to_dict(),
    }
    if dry_run:
        from gonogo.commands._common import dry_run_result

        return dry_run_result(ctx, dp.plan, report, data)
    with Run(ctx, "ship", env, sha=sha, plan=dp.plan, lock=report.go, evidence_dir=folder) as run:
        data.update(run_id=run.id, evidence=str(run.evidence.folder))
        if not report.go:
            raise refuse(ctx, run, report)
        _test_step(ctx, run, ctx.config.test.command)
        if ci:
            ci_report = engine.evaluate(
                ci, inp, {k: v for k, v in overrides.items() if k == CI_GATE}
            )
            print_gates(ctx.out, ci_report)
            report = engine.GateReport((*report.results, *ci_report.results))
            data["gates"] = report.to_dict()
            if not report.go:
                raise refuse(ctx, run, report)
        record_gates(ctx, run, report)
        summary = release_and_verify(ctx, run, dp, data, dp.plan.steps[1:])
        data["migrations"] = _pending_sql(ctx, run, env, dp.version)
        run.summary = "shipped: " + summary
    return Result(0, run.summary + f". Evidence: {run.evidence.folder}", data)
