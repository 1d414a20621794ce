"""branch-allowed: an environment only takes releases from its configured branches."""

from __future__ import annotations

import fnmatch

from gonogo import gitrepo
from gonogo.gates.model import GateInput, GateResult

# In CI the checkout is often a detached HEAD; the CI names the branch in its environment.
_CI_BRANCH_VARS = ("GONOGO_BRANCH", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")


def current_branch(inp: GateInput) -> tuple[str | None, str]:
    for var in _CI_BRANCH_VARS:
        value = inp.environ.get(var)
        if value:
            return value, f"${var}"
    return gitrepo.branch(inp.root), "git symbolic-ref HEAD"


class BranchAllowed:
    id = "branch-allowed"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return bool(inp.config.environments[inp.env].branches)

    def evaluate(self, inp: GateInput) -> GateResult:
        allowed = inp.config.environments[inp.env].branches
        branch, source = current_branch(inp)
        listed = ", ".join(allowed)
        if branch is None:
            return GateResult(
                self.id,
                "NO-GO",
                f"cannot tell which branch this is (detached HEAD); {inp.env} takes {listed}",
                source,
                fix="git switch <branch>, or set GONOGO_BRANCH in CI",
            )
        if any(fnmatch.fnmatchcase(branch, pattern) for pattern in allowed):
            return GateResult(self.id, "GO", f"branch {branch} may release to {inp.env}", source)
        return GateResult(
            self.id,
            "NO-GO",
            f"branch {branch} may not release to {inp.env} (allowed: {listed})",
            source,
            fix=f"merge into {allowed[0]} and release from there",
        )
