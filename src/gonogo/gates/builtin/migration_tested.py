"""migration-tested-upstream: the exact SQL about to run on an environment promoted from
another already ran there (playbook §3: "approved and tested on staging")."""

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


class MigrationTestedUpstream:
    id = "migration-tested-upstream"
    # Overridable with a recorded reason, like promoted-from: the way out when the upstream
    # record cannot show it (a ledger from before per-revision hashes, a revision fixed in
    # place after it ran upstream). The approval itself has no override.
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        pending = inp.extra.get("pending_sql")
        upstream = inp.config.environments[inp.env].promote_from
        return isinstance(pending, PendingSql) and pending.pending and upstream is not None

    def evaluate(self, inp: GateInput) -> GateResult:
        pending: PendingSql = inp.extra["pending_sql"]
        upstream = inp.config.environments[inp.env].promote_from
        assert upstream is not None  # applies() said so
        evidence = f"successful migrations on {upstream} in the ledger, sha256 per revision"
        what = f"{pending.start} → {pending.target}"
        untested = untested_revisions(inp.ledger, upstream, pending)
        if untested:
            return GateResult(
                self.id,
                "NO-GO",
                f"migration {what}: {', '.join(untested)} never ran on {upstream} with the "
                "same SQL; it must be tested there first",
                evidence,
                fix=f"deploy this release to {upstream}, then `gonogo migrate {upstream} "
                "apply` (approved there too)",
            )
        return GateResult(
            self.id, "GO", f"every revision of {what} ran on {upstream} with the same SQL", evidence
        )
