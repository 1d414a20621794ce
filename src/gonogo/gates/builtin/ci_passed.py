"""ci-passed: CI succeeded for the exact SHA being released (playbook §3).

Sources are asked in the configured order (`gates.ci-passed.sources`):

- `github`: the check runs and the combined commit status of the SHA. GO when every check
  run completed as success/neutral/skipped, every status is success, and every `required`
  name is among them. A commit with no check runs and no statuses has no result here.
- `ledger`: the `test` step of the latest `gonogo ship` run recorded for the SHA.
- `command`: a configured command ({sha} and {env} filled in); exit 0 is GO.

A source that is not configured, has no token, or knows nothing about the SHA has *no
result* and the next source is asked; the first source with a result decides. No result
from any source is NO-GO, never GO. A source that is configured but cannot be read (API
down, malformed response) decides NO-GO itself: it may be hiding a failure, and quietly
falling back to a weaker source during an outage is how a red build gets released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gonogo.config.schema import CiPassed as CiPassedConfig
from gonogo.gates.builtin.command_gate import describe, run_gate_command, substitute
from gonogo.gates.model import Finding, GateInput, GateResult
from gonogo.github import CheckRun, CombinedStatus, GitHub
from gonogo.retry import RemoteError

GATE_ID = "ci-passed"
OK_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})


@dataclass(frozen=True)
class NoResult:
    why: str


Outcome = GateResult | NoResult


def _same_commit(head_sha: str, sha: str) -> bool:
    a, b = head_sha.lower(), sha.lower()
    if min(len(a), len(b)) < 7:
        return False
    return a.startswith(b) or b.startswith(a)


def judge_github(
    repo: str,
    sha: str,
    runs: list[CheckRun],
    combined: CombinedStatus,
    required: list[str],
    *,
    own_job: str | None = None,
) -> Outcome:
    """The verdict of GitHub's check runs and statuses for `sha` (pure, no I/O).

    `own_job` names the GitHub Actions job gonogo itself runs in, for this SHA: its own
    check run is necessarily still in progress and must not hold the release up.
    """
    sha7 = sha[:7]
    evidence = f"GitHub check runs and statuses for {repo}@{sha7}"
    runs = [
        r
        for r in runs
        if _same_commit(r.head_sha, sha) and not (r.name == own_job and r.status != "completed")
    ]
    statuses = combined.statuses
    if not runs and not statuses:
        return NoResult(f"no check runs or statuses for {sha7} in {repo}")
    failing: list[tuple[str, str]] = []
    pending: list[tuple[str, str]] = []
    for run in runs:
        if run.status != "completed":
            pending.append((run.name, f"check run is {run.status}"))
        elif run.conclusion not in OK_CONCLUSIONS:
            failing.append((run.name, f"check run concluded {run.conclusion or 'nothing'}"))
    for status in statuses:
        detail = f" ({status.description})" if status.description else ""
        if status.state == "success":
            continue
        if status.state == "pending":
            pending.append((status.context, f"status pending{detail}"))
        else:
            failing.append((status.context, f"status {status.state}{detail}"))
    reported = {r.name for r in runs} | {s.context for s in statuses}
    missing = [name for name in required if name not in reported]
    findings = (
        tuple(Finding(f"github:{name}", None, what) for name, what in failing)
        + tuple(Finding(f"github:{name}", None, what) for name, what in pending)
        + tuple(Finding(f"github:{name}", None, "required, not reported") for name in missing)
    )

    def names(items: list[tuple[str, str]]) -> str:
        return ", ".join(dict.fromkeys(name for name, _ in items))

    if failing:
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"CI failed for {sha7}: {names(failing)}",
            evidence,
            findings,
            fix="fix the failing checks, push, and release the new commit",
        )
    if pending:
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"CI still running: {names(pending)}",
            evidence,
            findings,
            fix="wait for CI to finish, then run the command again",
        )
    if missing:
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"required check(s) not reported for {sha7}: {', '.join(missing)}",
            evidence,
            findings,
            fix="make CI run the required checks on this commit",
        )
    # GitHub reports the combined state "pending" when a commit has no statuses at all, so
    # the combined state only counts when there are statuses.
    if statuses and combined.state != "success":
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"the combined commit status of {sha7} is {combined.state}",
            evidence,
            findings,
        )
    return GateResult(
        GATE_ID,
        "GO",
        f"CI passed for {sha7}: {len(runs)} check run(s) and {len(statuses)} status(es) successful",
        evidence,
    )


def _github(inp: GateInput, cfg: CiPassedConfig, sha: str) -> Outcome:
    source = cfg.github
    if source is None:
        return NoResult("not configured")
    token = inp.environ.get(source.token_env)
    if not token:
        return NoResult(f"token {source.token_env} not set")
    evidence = f"GitHub check runs and statuses for {source.repo}@{sha[:7]}"
    try:
        with GitHub(source.api_url, token, source.timeout) as gh:
            runs = gh.check_runs(source.repo, sha)
            combined = gh.combined_status(source.repo, sha)
    except RemoteError as exc:
        reason = f"cannot read CI results from GitHub: {exc.message}"
        return GateResult(GATE_ID, "NO-GO", reason, evidence)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        reason = f"cannot read CI results from GitHub: {type(exc).__name__}: {exc}"
        return GateResult(GATE_ID, "NO-GO", reason, evidence)
    own_job = None
    if inp.environ.get("GITHUB_ACTIONS") == "true" and _same_commit(
        inp.environ.get("GITHUB_SHA", ""), sha
    ):
        own_job = inp.environ.get("GITHUB_JOB") or None
    return judge_github(source.repo, sha, runs, combined, cfg.required, own_job=own_job)


def _ledger(inp: GateInput, cfg: CiPassedConfig, sha: str) -> Outcome:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from gonogo.ledger.schema import runs

    sha7 = sha[:7]
    query = (
        select(runs.c.id)
        .where(runs.c.command == "ship", runs.c.sha == sha)
        .order_by(runs.c.started_at.desc())
    )
    try:
        with inp.ledger.engine.connect() as conn:
            run_ids = [row.id for row in conn.execute(query)]
        # The latest ship run whose test step finished decides: a later red run beats an
        # earlier green one.
        for run_id in run_ids:
            tests = [
                s
                for s in inp.ledger.steps(run_id)
                if s["name"] == "test" and s["status"] in ("ok", "failed")
            ]
            if not tests:
                continue
            step = tests[-1]
            evidence = f"ledger: `gonogo ship` run {run_id}, test step"
            when = step.get("finished_at") or step.get("started_at")
            if step["status"] == "ok":
                return GateResult(
                    GATE_ID,
                    "GO",
                    f"`gonogo ship` test step passed for {sha7} (run {run_id}, {when})",
                    evidence,
                )
            detail = step.get("detail")
            error = detail.get("error") if isinstance(detail, dict) else None
            return GateResult(
                GATE_ID,
                "NO-GO",
                f"`gonogo ship` test step failed for {sha7} (run {run_id})"
                + (f": {error}" if isinstance(error, str) and error else ""),
                evidence,
                (Finding(f"ledger:{run_id}", None, "test step failed"),),
                fix="fix the tests and ship again",
            )
    except SQLAlchemyError as exc:
        return GateResult(
            GATE_ID,
            "NO-GO",
            f"cannot read the ledger: {type(exc).__name__}",
            f"ledger at {inp.ledger.location}",
        )
    return NoResult("no `gonogo ship` test step for this SHA")


def _command(inp: GateInput, cfg: CiPassedConfig, sha: str) -> Outcome:
    if not cfg.command:
        return NoResult("not configured")
    command = substitute(cfg.command, sha=sha, env=inp.env)
    evidence = f"command `{command}`"
    try:
        run = run_gate_command(command, cwd=inp.root, env=inp.environ, timeout=cfg.timeout)
    except OSError as exc:
        return GateResult(
            GATE_ID, "NO-GO", f"could not run `{command}`: {exc.strerror or exc}", evidence
        )
    if run.exit_code == 0:
        return GateResult(GATE_ID, "GO", f"`{command}` exited 0 for {sha[:7]}", evidence)
    return GateResult(GATE_ID, "NO-GO", describe(command, run, cfg.timeout), evidence)


SOURCES: dict[str, Callable[[GateInput, CiPassedConfig, str], Outcome]] = {
    "github": _github,
    "ledger": _ledger,
    "command": _command,
}


class CiPassed:
    id = GATE_ID
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return inp.config.gates.ci_passed is not None

    def evaluate(self, inp: GateInput) -> GateResult:
        cfg = inp.config.gates.ci_passed
        assert cfg is not None
        # The engine redacts every result, the GitHub token included.
        return self._evaluate(inp, cfg)

    def _evaluate(self, inp: GateInput, cfg: CiPassedConfig) -> GateResult:
        if not inp.sha:
            return GateResult(
                self.id, "NO-GO", "no commit SHA to check CI for", ", ".join(cfg.sources)
            )
        misses: list[str] = []
        for name in cfg.sources:
            outcome = SOURCES[name](inp, cfg, inp.sha)
            if isinstance(outcome, GateResult):
                return outcome
            misses.append(f"{name}: {outcome.why}")
        return GateResult(
            self.id,
            "NO-GO",
            f"no CI result found for {inp.sha[:7]} ({'; '.join(misses)})",
            "; ".join(misses) or "no sources configured",
            fix=f"run `gonogo ship` for {inp.sha[:7]}, or configure gates.ci-passed.github "
            "and set its token",
        )
