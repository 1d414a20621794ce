"""What became of runs: a run the ledger still calls `running` whose process is gone crashed.

`status`, `history` and `migrate status` use this so that a migration that stopped half way
(failed, interrupted, or killed with no chance to record it) is shown, never silent.
"""

from __future__ import annotations

from typing import Any

from gonogo.context import Context
from gonogo.ledger.store import RunRow
from gonogo.procs import pid_alive

# Runs that change the database.
DB_COMMANDS = ("migrate apply", "rollback")


def crashed(ctx: Context, run: RunRow) -> bool:
    """Recorded as running, but its process on this host is gone (killed, machine crash)."""
    return run.status == "running" and run.host == ctx.host and not pid_alive(run.pid)


def shown_status(ctx: Context, run: RunRow) -> str:
    return "crashed" if crashed(ctx, run) else run.status


def migration_problem(ctx: Context, env: str) -> dict[str, Any] | None:
    """The newest database-changing run of env, when it did not finish cleanly."""
    for run in ctx.ledger.runs(env, limit=50):
        if run.command not in DB_COMMANDS:
            continue
        steps = ctx.ledger.steps(run.id)
        db_steps = [s for s in steps if s["name"] in ("migrate", "downgrade")]
        if run.command == "rollback" and not db_steps:
            continue  # an app-only rollback: not about the database
        status = shown_status(ctx, run)
        if status in ("succeeded", "refused", "running"):
            return None
        done = [s for s in db_steps if s["status"] == "ok"]
        stuck = next((s for s in db_steps if s["status"] != "ok"), None)
        what = (
            "crashed (its process is gone)"
            if status == "crashed"
            else {"interrupted": "was interrupted"}.get(status, status)
        )
        where = f" during: {stuck['description']}" if stuck else ""
        return {
            "run_id": run.id,
            "command": run.command,
            "status": status,
            "steps_done": len(done),
            "failed_step": stuck["description"] if stuck else None,
            "message": f"{run.command} run {run.id} {what}{where}; "
            f"{len(done)} database step(s) completed before it",
        }
    return None
