"""gonogo unlock ENV --reason: clear an environment lock, recording who and why."""

from __future__ import annotations

from gonogo.context import Context
from gonogo.errors import GonogoError, NoGo
from gonogo.result import Result


def unlock(ctx: Context, env: str, *, reason: str, force: bool = False) -> Result:
    ctx.env(env)
    if not reason.strip():
        raise GonogoError("--reason must say why the lock is being cleared")
    held = ctx.ledger.lock_holder(env)
    if held is None:
        return Result(0, f"{env} is not locked", {"command": "unlock", "env": env, "cleared": None})
    # Dead pid on this host, or no heartbeat from another host for the stale threshold.
    stale = ctx.ledger.lock_staleness(held, ctx.host)
    if stale is None and not force:
        where = (
            f"on {held.host}, heartbeat {held.heartbeat_at}"
            if held.host != ctx.host
            else "still running"
        )
        raise NoGo(
            f"{env} is locked by run {held.run_id} ({held.command}, pid {held.pid}, "
            f"{where}); wait for it, or add --force if you are sure it is dead"
        )
    ctx.ledger.force_unlock(env, actor=ctx.actor, reason=reason)
    msg = (
        f"{env} unlocked (was held by run {held.run_id}, {held.command} by {held.holder}, "
        f"pid {held.pid} since {held.acquired_at}); recorded: {ctx.actor}: {reason}"
    )
    return Result(
        0,
        msg,
        {
            "command": "unlock",
            "env": env,
            "cleared": held.__dict__,
            "reason": reason,
            "by": ctx.actor,
        },
    )
