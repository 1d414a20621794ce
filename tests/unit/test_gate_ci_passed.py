"""ci-passed against a real fake GitHub, a real SQLite ledger and real commands; and the
shared command runner with the custom command gate built on it."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gonogo.config.schema import Config
from gonogo.gates import engine
from gonogo.gates.builtin.ci_passed import CiPassed
from gonogo.gates.builtin.command_gate import CommandGate, run_gate_command
from gonogo.gates.model import GateInput, GateResult
from gonogo.ledger import Ledger
from gonogo.procs import pid_alive

# pytest puts tests/unit (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import github as fake_github
from fakes.github import FakeGitHub

github_fake = fake_github.github_fake  # the fixture, for this module's tests

REPO = "acme/app"
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
PATH_ONLY = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def config(ci: Mapping[str, Any] | None = None, custom: Mapping[str, Any] | None = None) -> Config:
    gates: dict[str, Any] = {}
    if ci is not None:
        gates["ci-passed"] = dict(ci)
    if custom is not None:
        gates["custom"] = dict(custom)
    return Config.model_validate(
        {
            "project": {"name": "ci-test"},
            "gates": gates,
            "environments": {"staging": {"provider": "local", "port": 18001}},
        }
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(None, tmp_path / "ledger.db")
    yield led
    led.close()


@pytest.fixture
def make(tmp_path: Path, ledger: Ledger) -> Any:
    def make(
        cfg: Config,
        environ: Mapping[str, str] | None = None,
        *,
        sha: str | None = SHA,
        command: str = "check",
    ) -> GateInput:
        return GateInput(
            root=tmp_path,
            config=cfg,
            env="staging",
            ledger=ledger,
            environ=dict(environ or {}),
            sha=sha,
            command=command,
        )

    return make


def github_source(fake: FakeGitHub, **extra: Any) -> dict[str, Any]:
    return {"repo": REPO, "api_url": fake.url, "timeout": "2s", **extra}


def token_env(fake: FakeGitHub) -> dict[str, str]:
    return {"GITHUB_TOKEN": fake.token}


def record_ship(
    ledger: Ledger, run_id: str, sha: str, test_status: str, *, run_status: str = "succeeded"
) -> None:
    ledger.start_run(
        run_id, command="ship", env="staging", actor="tester", host="h", pid=1, sha=sha
    )
    ledger.step_finished(
        ledger.step_started(run_id, 0, "test", "make test", actor="tester"),
        status=test_status,
        detail={} if test_status == "ok" else {"error": "3 tests failed"},
        actor="tester",
    )
    ledger.finish_run(run_id, status=run_status, exit_code=0, summary="", actor="tester")


def evaluate(inp: GateInput) -> GateResult:
    result = CiPassed().evaluate(inp)
    json.dumps(result.to_dict())  # always serialisable for --json
    return result


# -- applies ---------------------------------------------------------------------------------


def test_applies_only_when_configured(make: Any) -> None:
    assert not CiPassed().applies(make(config()))
    assert CiPassed().applies(make(config({"sources": ["ledger"]})))


# -- github source -----------------------------------------------------------------------------


def test_go_when_all_checks_and_statuses_passed(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.add_check_run(REPO, SHA, "docs", conclusion="skipped")
    github_fake.add_check_run(REPO, SHA, "optional", conclusion="neutral")
    github_fake.add_status(REPO, SHA, "ci/jenkins", "success")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "GO", result.reason
    assert result.evidence == "GitHub check runs and statuses for acme/app@0123456"
    assert "3 check run(s) and 1 status(es)" in result.reason


def test_go_with_check_runs_and_no_statuses(github_fake: FakeGitHub, make: Any) -> None:
    # GitHub calls the combined state "pending" when there are no statuses at all.
    github_fake.add_check_run(REPO, SHA, "build")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    assert evaluate(make(cfg, token_env(github_fake))).verdict == "GO"


def test_go_with_statuses_only(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_status(REPO, SHA, "ci/circleci", "success")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    assert evaluate(make(cfg, token_env(github_fake))).verdict == "GO"


def test_failing_checks_are_named(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.add_check_run(REPO, SHA, "lint", conclusion="failure")
    github_fake.add_check_run(REPO, SHA, "e2e", conclusion="timed_out")
    github_fake.add_status(REPO, SHA, "security", "error", "scanner crashed")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "NO-GO"
    assert result.reason == "CI failed for 0123456: lint, e2e, security"
    assert {f.file for f in result.findings} == {"github:lint", "github:e2e", "github:security"}
    assert all(f.line is None for f in result.findings)
    assert "scanner crashed" in next(f.message for f in result.findings if "security" in f.file)


def test_pending_ci_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.add_check_run(REPO, SHA, "e2e", status="in_progress")
    github_fake.add_check_run(REPO, SHA, "deploy-preview", status="queued")
    github_fake.add_status(REPO, SHA, "ci/jenkins", "pending")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "NO-GO"
    assert result.reason == "CI still running: e2e, deploy-preview, ci/jenkins"
    assert {f.file for f in result.findings} == {
        "github:e2e",
        "github:deploy-preview",
        "github:ci/jenkins",
    }


def test_required_check_missing_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    cfg = config(
        {
            "sources": ["github"],
            "github": github_source(github_fake),
            "required": ["build", "integration"],
        }
    )
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "NO-GO"
    assert result.reason == "required check(s) not reported for 0123456: integration"
    assert [f.file for f in result.findings] == ["github:integration"]


def test_required_checks_present_and_green_is_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.add_status(REPO, SHA, "integration", "success")
    cfg = config(
        {
            "sources": ["github"],
            "github": github_source(github_fake),
            "required": ["build", "integration"],
        }
    )
    assert evaluate(make(cfg, token_env(github_fake))).verdict == "GO"


def test_no_checks_at_all_is_no_result_not_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_commit(REPO, SHA)
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "NO-GO"
    assert result.reason == (
        "no CI result found for 0123456 (github: no check runs or statuses for 0123456 in acme/app)"
    )


def test_no_result_everywhere_names_every_source(github_fake: FakeGitHub, make: Any) -> None:
    cfg = config({"github": github_source(github_fake)})  # all three sources, by default
    result = evaluate(make(cfg, {}))
    assert result.verdict == "NO-GO"
    assert result.reason == (
        "no CI result found for 0123456 (github: token GITHUB_TOKEN not set; "
        "ledger: no `gonogo ship` test step for this SHA; command: not configured)"
    )
    assert github_fake.seen() == []


def test_missing_token_moves_on_to_the_ledger(
    github_fake: FakeGitHub, make: Any, ledger: Ledger
) -> None:
    record_ship(ledger, "run-1", SHA, "ok")
    cfg = config({"sources": ["github", "ledger"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, {}))
    assert result.verdict == "GO"
    assert result.evidence.startswith("ledger: `gonogo ship` run run-1")


def test_no_checks_on_github_moves_on_to_the_ledger(
    github_fake: FakeGitHub, make: Any, ledger: Ledger
) -> None:
    github_fake.add_commit(REPO, SHA)
    record_ship(ledger, "run-1", SHA, "failed")
    cfg = config({"sources": ["github", "ledger"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "NO-GO"
    assert result.reason == "`gonogo ship` test step failed for 0123456 (run run-1): 3 tests failed"


def test_api_down_is_no_go_and_does_not_fall_back(
    github_fake: FakeGitHub, make: Any, ledger: Ledger
) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.fail_next(1000, "500")
    record_ship(ledger, "run-1", SHA, "ok")
    cfg = config(
        {"sources": ["github", "ledger"], "github": github_source(github_fake, timeout="1s")}
    )
    started = time.monotonic()
    result = evaluate(make(cfg, token_env(github_fake)))
    assert time.monotonic() - started < 4
    assert result.verdict == "NO-GO"
    assert result.reason.startswith("cannot read CI results from GitHub: ")
    assert "HTTP 500" in result.reason
    assert "GitHub" in result.evidence


def test_malformed_response_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.fail_next(1, "malformed")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    result = evaluate(make(cfg, token_env(github_fake)))
    assert result.verdict == "NO-GO"
    assert "malformed" in result.reason


def test_bad_credentials_is_no_go_without_the_token(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    secret = "ghp_NotTheRightOne000000000000000000000"
    cfg = config(
        {"sources": ["github"], "github": github_source(github_fake, token_env="CI_READ_PAT")}
    )
    result = evaluate(make(cfg, {"CI_READ_PAT": secret}))
    assert result.verdict == "NO-GO"
    assert "Bad credentials" in result.reason
    assert secret not in json.dumps(result.to_dict())


def test_token_never_in_the_result(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build", conclusion="failure")
    cfg = config({"sources": ["github"], "github": github_source(github_fake, timeout="0.5s")})
    for fault, times in ((None, 0), ("malformed", 1), ("drop", 20)):
        if fault:
            github_fake.fail_next(times, fault)
        result = evaluate(make(cfg, token_env(github_fake)))
        assert result.verdict == "NO-GO"
        assert github_fake.token not in json.dumps(result.to_dict())


def test_rate_limited_then_answers(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.fail_next(1, "429", retry_after=0.05)
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    assert evaluate(make(cfg, token_env(github_fake))).verdict == "GO"


def test_no_sha_is_no_go(make: Any) -> None:
    result = evaluate(make(config({"sources": ["ledger"]}), sha=None))
    assert result.verdict == "NO-GO"
    assert "no commit" in result.reason


# -- ledger source -----------------------------------------------------------------------------


def test_ledger_ship_test_step_ok_is_go(make: Any, ledger: Ledger) -> None:
    record_ship(ledger, "run-1", SHA, "ok")
    result = evaluate(make(config({"sources": ["ledger"]})))
    assert result.verdict == "GO"
    assert "`gonogo ship` test step passed for 0123456 (run run-1" in result.reason
    assert result.evidence == "ledger: `gonogo ship` run run-1, test step"


def test_ledger_latest_ship_run_decides(make: Any, ledger: Ledger) -> None:
    record_ship(ledger, "run-1", SHA, "ok")
    time.sleep(0.002)
    record_ship(ledger, "run-2", SHA, "failed", run_status="failed")
    result = evaluate(make(config({"sources": ["ledger"]})))
    assert result.verdict == "NO-GO"
    assert "run run-2" in result.reason


def test_ledger_other_sha_or_other_command_is_no_result(make: Any, ledger: Ledger) -> None:
    record_ship(ledger, "run-1", OTHER, "ok")
    ledger.start_run("dep-1", command="deploy", env="staging", actor="t", host="h", pid=1, sha=SHA)
    ledger.step_finished(
        ledger.step_started("dep-1", 0, "test", "not a ship run", actor="t"),
        status="ok",
        detail={},
        actor="t",
    )
    result = evaluate(make(config({"sources": ["ledger"]})))
    assert result.verdict == "NO-GO"
    assert result.reason == (
        "no CI result found for 0123456 (ledger: no `gonogo ship` test step for this SHA)"
    )


def test_ledger_unfinished_test_step_is_not_a_result(make: Any, ledger: Ledger) -> None:
    ledger.start_run("run-1", command="ship", env="staging", actor="t", host="h", pid=1, sha=SHA)
    ledger.step_started("run-1", 0, "test", "make test", actor="t")
    result = evaluate(make(config({"sources": ["ledger"]})))
    assert result.verdict == "NO-GO"
    assert "no `gonogo ship` test step" in result.reason


# -- command source ----------------------------------------------------------------------------


def test_command_exit_0_is_go_with_sha_and_env_filled_in(make: Any) -> None:
    cfg = config(
        {
            "sources": ["command"],
            "command": f'test {{sha}} = {SHA} && test {{env}} = staging && echo "CI green"',
        }
    )
    result = evaluate(make(cfg, PATH_ONLY))
    assert result.verdict == "GO", result.reason
    assert result.evidence.startswith("command `test 0123456789abcdef")


def test_command_nonzero_is_no_go_with_last_line(make: Any) -> None:
    cfg = config(
        {"sources": ["command"], "command": "echo checking; echo 'pipeline 42: failed' >&2; exit 3"}
    )
    result = evaluate(make(cfg, PATH_ONLY))
    assert result.verdict == "NO-GO"
    assert result.reason.endswith("exited 3: pipeline 42: failed")


def test_command_sees_the_given_environment_only(make: Any) -> None:
    cfg = config({"sources": ["command"], "command": 'test "$CI_STATE" = green'})
    assert evaluate(make(cfg, {"CI_STATE": "green"})).verdict == "GO"
    assert evaluate(make(cfg, {"CI_STATE": "red"})).verdict == "NO-GO"


def test_command_timeout_is_no_go(make: Any) -> None:
    cfg = config({"sources": ["command"], "command": "sleep 30", "timeout": "0.5s"})
    started = time.monotonic()
    result = evaluate(make(cfg, PATH_ONLY))
    assert time.monotonic() - started < 3
    assert result.verdict == "NO-GO"
    assert "timed out after 0.5s" in result.reason


def test_command_output_is_redacted(make: Any) -> None:
    cfg = config({"sources": ["command"], "command": 'echo "token is $DEPLOY_TOKEN"; exit 1'})
    # Redaction is the engine's job, for every gate alike.
    (result,) = engine.evaluate(
        [CiPassed()], make(cfg, {"DEPLOY_TOKEN": "s3cr3t-value-123"})
    ).results
    assert result.verdict == "NO-GO"
    assert "s3cr3t-value-123" not in json.dumps(result.to_dict())
    assert "<redacted>" in result.reason


# -- the shared runner and custom command gates ------------------------------------------------


def test_runner_captures_output_and_exit_code(tmp_path: Path) -> None:
    run = run_gate_command("pwd; echo err >&2; exit 4", cwd=tmp_path, env=PATH_ONLY, timeout=5)
    assert run.exit_code == 4
    assert run.output.splitlines() == [str(tmp_path), "err"]


def test_runner_leaves_nothing_running_after_a_normal_exit(tmp_path: Path) -> None:
    run = run_gate_command(
        "sleep 30 & echo $! > bg.pid; echo done", cwd=tmp_path, env=PATH_ONLY, timeout=5
    )
    assert run.exit_code == 0
    assert wait_dead(int((tmp_path / "bg.pid").read_text()))


def wait_dead(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def custom(command: str, timeout: str = "5s", guards: list[str] | None = None) -> Config:
    spec: dict[str, Any] = {"command": command, "timeout": timeout}
    if guards is not None:
        spec["guards"] = guards
    return config(custom={"plan-sync": spec})


def gate(cfg: Config) -> CommandGate:
    return CommandGate("plan-sync", cfg.gates.custom["plan-sync"])


def test_custom_gate_go(make: Any) -> None:
    cfg = custom("echo validating; echo 'plan in sync'")
    result = gate(cfg).evaluate(make(cfg, PATH_ONLY))
    assert result.verdict == "GO"
    assert result.id == "plan-sync"
    assert result.reason == "plan in sync"
    assert result.evidence == "echo validating; echo 'plan in sync'"
    assert result.findings[0].file == cfg.gates.custom["plan-sync"].command
    assert result.findings[0].message == "validating\nplan in sync"


def test_custom_gate_no_go_keeps_the_last_20_lines(make: Any) -> None:
    cfg = custom(
        "for i in $(seq 1 30); do echo line $i; done; echo 'plan drifted: 2 steps'; exit 1"
    )
    result = gate(cfg).evaluate(make(cfg, PATH_ONLY))
    assert result.verdict == "NO-GO"
    assert result.reason == "plan drifted: 2 steps (exit 1)"
    lines = result.findings[0].message.splitlines()
    assert len(lines) == 20
    assert lines[0] == "line 12" and lines[-1] == "plan drifted: 2 steps"


def test_custom_gate_timeout_kills_the_process_group(make: Any, tmp_path: Path) -> None:
    cfg = custom("sh -c 'sleep 60' & echo $! > child.pid; sleep 60", timeout="0.5s")
    started = time.monotonic()
    result = gate(cfg).evaluate(make(cfg, PATH_ONLY))
    assert time.monotonic() - started < 3
    assert result.verdict == "NO-GO"
    assert result.reason.startswith("timed out after 0.5s")
    assert wait_dead(int((tmp_path / "child.pid").read_text()))


def test_custom_gate_output_is_redacted(make: Any) -> None:
    cfg = custom('echo "using $API_KEY"; exit 2')
    result = gate(cfg).evaluate(make(cfg, {"API_KEY": "key-abcdef-999"}))
    assert "key-abcdef-999" not in json.dumps(result.to_dict())
    assert result.findings[0].message == "using <redacted>"


def test_custom_gate_cannot_start_is_no_go(make: Any, tmp_path: Path) -> None:
    cfg = custom("true")
    inp = make(cfg, PATH_ONLY)
    missing = GateInput(
        root=tmp_path / "gone", config=cfg, env="staging", ledger=inp.ledger, environ=PATH_ONLY
    )
    result = gate(cfg).evaluate(missing)
    assert result.verdict == "NO-GO"
    assert result.reason.startswith("could not run `true`")


def test_custom_gate_applies_to_its_guards_and_check(make: Any) -> None:
    cfg = custom("true", guards=["deploy", "publish"])
    g = gate(cfg)
    assert g.applies(make(cfg, command="deploy"))
    assert g.applies(make(cfg, command="publish"))
    assert g.applies(make(cfg, command="check"))
    assert not g.applies(make(cfg, command="rollback"))
    assert g.overridable


def test_its_own_actions_job_does_not_hold_the_release(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_check_run(REPO, SHA, "build")
    github_fake.add_check_run(REPO, SHA, "deploy", status="in_progress")
    cfg = config({"sources": ["github"], "github": github_source(github_fake)})
    actions = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_JOB": "deploy"}
    assert evaluate(make(cfg, {**token_env(github_fake), **actions})).verdict == "GO"
    # Elsewhere, or for another commit, the same in-progress run means CI is still running.
    assert evaluate(make(cfg, token_env(github_fake))).verdict == "NO-GO"
    other = {**actions, "GITHUB_SHA": OTHER}
    assert evaluate(make(cfg, {**token_env(github_fake), **other})).verdict == "NO-GO"


def test_check_runs_for_another_commit_are_ignored() -> None:
    from gonogo.gates.builtin.ci_passed import NoResult, judge_github
    from gonogo.github import CheckRun, CombinedStatus

    stray = CheckRun("build", "completed", "success", OTHER)
    empty = CheckRun("lint", "completed", "failure", "")
    outcome = judge_github(REPO, SHA, [stray, empty], CombinedStatus("pending", ()), [])
    assert isinstance(outcome, NoResult)
