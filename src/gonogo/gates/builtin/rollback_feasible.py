"""rollback-feasible: if this release fails, there is a way back (playbook §5: STOP if
rollback is not feasible; §8: rollback is not enough after a non-reversible schema change).

Two halves: a known-good release to go back to, and no pending migration in the release
that cannot be undone, unless the remediation is documented (an --override whose reason
says how to recover, recorded in the ledger).
"""

from __future__ import annotations

from pathlib import Path

from gonogo.gates.builtin.migrations_explicit import tree_at
from gonogo.gates.model import Finding, GateInput, GateResult


class RollbackFeasible:
    id = "rollback-feasible"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return True

    def evaluate(self, inp: GateInput) -> GateResult:
        migrations = self._irreversible_pending(inp)
        if migrations is not None:
            return migrations
        return self._release_history(inp)

    def _irreversible_pending(self, inp: GateInput) -> GateResult | None:
        """NO-GO when a migration this release brings cannot be undone; None otherwise."""
        config = inp.config.migrations
        if config is None or inp.sha is None:
            return None
        evidence = f"alembic history at {inp.sha[:7]} against {inp.env}'s alembic_version"
        if "db_revisions_error" in inp.extra:
            return GateResult(
                self.id,
                "NO-GO",
                f"cannot read {inp.env}'s migration revision: {inp.extra['db_revisions_error']}",
                evidence,
            )
        if "db_revisions" not in inp.extra:
            return None
        from gonogo.migrations.classify import classify_history
        from gonogo.migrations.history import load_history, pending

        with tree_at(inp.root, inp.sha) as tree:
            ini = tree / config.config
            if not ini.is_file():
                return None
            history = load_history(ini)
            todo = pending(history, list(inp.extra["db_revisions"]))
            if not todo:
                return None
            classes = classify_history(history, revisions=todo).revisions
            bad = [c for c in classes if c.klass == "irreversible"]
            findings = tuple(
                Finding(_relative(c.path, tree), None, f"{c.revision} irreversible: {c.reason}")
                for c in bad
            )
        if not bad:
            return None
        first = bad[0]
        return GateResult(
            self.id,
            "NO-GO",
            f"pending migration {first.revision} cannot be undone ({first.reason}); rolling "
            f"back would leave {inp.env}'s schema ahead of the old release",
            evidence,
            findings,
            fix="write a real downgrade, or document how to recover: "
            "--override rollback-feasible --reason '<remediation>'",
        )

    def _release_history(self, inp: GateInput) -> GateResult:
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


def _relative(path: object, tree: Path) -> str:
    try:
        return Path(str(path)).resolve().relative_to(tree.resolve()).as_posix()
    except ValueError:
        return str(path)
