"""no-blockers: no open P0/P1 issue stands in the way of the release (playbook §5).

Sources: GitHub issues carrying any configured label (`gates.no-blockers.labels`, P0 and
P1 by default), and/or a configured command ({sha} and {env} filled in; exit 0 = nothing
blocks). When both are configured both must be GO.

Which change set an issue "affects" cannot be told reliably from an issue (a mention of the
work order proves it does; no mention proves nothing), so for safety every open issue with
a blocker label blocks every release. An issue that does not block belongs without the
label, or closed; a person who disagrees can `--override no-blockers --reason "..."`.

Evidence that cannot be read (no token, API down, malformed response) is NO-GO.
"""

from __future__ import annotations

import httpx

from gonogo.config.schema import NoBlockers as NoBlockersConfig
from gonogo.gates.builtin.command_gate import describe, run_gate_command, substitute
from gonogo.gates.model import Finding, GateInput, GateResult
from gonogo.github import GitHub, Issue
from gonogo.retry import RemoteError

GATE_ID = "no-blockers"


def _issue_line(issue: Issue) -> str:
    labels = f" [{', '.join(issue.labels)}]" if issue.labels else ""
    return f"#{issue.number} {issue.title}{labels}"


def judge_issues(repo: str, labels: list[str], issues: list[Issue]) -> GateResult:
    """The verdict for the open blocker issues found (pure, no I/O)."""
    wanted = " or ".join(labels)
    evidence = f"GitHub open issues in {repo} labelled {wanted}"
    if not issues:
        return GateResult(GATE_ID, "GO", f"no open issues labelled {wanted} in {repo}", evidence)
    shown = "; ".join(_issue_line(i) for i in issues[:5])
    more = f" and {len(issues) - 5} more" if len(issues) > 5 else ""
    return GateResult(
        GATE_ID,
        "NO-GO",
        f"{len(issues)} open blocker issue(s): {shown}{more} "
        f"(any open issue labelled {wanted} blocks every release)",
        evidence,
        tuple(Finding(i.html_url, None, _issue_line(i)) for i in issues),
        fix="close or relabel the blocker issues once resolved, or "
        '`--override no-blockers --reason "..."`',
    )


def _github(inp: GateInput, cfg: NoBlockersConfig) -> GateResult:
    source = cfg.github
    assert source is not None
    evidence = f"GitHub open issues in {source.repo} labelled {' or '.join(cfg.labels)}"
    token = inp.environ.get(source.token_env)
    if not token:
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"cannot read GitHub issues: token {source.token_env} not set",
            evidence,
            fix=f"export {source.token_env}=<a token that can read {source.repo}'s issues>",
        )
    try:
        with GitHub(source.api_url, token, source.timeout) as gh:
            issues = gh.open_issues(source.repo, cfg.labels)
    except RemoteError as exc:
        return GateResult(GATE_ID, "NO-GO", f"cannot read GitHub issues: {exc.message}", evidence)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"cannot read GitHub issues: {type(exc).__name__}: {exc}",
            evidence,
        )
    return judge_issues(source.repo, cfg.labels, issues)


def _command(inp: GateInput, cfg: NoBlockersConfig) -> GateResult:
    assert cfg.command is not None
    command = substitute(cfg.command, sha=inp.sha, env=inp.env)
    evidence = f"command `{command}`"
    try:
        run = run_gate_command(command, cwd=inp.root, env=inp.environ, timeout=cfg.timeout)
    except OSError as exc:
        return GateResult(
            GATE_ID, "NO-GO", f"could not run `{command}`: {exc.strerror or exc}", evidence
        )
    if run.exit_code == 0:
        return GateResult(GATE_ID, "GO", f"`{command}` reports no blockers", evidence)
    return GateResult(GATE_ID, "NO-GO", describe(command, run, cfg.timeout), evidence)


class NoBlockers:
    id = GATE_ID
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return inp.config.gates.no_blockers is not None

    def evaluate(self, inp: GateInput) -> GateResult:
        cfg = inp.config.gates.no_blockers
        assert cfg is not None
        # The engine redacts every result, the GitHub token included.
        return self._evaluate(inp, cfg)

    def _evaluate(self, inp: GateInput, cfg: NoBlockersConfig) -> GateResult:
        results: list[GateResult] = []
        if cfg.github is not None:
            results.append(_github(inp, cfg))
        if cfg.command:
            results.append(_command(inp, cfg))
        if not results:
            return GateResult(
                self.id,
                "NO-GO",
                "no source to read blockers from",
                "gonogo.toml gates.no-blockers",
                fix="set gates.no-blockers.github (repo = 'owner/name') or "
                "gates.no-blockers.command",
            )
        if len(results) == 1:
            return results[0]
        refusals = [r for r in results if not r.go]
        chosen = refusals or results
        return GateResult(
            self.id,
            "NO-GO" if refusals else "GO",
            "; ".join(r.reason for r in chosen),
            " + ".join(r.evidence for r in results),
            tuple(f for r in results for f in r.findings),
            fix=next((r.fix for r in refusals if r.fix), ""),
        )
