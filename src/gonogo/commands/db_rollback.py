"""`gonogo rollback ENV --db REVISION`: an explicit, classified database downgrade.

The downgrade runs with the live release's migrations (the only code that knows the
revisions being undone), one revision per step so a failure stops at a known revision.
Every revision to undo is classified first; `lossy` and `irreversible` ones are refused
unless the person passes `--accept-data-loss --reason`, which is recorded as an override of
the `data-loss` check, next to the gate overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gonogo.commands._db_steps import run_db_steps
from gonogo.context import Context
from gonogo.errors import DeployFailed, GonogoError
from gonogo.executor import Run
from gonogo.gates.model import GateResult, Override
from gonogo.ledger.store import ReleaseRow, now_iso
from gonogo.migrations.classify import RevisionClass
from gonogo.plan import Plan
from gonogo.providers.base import Provider

DATA_LOSS = "data-loss"


@dataclass(frozen=True)
class DbRollback:
    env: str
    release: ReleaseRow  # whose migrations run the downgrades
    current: list[str]
    target: str  # a revision, or "base"
    undo: list[RevisionClass]  # newest first
    expected_head: list[str]  # what the live release's code expects

    @property
    def steps(self) -> list[tuple[str, str]]:
        """(revision to undo, the revision `alembic downgrade` lands on)."""
        return [(c.revision, _down_target(c)) for c in self.undo]

    @property
    def risky(self) -> list[RevisionClass]:
        return [c for c in self.undo if c.klass != "reversible"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.current,
            "to": self.target,
            "with_release": self.release.label,
            "undo": [c.to_dict() for c in self.undo],
            "risky": [c.revision for c in self.risky],
        }


def _down_target(c: RevisionClass) -> str:
    down = c.down_revision
    if isinstance(down, tuple):  # to_undo refuses merges; a tuple here is a bug upstream
        raise GonogoError(f"{c.revision} is a merge revision; downgrade it with alembic directly")
    return down or "base"


def plan_db_rollback(
    ctx: Context, provider: Provider, env: str, live: ReleaseRow | None, revision: str
) -> DbRollback:
    from gonogo.migrations.classify import classify_history
    from gonogo.migrations.history import load_history, to_undo

    if ctx.config.migrations is None:
        raise GonogoError(
            f"--db {revision}: {ctx.config_path.name} has no [migrations] section; gonogo "
            "does not know how to downgrade this project's database"
        )
    if live is None:
        raise GonogoError(
            f"--db {revision}: {env} has no live release whose migrations could run the downgrade"
        )
    target = provider.migration_target(env, live)
    history = load_history(target.cwd / target.ini)
    current = sorted(provider.database_revisions(env))
    if revision != "base" and revision not in history:
        raise GonogoError(
            f"--db {revision}: no such revision in {live.label}'s migration history "
            f"(database at {', '.join(current) or 'base'})"
        )
    undo = to_undo(history, current, revision)
    if not undo:
        raise GonogoError(f"--db {revision}: {env}'s database is already at {revision}")
    dialect = target.database_url.split(":", 1)[0].split("+", 1)[0]
    by_id = {
        c.revision: c for c in classify_history(history, dialect=dialect, revisions=undo).revisions
    }
    return DbRollback(
        env=env,
        release=live,
        current=current,
        target=revision,
        undo=[by_id[r] for r in undo],
        expected_head=sorted(history.heads),
    )


def show(ctx: Context, dbr: DbRollback) -> None:
    ctx.out.line(
        f"  database: {', '.join(dbr.current) or 'base'} → {dbr.target}, undoing "
        f"{len(dbr.undo)} revision(s) with {dbr.release.label}'s migrations:"
    )
    for c in dbr.undo:
        ctx.out.line(f"    {c.revision:<28} {c.klass.upper():<12} {c.reason}")


def data_loss_check(ctx: Context, dbr: DbRollback, accept: bool, reason: str | None) -> GateResult:
    """GO for reversible revisions; otherwise NO-GO unless accepted with a reason."""
    evidence = f"rollback class of each revision from {', '.join(dbr.current)} down to {dbr.target}"
    if not dbr.risky:
        return GateResult(
            DATA_LOSS, "GO", f"every revision to undo is reversible ({len(dbr.undo)})", evidence
        )
    first = dbr.risky[0]
    names = ", ".join(f"{c.revision} ({c.klass})" for c in dbr.risky)
    result = GateResult(
        DATA_LOSS,
        "NO-GO",
        f"undoing {names} destroys data or cannot restore the schema: {first.reason}",
        evidence,
        fix=f"gonogo rollback {dbr.env} --db {dbr.target} --accept-data-loss "
        "--reason '<why losing it is acceptable>'",
    )
    if not accept:
        return result
    if not reason or not reason.strip():
        raise GonogoError("--accept-data-loss needs --reason '<why losing it is acceptable>'")
    return GateResult(
        result.id,
        result.verdict,
        result.reason,
        result.evidence,
        fix=result.fix,
        override=Override(DATA_LOSS, reason.strip(), ctx.actor, now_iso()),
    )


def perform(ctx: Context, run: Run, provider: Provider, dbr: DbRollback, plan: Plan) -> list[str]:
    """Run the downgrade steps, recording each; stop at the first that fails."""
    undone = run_db_steps(
        ctx, run, provider, plan, dbr.env, down=True, note="; the app was not touched"
    )
    after = sorted(provider.database_revisions(dbr.env))
    wanted = [] if dbr.target == "base" else [dbr.target]
    if after != wanted:
        raise DeployFailed(
            f"after undoing {', '.join(undone)}, {dbr.env}'s alembic_version is "
            f"{', '.join(after) or 'empty'}, not {dbr.target}; check `gonogo migrate {dbr.env} "
            "status`"
        )
    return undone
