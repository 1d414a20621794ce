"""clean-tree: what is released is what is committed."""

from __future__ import annotations

from gonogo import gitrepo
from gonogo.gates.model import Finding, GateInput, GateResult


class CleanTree:
    id = "clean-tree"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return True

    def evaluate(self, inp: GateInput) -> GateResult:
        dirty = gitrepo.dirty_files(inp.root)
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            return GateResult(
                self.id,
                "NO-GO",
                f"uncommitted changes to tracked files ({shown}); commit or stash them",
                "git status --porcelain",
                tuple(Finding(f, None, "modified, not committed") for f in dirty),
                fix="git commit -am '...'  (or git stash)",
            )
        return GateResult(
            self.id, "GO", "no uncommitted changes to tracked files", "git status --porcelain"
        )
