"""promoted-from: production only gets an artifact already verified upstream."""

from __future__ import annotations

from gonogo.gates.model import GateInput, GateResult


class PromotedFrom:
    id = "promoted-from"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return inp.config.environments[inp.env].promote_from is not None

    def evaluate(self, inp: GateInput) -> GateResult:
        upstream = inp.config.environments[inp.env].promote_from
        assert upstream is not None
        evidence = f"ledger releases of {upstream}"
        if inp.sha is None:
            return GateResult(self.id, "NO-GO", "no commit to check", evidence)
        rel = inp.ledger.verified_release_of(upstream, inp.sha)
        if rel is None:
            return GateResult(
                self.id,
                "NO-GO",
                f"{inp.sha[:7]} has not been verified on {upstream}; "
                f"run `gonogo deploy {upstream}` and let it verify first",
                evidence,
                fix=f"gonogo deploy {upstream} --sha {inp.sha[:12]}",
            )
        return GateResult(
            self.id,
            "GO",
            f"{inp.sha[:7]} verified on {upstream} {rel.label} at {rel.verified_at} "
            f"(artifact {rel.artifact[:19]})",
            evidence,
        )
