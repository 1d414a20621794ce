"""in-scope: the change set is linked to a work order (playbook §3, first precondition).

The id is looked for in the branch name, the commits since the environment's live release,
and the pull request (GitHub Actions' event payload), as configured.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gonogo import gitrepo
from gonogo.gates.builtin.branch_allowed import current_branch
from gonogo.gates.model import GateInput, GateResult


def _pull_request_text(inp: GateInput) -> str | None:
    path = inp.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return inp.environ.get("GONOGO_PR_TITLE")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pr = event.get("pull_request") if isinstance(event, dict) else None
    if not isinstance(pr, dict):
        return None
    head = pr.get("head")
    ref = head.get("ref") if isinstance(head, dict) else None
    return " ".join(str(x) for x in (pr.get("title"), pr.get("body"), ref) if x)


def work_orders(inp: GateInput) -> tuple[list[str], list[str]]:
    """The work-order ids found, and where the gate looked."""
    config = inp.config.project.work_order
    assert config is not None
    pattern = re.compile(config.pattern)
    found: list[str] = []
    looked: list[str] = []
    if "branch" in config.sources:
        branch, _ = current_branch(inp)
        looked.append(f"branch {branch or '(detached)'}")
        found += pattern.findall(branch or "")
    if "commit" in config.sources and inp.sha:
        live = inp.ledger.live_release(inp.env)
        messages = gitrepo.commit_messages(inp.root, live.sha if live else None, inp.sha)
        since = f"since {live.label} ({live.sha[:7]})" if live else "in the history"
        looked.append(f"{len(messages)} commit(s) {since}")
        for message in messages:
            found += pattern.findall(message)
    if "pr" in config.sources:
        text = _pull_request_text(inp)
        looked.append("the pull request" if text is not None else "no pull request")
        found += pattern.findall(text or "")
    return list(dict.fromkeys(str(f) for f in found)), looked


class InScope:
    id = "in-scope"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return inp.config.project.work_order is not None

    def evaluate(self, inp: GateInput) -> GateResult:
        config = inp.config.project.work_order
        assert config is not None
        ids, looked = work_orders(inp)
        evidence = "; ".join(looked)
        if ids:
            return GateResult(self.id, "GO", f"linked to {', '.join(ids)}", evidence)
        return GateResult(
            self.id,
            "NO-GO",
            f"no work-order id matching {config.pattern} in {evidence}",
            evidence,
            fix="name the work order in the branch or a commit message, e.g. "
            "`git commit --allow-empty -m 'WO-123: ...'`",
        )
