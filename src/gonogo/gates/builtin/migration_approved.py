"""migration-approved: the exact SQL about to run was approved for this environment, at the
revision the database is at (playbook §3: migrations only after approval)."""

from __future__ import annotations

from gonogo.gates.model import GateInput, GateResult
from gonogo.migrations.pending import PendingSql


class MigrationApproved:
    id = "migration-approved"
    # An approval is the one thing `migrate apply` never runs without: an override would
    # make it a formality. (Whether upstream ran it first is migration-tested-upstream.)
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
        return GateResult(
            self.id,
            "GO",
            f"{what} approved by {approval.approved_by} at {approval.approved_at}",
            evidence,
        )
