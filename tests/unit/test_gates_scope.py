"""branch-allowed, in-scope, rollback-feasible, and the engine's selection and overrides."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo.config import Config, load_config
from gonogo.errors import GonogoError
from gonogo.gates import engine
from gonogo.gates.builtin.branch_allowed import BranchAllowed
from gonogo.gates.builtin.in_scope import InScope
from gonogo.gates.builtin.rollback_feasible import RollbackFeasible
from gonogo.gates.model import GateInput, GateResult, Override
from gonogo.ledger import Ledger, ReleaseRow
from gonogo.ledger.store import now_iso

GIT_ENV = {
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}

CONFIG = """\
[project]
name = "scope"
work_order = { pattern = "WO-[0-9]+" }

[gates.custom.plan-sync]
command = "exit 0"

[environments.staging]
port = 18101
branches = ["develop", "release/*"]

[environments.production]
port = 18102
protected = true
gates = ["prod-guard", "in-scope"]
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "gonogo.toml").write_text(CONFIG)
    git(root, "init", "-q", "-b", "develop")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start without a work order")
    return root


@pytest.fixture
def config(repo: Path) -> Config:
    return load_config(repo / "gonogo.toml")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(None, tmp_path / "ledger.db")
    yield led
    led.close()


def inp(
    repo: Path, config: Config, ledger: Ledger, env: str = "staging", **kw: object
) -> GateInput:
    environ = kw.pop("environ", {})
    sha = kw.pop("sha", None) or git(repo, "rev-parse", "HEAD")
    return GateInput(
        root=repo, config=config, env=env, ledger=ledger, environ=environ, sha=sha, **kw
    )  # type: ignore[arg-type]


def release(ledger: Ledger, env: str, sha: str, *, verified: bool, state: str = "live") -> None:
    version = ledger.next_release_version(env)
    run_id = f"r-{env}-{version}"
    ledger.start_run(run_id, command="deploy", env=env, actor="t", host="h", pid=1)
    ledger.add_release(
        ReleaseRow(
            env=env,
            version=version,
            run_id=run_id,
            sha=sha,
            artifact="sha256:x",
            vars={},
            state="pending",
            description="",
            created_at=now_iso(),
            verified_at=None,
            live_since=None,
        ),
        actor="t",
    )
    ledger.set_live(env, version, actor="t", run_id=run_id)
    if verified:
        ledger.mark_verified(env, version, actor="t", run_id=run_id)
    if state != "live":
        ledger.set_release_state(env, version, state, actor="t", run_id=run_id)


# -- branch-allowed ---------------------------------------------------------------------


def test_branch_allowed_on_listed_branch_and_glob(repo, config, ledger) -> None:
    assert BranchAllowed().evaluate(inp(repo, config, ledger)).verdict == "GO"
    git(repo, "switch", "-q", "-c", "release/1.2")
    result = BranchAllowed().evaluate(inp(repo, config, ledger))
    assert result.verdict == "GO" and "release/1.2" in result.reason


def test_branch_not_allowed_names_the_allowed_ones(repo, config, ledger) -> None:
    git(repo, "switch", "-q", "-c", "feature/x")
    result = BranchAllowed().evaluate(inp(repo, config, ledger))
    assert result.verdict == "NO-GO"
    assert "feature/x" in result.reason and "develop, release/*" in result.reason
    assert result.fix


def test_branch_from_ci_environment_wins_over_detached_head(repo, config, ledger) -> None:
    git(repo, "switch", "-q", "--detach")
    detached = BranchAllowed().evaluate(inp(repo, config, ledger))
    assert detached.verdict == "NO-GO" and "detached" in detached.reason
    in_ci = BranchAllowed().evaluate(
        inp(repo, config, ledger, environ={"GITHUB_REF_NAME": "develop"})
    )
    assert in_ci.verdict == "GO" and in_ci.evidence == "$GITHUB_REF_NAME"


def test_branch_allowed_does_not_apply_without_branches(repo, config, ledger) -> None:
    assert not BranchAllowed().applies(inp(repo, config, ledger, "production"))


# -- in-scope ---------------------------------------------------------------------------


def test_in_scope_no_go_without_a_work_order(repo, config, ledger) -> None:
    result = InScope().evaluate(inp(repo, config, ledger))
    assert result.verdict == "NO-GO"
    assert "WO-[0-9]+" in result.reason and "branch develop" in result.reason
    assert "1 commit(s)" in result.evidence


def test_in_scope_finds_the_id_in_a_commit_since_the_live_release(repo, config, ledger) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "WO-42: fix login")
    result = InScope().evaluate(inp(repo, config, ledger))
    assert result.verdict == "GO" and "WO-42" in result.reason
    # Once a release of that commit is live, only newer commits count.
    release(ledger, "staging", git(repo, "rev-parse", "HEAD"), verified=True)
    git(repo, "commit", "-q", "--allow-empty", "-m", "tidy up")
    later = InScope().evaluate(inp(repo, config, ledger))
    assert later.verdict == "NO-GO" and "since v1" in later.evidence
    assert first


def test_in_scope_finds_the_id_in_the_branch_and_the_pull_request(
    repo, config, ledger, tmp_path
) -> None:
    git(repo, "switch", "-q", "-c", "feature/WO-7-search")
    assert InScope().evaluate(inp(repo, config, ledger)).reason == "linked to WO-7"
    git(repo, "switch", "-q", "develop")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"title": "WO-9 search", "head": {}}}))
    result = InScope().evaluate(
        inp(repo, config, ledger, environ={"GITHUB_EVENT_PATH": str(event)})
    )
    assert result.verdict == "GO" and "WO-9" in result.reason


def test_in_scope_does_not_apply_without_a_pattern(tmp_path, ledger) -> None:
    cfg = Config.model_validate(
        {"project": {"name": "x"}, "environments": {"staging": {"port": 18200}}}
    )
    gate_input = GateInput(
        root=tmp_path, config=cfg, env="staging", ledger=ledger, environ={}, sha="0" * 40
    )
    assert not InScope().applies(gate_input)


# -- rollback-feasible ------------------------------------------------------------------


def test_rollback_feasible_first_release_is_go(repo, config, ledger) -> None:
    result = RollbackFeasible().evaluate(inp(repo, config, ledger))
    assert result.verdict == "GO" and "rolling back means stopping it" in result.reason


def test_rollback_feasible_after_only_failed_releases_is_still_go(repo, config, ledger) -> None:
    # A first release that failed must not block the fix that follows it.
    sha = git(repo, "rev-parse", "HEAD")
    release(ledger, "staging", sha, verified=False)
    result = RollbackFeasible().evaluate(inp(repo, config, ledger))
    assert result.verdict == "GO" and "no release of staging has passed" in result.reason


def test_rollback_feasible_names_the_release_to_go_back_to(repo, config, ledger) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    release(ledger, "staging", sha, verified=True)
    release(ledger, "staging", sha, verified=False)
    result = RollbackFeasible().evaluate(inp(repo, config, ledger))
    assert result.verdict == "GO" and "--to v1" in result.reason


def test_rollback_feasible_no_go_when_the_good_artifact_is_gone(repo, config, ledger) -> None:
    from gonogo.ledger.store import ArtifactRow

    sha = git(repo, "rev-parse", "HEAD")
    ledger.add_artifact(
        ArtifactRow(
            digest="sha256:x",
            sha=sha,
            kind="tarball",
            location=".gonogo/artifacts/x.tar",
            size=1,
            created_at=now_iso(),
        ),
        actor="t",
        run_id=None,
    )
    release(ledger, "staging", sha, verified=True)
    result = RollbackFeasible().evaluate(inp(repo, config, ledger))
    assert result.verdict == "NO-GO" and "is gone from .gonogo/artifacts/x.tar" in result.reason
    (repo / ".gonogo" / "artifacts").mkdir(parents=True)
    (repo / ".gonogo" / "artifacts" / "x.tar").write_bytes(b"x")
    assert RollbackFeasible().evaluate(inp(repo, config, ledger)).verdict == "GO"


# -- engine -----------------------------------------------------------------------------


def test_environment_gate_list_selects_and_custom_gates_join(repo, config) -> None:
    ids = [g.id for g in engine.select(config, "production", "deploy")]
    assert ids == ["in-scope", "prod-guard"]
    staging = [g.id for g in engine.select(config, "staging", "deploy")]
    assert staging[-1] == "plan-sync" and "clean-tree" in staging
    assert [g.id for g in engine.select(config, "staging", "rollback")] == [
        "prod-guard",
        "schema-compatible",
    ]


def test_select_only_unknown_gate_is_a_usage_error(config) -> None:
    with pytest.raises(GonogoError, match="--gate nope: no such gate"):
        engine.select(config, "staging", "check", ["nope"])


def test_override_passes_one_gate_and_is_carried_in_the_result(repo, config, ledger) -> None:
    gates = engine.select(config, "staging", "deploy", ["in-scope"])
    ov = Override("in-scope", "hotfix INC-9", "alice", now_iso())
    report = engine.evaluate(gates, inp(repo, config, ledger), {"in-scope": ov})
    assert report.go and report.verdict == "GO"
    (result,) = report.results
    assert result.verdict == "NO-GO" and result.override == ov
    assert report.to_dict()["gates"][0]["override"]["reason"] == "hotfix INC-9"
    assert report.overrides() == [ov]


def test_prod_guard_cannot_be_overridden(repo, config, ledger) -> None:
    gates = engine.select(config, "production", "deploy")
    ov = Override("prod-guard", "trust me", "mallory", now_iso())
    with pytest.raises(GonogoError, match="cannot be overridden"):
        engine.evaluate(gates, inp(repo, config, ledger, "production"), {"prod-guard": ov})


def test_override_of_a_gate_not_guarding_the_command_is_refused(repo, config, ledger) -> None:
    gates = engine.select(config, "production", "deploy")
    ov = Override("clean-tree", "x", "a", now_iso())
    with pytest.raises(GonogoError, match="not one of the gates"):
        engine.evaluate(gates, inp(repo, config, ledger, "production"), {"clean-tree": ov})


class _Exploding:
    id = "exploding"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return True

    def evaluate(self, inp: GateInput) -> GateResult:
        raise RuntimeError("evidence store on fire")


def test_a_gate_that_raises_is_no_go_not_a_crash(repo, config, ledger) -> None:
    report = engine.evaluate([_Exploding()], inp(repo, config, ledger))
    (result,) = report.results
    assert result.verdict == "NO-GO"
    assert "RuntimeError: evidence store on fire" in result.reason


# -- migration-approved -----------------------------------------------------------------


def _pending(sql: str = "CREATE TABLE t (id INTEGER);\n", current: tuple[str, ...] = ()):
    from gonogo.migrations.pending import PendingSql

    return PendingSql(current=current, heads=("0002",), sql=sql)


def _approve(ledger: Ledger, env: str, pending) -> None:  # type: ignore[no-untyped-def]
    from gonogo.ledger.store import ApprovalRow

    run_id = f"a-{env}-{pending.sha256[:8]}"
    ledger.start_run(run_id, command="migrate approve", env=env, actor="t", host="h", pid=1)
    ledger.add_approval(
        ApprovalRow(
            env=env,
            run_id=run_id,
            from_revision=pending.start,
            to_revision=pending.target,
            sql_sha256=pending.sha256,
            approved_by="dba",
            note="ok",
            approved_at=now_iso(),
        ),
        actor="t",
    )


def test_migration_approved_only_applies_when_told_what_would_run(repo, config, ledger) -> None:
    from gonogo.gates.builtin.migration_approved import MigrationApproved

    assert not MigrationApproved().applies(inp(repo, config, ledger))
    assert MigrationApproved().applies(inp(repo, config, ledger, extra={"pending_sql": _pending()}))


def test_migration_approved_nothing_pending_is_go(repo, config, ledger) -> None:
    from gonogo.gates.builtin.migration_approved import MigrationApproved
    from gonogo.migrations.pending import PendingSql

    at_head = PendingSql(current=("0002",), heads=("0002",), sql="")
    result = MigrationApproved().evaluate(inp(repo, config, ledger, extra={"pending_sql": at_head}))
    assert result.verdict == "GO" and "nothing pending" in result.reason


def test_migration_approved_needs_an_approval_of_exactly_this_sql(repo, config, ledger) -> None:
    from gonogo.gates.builtin.migration_approved import MigrationApproved

    gate = MigrationApproved()
    pending = _pending()
    result = gate.evaluate(inp(repo, config, ledger, extra={"pending_sql": pending}))
    assert result.verdict == "NO-GO" and "no approval" in result.reason
    assert "migrate staging approve" in result.fix
    # An approval of different SQL (the file changed after review) does not count.
    _approve(ledger, "staging", _pending(sql="DROP TABLE t;\n"))
    assert (
        gate.evaluate(inp(repo, config, ledger, extra={"pending_sql": pending})).verdict == "NO-GO"
    )
    _approve(ledger, "staging", pending)
    result = gate.evaluate(inp(repo, config, ledger, extra={"pending_sql": pending}))
    assert result.verdict == "GO" and "approved by dba" in result.reason


def test_migration_tested_upstream_requires_the_upstream_apply_first(tmp_path, ledger) -> None:
    from gonogo.gates.builtin.migration_approved import MigrationApproved
    from gonogo.gates.builtin.migration_tested import MigrationTestedUpstream
    from gonogo.ledger.store import MigrationRow

    cfg = Config.model_validate(
        {
            "project": {"name": "x"},
            "environments": {
                "staging": {"port": 18301},
                "production": {"port": 18302, "promote_from": "staging"},
            },
        }
    )
    pending = _pending()
    _approve(ledger, "production", pending)
    gate_input = GateInput(
        root=tmp_path,
        config=cfg,
        env="production",
        ledger=ledger,
        environ={},
        sha="0" * 40,
        extra={"pending_sql": pending},
    )
    # Approved here: migration-approved is satisfied; whether staging ran it is the other gate.
    assert MigrationApproved().evaluate(gate_input).verdict == "GO"
    tested = MigrationTestedUpstream()
    assert tested.applies(gate_input) and tested.overridable
    result = tested.evaluate(gate_input)
    assert result.verdict == "NO-GO" and "never ran on staging" in result.reason
    ledger.start_run(
        "m-staging", command="migrate apply", env="staging", actor="t", host="h", pid=1
    )
    ledger.record_migration(
        MigrationRow(
            env="staging",
            run_id="m-staging",
            from_revision=None,
            to_revision="0002",
            status="ok",
            applied_at=now_iso(),
            sql_sha256=pending.sha256,
        ),
        actor="t",
    )
    assert tested.evaluate(gate_input).verdict == "GO"
