"""rollback-feasible: if this release fails, there is a way back (playbook §5: STOP if
rollback is not feasible)."""

from __future__ import annotations

from gonogo.gates.model import GateInput, GateResult


class RollbackFeasible:
    id = "rollback-feasible"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return True

    def evaluate(self, inp: GateInput) -> GateResult:
        evidence = f"ledger releases and artifacts of {inp.env}"
        good = inp.ledger.last_good_release(inp.env)
        if good is None:
            # Nothing was ever known-good here, so "back" means what was there before: nothing.
            return GateResult(
                self.id,
                "GO",
                f"no release of {inp.env} has passed verification yet: rolling back means "
                f"stopping it (`gonogo down {inp.env}`)",
                evidence,
            )
        artifact = inp.ledger.artifact(good.artifact)
        if artifact is not None and artifact.kind == "tarball":
            path = inp.root / artifact.location
            if not path.is_file():
                return GateResult(
                    self.id,
                    "NO-GO",
                    f"the last good release {good.label} cannot be put back: its artifact "
                    f"{good.artifact[:19]}… is gone from {artifact.location}",
                    evidence,
                    fix=f"restore {artifact.location}, or verify a newer release first",
                )
        return GateResult(
            self.id,
            "GO",
            f"{good.label} ({good.sha[:7]}) passed verification at {good.verified_at}: "
            f"`gonogo rollback {inp.env} --to {good.label}` puts it back",
            evidence,
        )
