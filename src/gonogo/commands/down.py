"""gonogo down ENV: stop the environment's running release (it stays the live release)."""

from __future__ import annotations

from gonogo.context import Context
from gonogo.executor import Run
from gonogo.providers.registry import provider_for
from gonogo.result import Result


def down(ctx: Context, env: str) -> Result:
    ctx.env(env)
    provider = provider_for(ctx, env)
    live = ctx.ledger.live_release(env)
    with Run(ctx, "down", env, lock=True) as run:
        with run.step("stop", f"stop {env}") as handle:
            outcome = provider.stop(env)
            handle.detail["result"] = outcome
        label = live.label if live else "nothing"
        run.summary = (
            f"{env}: {label} stopped" if outcome != "not running" else f"{env}: nothing was running"
        )
    return Result(
        0, run.summary, {"command": "down", "env": env, "result": outcome, "run_id": run.id}
    )
