"""migration-approved: the exact SQL about to run was approved, and, where the environment
is promoted from another, already applied there (playbook §3: "approved and tested on
staging")."""

from __future__ import annotations

from gonogo.gates.model import GateInput, GateResult
from gonogo.migrations.pending import PendingSql


class MigrationApproved:
    id = "migration-approved"
    overridable = True

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
        if upstream is not None and inp.ledger.applied_sql(upstream, pending.sha256) is None:
            return GateResult(
                self.id,
                "NO-GO",
                f"migration {what} was approved but never applied on {upstream}; it must be "
                f"tested there first",
                evidence,
                fix=f"gonogo migrate {upstream} apply",
            )
        tested = f", applied on {upstream} first" if upstream else ""
        return GateResult(
            self.id,
            "GO",
            f"{what} approved by {approval.approved_by} at {approval.approved_at}{tested}",
            evidence,
        )
