"""migration-approved: the exact SQL about to run was approved, and, where the environment
is promoted from another, already applied there (playbook §3: "approved and tested on
staging")."""

from __future__ import annotations

from gonogo.gates.model import GateInput, GateResult
from gonogo.ledger.store import Ledger
from gonogo.migrations.pending import PendingSql


def untested_revisions(ledger: Ledger, upstream: str, pending: PendingSql) -> list[str]:
    """Pending revisions whose exact SQL never ran successfully on `upstream`.

    Judged per revision: production usually trails staging by several applies, so the SQL
    of its whole pending span was never one apply there, but each of its revisions was.
    """
    if ledger.applied_sql(upstream, pending.sha256) is not None:
        return []  # the same span, recorded as one apply by an earlier gonogo
    done = ledger.applied_revisions(upstream)
    hashes = pending.revision_hashes()
    if not hashes:
        return [pending.target]  # SQL gonogo cannot split: only the same span would do
    return [rev for rev, digest in hashes.items() if (rev, digest) not in done]


class MigrationApproved:
    id = "migration-approved"
    # DESIGN: `migrate apply` refuses without the approval and the upstream apply; an
    # override would turn both into a formality, so there is none.
    overridable = False

    def applies(self, inp: GateInput) -> bool:
        # The command that knows what would run hands it over; nothing to judge otherwise.
        return "pending_sql" in inp.extra or "pending_sql_error" in inp.extra

    def evaluate(self, inp: GateInput) -> GateResult:
        if "pending_sql_error" in inp.extra:
            return GateResult(
                self.id,
                "NO-GO",
                f"cannot tell what would run: {inp.extra['pending_sql_error']}",
                "alembic",
            )
        pending: PendingSql = inp.extra["pending_sql"]
        evidence = f"alembic_version of {inp.env}, repository heads, approvals in the ledger"
        if not pending.pending:
            return GateResult(
                self.id,
                "GO",
                f"{inp.env}'s database is at {pending.target}: nothing pending",
                evidence,
            )
        what = f"{pending.start} → {pending.target} (sql sha256 {pending.sha256[:12]})"
        approval = inp.ledger.approval_for(inp.env, pending.start, pending.target, pending.sha256)
        if approval is None:
            return GateResult(
                self.id,
                "NO-GO",
                f"pending migration {what} has no approval",
                evidence,
                fix=f"review `gonogo migrate {inp.env} apply --dry-run`, then "
                f"`gonogo migrate {inp.env} approve --note '...'`",
            )
        upstream = inp.config.environments[inp.env].promote_from
        untested = untested_revisions(inp.ledger, upstream, pending) if upstream else []
        if upstream is not None and untested:
            return GateResult(
                self.id,
                "NO-GO",
                f"migration {what} was approved, but {', '.join(untested)} never ran on "
                f"{upstream} with the same SQL; it must be tested there first",
                evidence,
                fix=f"deploy this release to {upstream}, then `gonogo migrate {upstream} "
                "apply` (approved there too)",
            )
        tested = f", applied on {upstream} first" if upstream else ""
        return GateResult(
            self.id,
            "GO",
            f"{what} approved by {approval.approved_by} at {approval.approved_at}{tested}",
            evidence,
        )
