"""prod-guard: a protected environment needs its guard variables or a typed confirmation.

This is the playbook's ALLOW_PROD=1 and deploy_guard.sh (ALLOW_PROD_DEPLOY=YES). Nothing
passes it by default, and it cannot be overridden.
"""

from __future__ import annotations

from gonogo.gates.model import GateInput, GateResult


class ProdGuard:
    id = "prod-guard"
    overridable = False

    def applies(self, inp: GateInput) -> bool:
        return True

    def evaluate(self, inp: GateInput) -> GateResult:
        env = inp.config.environments[inp.env]
        if not env.protected:
            return GateResult(
                self.id, "GO", f"{inp.env} is not a protected environment", "gonogo.toml protected"
            )
        target = env.app or inp.env
        if inp.confirm is not None:
            if inp.confirm == target:
                return GateResult(
                    self.id, "GO", f"confirmed by --confirm {target}", "command line --confirm"
                )
            return GateResult(
                self.id,
                "NO-GO",
                f"--confirm {inp.confirm!r} does not match {target!r}",
                "command line --confirm",
            )
        wrong = [
            f"{name}={expected}"
            for name, expected in sorted(env.guard.vars.items())
            if inp.environ.get(name) != expected
        ]
        names = " ".join(f"{k}={v}" for k, v in sorted(env.guard.vars.items()))
        if wrong:
            return GateResult(
                self.id,
                "NO-GO",
                f"{inp.env} is protected: set {' '.join(wrong)} or pass --confirm {target}",
                f"environment variables {', '.join(sorted(env.guard.vars))}",
                fix=f"{names} gonogo {inp.command} {inp.env} (or --confirm {target})",
            )
        return GateResult(
            self.id,
            "GO",
            f"guard variables set ({names})",
            f"environment variables {', '.join(sorted(env.guard.vars))}",
        )
