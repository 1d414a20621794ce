"""promoted-from: production only gets an artifact already verified upstream.

For `publish` the artifact must also be an image: production publishes the image digest
the upstream environment verified, never one built for the occasion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gonogo.gates.model import GateInput, GateResult

if TYPE_CHECKING:
    from gonogo.ledger.store import ReleaseRow


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
        if inp.command == "publish":
            return self._publish(inp, upstream, inp.sha)
        rel = inp.ledger.verified_release_of(upstream, inp.sha)
        if rel is None:
            return self._unverified(inp.sha, upstream, evidence, "")
        return GateResult(
            self.id,
            "GO",
            f"{inp.sha[:7]} verified on {upstream} {rel.label} at {rel.verified_at} "
            f"(artifact {rel.artifact[:19]})",
            evidence,
        )

    def _unverified(self, sha: str, upstream: str, evidence: str, why: str) -> GateResult:
        return GateResult(
            self.id,
            "NO-GO",
            f"{sha[:7]} has not been verified on {upstream}{why}; "
            f"run `gonogo deploy {upstream}` and let it verify first",
            evidence,
            fix=f"gonogo deploy {upstream} --sha {sha[:12]}",
        )

    def _publish(self, inp: GateInput, upstream: str, sha: str) -> GateResult:
        from gonogo.images.publish import verified_image

        evidence = f"ledger releases of {upstream} and image.built events"
        rel, event = verified_image(inp.ledger, upstream, sha)
        if rel is None:
            why = f" ({inp.env} publishes only the image verified there)"
            return self._unverified(sha, upstream, evidence, why)
        if event is None:
            return GateResult(
                self.id,
                "NO-GO",
                _not_an_image(rel, upstream, inp.env),
                evidence,
                fix=f"deploy {sha[:12]} to {upstream} with a provider that releases images "
                "(heroku) and let it verify",
            )
        return GateResult(
            self.id,
            "GO",
            f"{sha[:7]} verified on {upstream} {rel.label} at {rel.verified_at}: {inp.env} "
            f"publishes that image, {rel.artifact[:19]}",
            evidence,
        )


def _not_an_image(rel: ReleaseRow, upstream: str, env: str) -> str:
    return (
        f"{rel.sha[:7]} was verified on {upstream} {rel.label} as artifact "
        f"{rel.artifact[:19]}, which is not an image built here (a local-provider release is "
        f"a source tarball), so there is no verified image for {env} to publish"
    )
