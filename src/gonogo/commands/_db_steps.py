"""Run a plan's database steps one revision at a time, recording each in the ledger.

`migrate apply` (upgrades) and `rollback --db` (downgrades) share this: a failure stops at
the failed revision and the message says where the database is, what was done before it
and what was not.
"""

from __future__ import annotations

from collections.abc import Mapping

from gonogo.context import Context
from gonogo.errors import DeployFailed
from gonogo.executor import Run
from gonogo.ledger.store import MigrationRow, now_iso
from gonogo.plan import Plan
from gonogo.providers.base import Provider


def run_db_steps(
    ctx: Context,
    run: Run,
    provider: Provider,
    plan: Plan,
    env: str,
    *,
    down: bool = False,
    revision_hashes: Mapping[str, str] | None = None,
    note: str = "",
) -> list[str]:
    """Perform each step; return the revisions applied (or undone), in order.

    `revision_hashes` (upgrades): the sha256 of each revision's own SQL, recorded with its
    step so that an environment promoted from this one can tell that exactly that SQL ran
    here, however the revisions were grouped into applies.
    """
    done: list[str] = []
    verb = "undone" if down else "applied"
    for i, step in enumerate(plan.steps, 1):
        # An upgrade step names the revision it applies; a downgrade, the one it undoes.
        revision = step.params["undo"] if down else step.params["revision"]
        ctx.out.line(f"  ▸ {step.description}")
        with run.step(step.action, step.description) as handle:
            detail = provider.perform(step, run)
            handle.detail.update(detail)
            if not detail.get("ok"):
                handle.status = "failed"
        ok = bool(detail.get("ok"))
        before, after = detail.get("before") or [], detail.get("after") or []
        landed = step.params["revision"] if ok else (",".join(after) or None)
        ctx.ledger.record_migration(
            MigrationRow(
                env=env,
                run_id=run.id,
                from_revision=revision if down else (",".join(before) or None),
                to_revision=landed,
                status=("downgraded" if ok else "downgrade-failed")
                if down
                else ("ok" if ok else "failed"),
                applied_at=now_iso(),
                sql_sha256=(revision_hashes or {}).get(revision) if ok and not down else None,
            ),
            actor=ctx.actor,
        )
        if not ok:
            rest = [s.params["undo" if down else "revision"] for s in plan.steps[i:]]
            tail = " | ".join(detail.get("output_tail") or [])
            what = f"downgrade undoing {revision}" if down else f"migration {revision}"
            raise DeployFailed(
                f"{what} failed on {env} (exit {detail.get('exit_code')}): {tail}. "
                f"The database is at {', '.join(after) or 'base'}"
                + (f"; {verb} before it: {', '.join(done)}" if done else "")
                + (f"; not {verb}: {', '.join(rest)}" if rest else "")
                + note
                + f". Log: {run.evidence.folder}/migrate.log",
                details={
                    verb: done,
                    "failed": revision,
                    f"not_{verb}": rest,
                    "database_at": after,
                },
            )
        done.append(revision)
    return done
