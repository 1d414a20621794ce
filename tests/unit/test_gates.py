"""Gates against real things: a real gonogo.toml, a real SQLite ledger, a real git repo."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from gonogo.config import Config, load_config
from gonogo.gates import engine
from gonogo.gates.builtin import REGISTRY
from gonogo.gates.builtin.clean_tree import CleanTree
from gonogo.gates.builtin.prod_guard import ProdGuard
from gonogo.gates.builtin.promoted_from import PromotedFrom
from gonogo.gates.model import GateInput, GateResult
from gonogo.ledger import Ledger, ReleaseRow
from gonogo.ledger.store import now_iso

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}

CONFIG = """\
[project]
name = "gates-test"

[environments.staging]
provider = "local"
port = 18001

[environments.production]
provider = "local"
port = 18002
protected = true
promote_from = "staging"

[environments.live]
provider = "heroku"
app = "acme-prod-7f3"
protected = true

[environments.custom]
provider = "local"
port = 18003
protected = true
guard = { vars = { RELEASE_OK = "yes" } }
"""

SHA = "0123456789abcdef0123456789abcdef01234567"
GUARD_OK = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "gonogo.toml").write_text(CONFIG)
    (root / "app.py").write_text("print('hello')\n")
    (root / "README.md").write_text("readme\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def config(repo: Path) -> Config:
    return load_config(repo / "gonogo.toml")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(None, tmp_path / "ledger.db")
    try:
        yield led
    finally:
        led.close()


def make_input(
    repo: Path,
    config: Config,
    ledger: Ledger,
    env: str,
    *,
    environ: Mapping[str, str] | None = None,
    sha: str | None = SHA,
    confirm: str | None = None,
) -> GateInput:
    return GateInput(
        root=repo,
        config=config,
        env=env,
        ledger=ledger,
        environ=dict(environ or {}),
        sha=sha,
        confirm=confirm,
    )


def add_release(ledger: Ledger, env: str, sha: str, *, verified: bool) -> int:
    run_id = f"run-{env}-{ledger.next_release_version(env)}"
    ledger.start_run(run_id, command="deploy", env=env, actor="t", host="h", pid=1)
    version = ledger.next_release_version(env)
    ledger.add_release(
        ReleaseRow(
            env=env,
            version=version,
            run_id=run_id,
            sha=sha,
            artifact="sha256:" + "ab" * 32,
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
    return version


# -- prod-guard ----------------------------------------------------------------------------------


def test_registry_lists_the_builtin_gates() -> None:
    from gonogo.config.schema import GATE_IDS

    assert set(REGISTRY) == set(GATE_IDS)
    for gate_id, gate in REGISTRY.items():
        assert gate.id == gate_id


def test_prod_guard_is_not_overridable() -> None:
    assert ProdGuard.overridable is False
    assert REGISTRY["prod-guard"].overridable is False
    assert CleanTree.overridable is True
    assert PromotedFrom.overridable is True


def test_prod_guard_go_for_unprotected_environment(repo, config, ledger) -> None:
    result = ProdGuard().evaluate(make_input(repo, config, ledger, "staging"))
    assert result.verdict == "GO"
    assert "not a protected" in result.reason


def test_prod_guard_no_go_without_guard_variables(repo, config, ledger) -> None:
    result = ProdGuard().evaluate(make_input(repo, config, ledger, "production"))
    assert result.verdict == "NO-GO"
    assert not result.go
    assert "ALLOW_PROD=1" in result.reason
    assert "ALLOW_PROD_DEPLOY=YES" in result.reason
    assert "--confirm production" in result.reason


def test_prod_guard_go_with_both_variables(repo, config, ledger) -> None:
    result = ProdGuard().evaluate(make_input(repo, config, ledger, "production", environ=GUARD_OK))
    assert result.verdict == "GO"
    assert "ALLOW_PROD=1" in result.reason


@pytest.mark.parametrize(
    "environ",
    [
        {"ALLOW_PROD": "1"},
        {"ALLOW_PROD_DEPLOY": "YES"},
        {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "yes"},  # exact value required
        {"ALLOW_PROD": "true", "ALLOW_PROD_DEPLOY": "YES"},
        {"ALLOW_PROD": "", "ALLOW_PROD_DEPLOY": "YES"},
    ],
)
def test_prod_guard_no_go_with_one_missing_or_wrong(repo, config, ledger, environ) -> None:
    result = ProdGuard().evaluate(make_input(repo, config, ledger, "production", environ=environ))
    assert result.verdict == "NO-GO"
    wrong = [f"{k}={v}" for k, v in GUARD_OK.items() if environ.get(k) != v]
    for item in wrong:
        assert item in result.reason
    for k, v in GUARD_OK.items():
        if environ.get(k) == v:
            assert f"{k}={v}" not in result.reason.split("or pass")[0]


def test_prod_guard_uses_configured_guard_vars(repo, config, ledger) -> None:
    gate = ProdGuard()
    assert (
        gate.evaluate(make_input(repo, config, ledger, "custom", environ=GUARD_OK)).verdict
        == "NO-GO"
    )
    ok = gate.evaluate(make_input(repo, config, ledger, "custom", environ={"RELEASE_OK": "yes"}))
    assert ok.verdict == "GO"


def test_prod_guard_confirm_with_environment_name_when_no_app(repo, config, ledger) -> None:
    gate = ProdGuard()
    assert (
        gate.evaluate(make_input(repo, config, ledger, "production", confirm="production")).verdict
        == "GO"
    )
    bad = gate.evaluate(make_input(repo, config, ledger, "production", confirm="prod"))
    assert bad.verdict == "NO-GO"
    assert "'prod'" in bad.reason and "'production'" in bad.reason


def test_prod_guard_confirm_must_match_app_name(repo, config, ledger) -> None:
    gate = ProdGuard()
    good = gate.evaluate(make_input(repo, config, ledger, "live", confirm="acme-prod-7f3"))
    assert good.verdict == "GO"
    assert "acme-prod-7f3" in good.reason
    # the environment name is not the app name; it does not confirm a heroku app
    assert (
        gate.evaluate(make_input(repo, config, ledger, "live", confirm="live")).verdict == "NO-GO"
    )
    missing = gate.evaluate(make_input(repo, config, ledger, "live"))
    assert missing.verdict == "NO-GO"
    assert "--confirm acme-prod-7f3" in missing.reason


def test_prod_guard_wrong_confirm_is_no_go_even_with_guard_vars(repo, config, ledger) -> None:
    result = ProdGuard().evaluate(
        make_input(repo, config, ledger, "production", environ=GUARD_OK, confirm="staging")
    )
    assert result.verdict == "NO-GO"


# -- promoted-from -------------------------------------------------------------------------------


def test_promoted_from_not_applied_without_promote_from(repo, config, ledger) -> None:
    gate = PromotedFrom()
    assert gate.applies(make_input(repo, config, ledger, "staging")) is False
    assert gate.applies(make_input(repo, config, ledger, "live")) is False
    assert gate.applies(make_input(repo, config, ledger, "production")) is True
    report = engine.evaluate(
        [REGISTRY["promoted-from"]], make_input(repo, config, ledger, "staging")
    )
    assert report.results == ()
    assert report.verdict == "GO"


def test_promoted_from_no_go_when_sha_not_verified_upstream(repo, config, ledger) -> None:
    gate = PromotedFrom()
    result = gate.evaluate(make_input(repo, config, ledger, "production"))
    assert result.verdict == "NO-GO"
    assert SHA[:7] in result.reason and "staging" in result.reason
    # released but never verified upstream: still NO-GO
    add_release(ledger, "staging", SHA, verified=False)
    assert gate.evaluate(make_input(repo, config, ledger, "production")).verdict == "NO-GO"
    # another sha verified upstream does not count
    add_release(ledger, "staging", "f" * 40, verified=True)
    assert gate.evaluate(make_input(repo, config, ledger, "production")).verdict == "NO-GO"
    # verified in the wrong environment does not count
    add_release(ledger, "custom", SHA, verified=True)
    assert gate.evaluate(make_input(repo, config, ledger, "production")).verdict == "NO-GO"


def test_promoted_from_go_after_verified_upstream_release(repo, config, ledger) -> None:
    version = add_release(ledger, "staging", SHA, verified=True)
    result = PromotedFrom().evaluate(make_input(repo, config, ledger, "production"))
    assert result.verdict == "GO"
    assert f"v{version}" in result.reason
    assert "staging" in result.evidence


def test_promoted_from_no_go_without_sha(repo, config, ledger) -> None:
    result = PromotedFrom().evaluate(make_input(repo, config, ledger, "production", sha=None))
    assert result.verdict == "NO-GO"


# -- clean-tree ----------------------------------------------------------------------------------


def test_clean_tree_go_on_clean_repo(repo, config, ledger) -> None:
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert result.verdict == "GO"
    assert result.findings == ()


def test_clean_tree_no_go_with_modified_tracked_file(repo, config, ledger) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert result.verdict == "NO-GO"
    assert "app.py" in result.reason
    assert [f.file for f in result.findings] == ["app.py"]
    assert result.findings[0].line is None
    assert result.findings[0].message


def test_clean_tree_no_go_with_staged_or_deleted_files(repo, config, ledger) -> None:
    (repo / "app.py").write_text("print('staged')\n")
    git(repo, "add", "app.py")
    (repo / "README.md").unlink()
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert result.verdict == "NO-GO"
    assert sorted(f.file for f in result.findings) == ["README.md", "app.py"]


def test_clean_tree_go_with_only_untracked_files(repo, config, ledger) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_bytes(b"\0\1")
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert result.verdict == "GO"


def test_clean_tree_findings_name_files_in_subdirectories(repo, config, ledger) -> None:
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pkg")
    (repo / "pkg" / "mod.py").write_text("x = 2\n")
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert [f.file for f in result.findings] == ["pkg/mod.py"]


def test_clean_tree_findings_name_a_file_with_a_space_exactly(repo, config, ledger) -> None:
    """A finding's `file` must be the path as it is on disk, not git's C-quoted form."""
    (repo / "my notes.txt").write_text("one\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notes")
    (repo / "my notes.txt").write_text("two\n")
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert result.verdict == "NO-GO"
    assert [f.file for f in result.findings] == ["my notes.txt"]
    assert (repo / result.findings[0].file).is_file()


def test_clean_tree_summarises_many_files(repo, config, ledger) -> None:
    for i in range(7):
        (repo / f"f{i}.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "many")
    for i in range(7):
        (repo / f"f{i}.txt").write_text("b\n")
    result = CleanTree().evaluate(make_input(repo, config, ledger, "staging"))
    assert len(result.findings) == 7
    assert "and 2 more" in result.reason


# -- engine --------------------------------------------------------------------------------------


def test_for_command_deploy_order_and_verdict(repo, config, ledger) -> None:
    head = git(repo, "rev-parse", "HEAD")
    report = engine.for_command("deploy", make_input(repo, config, ledger, "production", sha=head))
    assert [r.id for r in report.results] == [
        "clean-tree",
        "migrations-explicit",
        "rollback-feasible",
        "promoted-from",
        "prod-guard",
    ]
    assert [r.verdict for r in report.results] == ["GO", "GO", "GO", "NO-GO", "NO-GO"]
    assert report.go is False
    assert report.verdict == "NO-GO"
    assert [r.id for r in report.refusals()] == ["promoted-from", "prod-guard"]

    add_release(ledger, "staging", head, verified=True)
    report = engine.for_command(
        "deploy", make_input(repo, config, ledger, "production", environ=GUARD_OK, sha=head)
    )
    assert report.verdict == "GO"
    assert report.refusals() == []


def test_for_command_skips_gates_that_do_not_apply(repo, config, ledger) -> None:
    head = git(repo, "rev-parse", "HEAD")
    report = engine.for_command("deploy", make_input(repo, config, ledger, "staging", sha=head))
    # No branches, work order, CI or blocker source configured: those gates do not apply.
    assert [r.id for r in report.results] == [
        "clean-tree",
        "migrations-explicit",
        "rollback-feasible",
        "prod-guard",
    ]
    assert report.verdict == "GO"
    for command in ("rollback", "migrate"):
        report = engine.for_command(command, make_input(repo, config, ledger, "production"))
        assert [r.id for r in report.results] == ["prod-guard"]
        assert report.verdict == "NO-GO"


def test_results_carry_duration_ms(repo, config, ledger) -> None:
    report = engine.for_command("deploy", make_input(repo, config, ledger, "production"))
    for result in report.results:
        assert isinstance(result.duration_ms, float)
        assert result.duration_ms >= 0.0
    # clean-tree runs git, which cannot take 0 ms
    assert report.results[0].duration_ms > 0.0


def test_result_to_dict_shape(repo, config, ledger) -> None:
    (repo / "app.py").write_text("dirty\n")
    report = engine.for_command("deploy", make_input(repo, config, ledger, "staging"))
    data = report.to_dict()
    assert set(data) == {"verdict", "gates"}
    assert data["verdict"] == "NO-GO"
    first = data["gates"][0]
    assert set(first) >= {"id", "verdict", "reason", "evidence", "findings", "duration_ms"}
    assert first["id"] == "clean-tree"
    assert first["findings"] == [
        {"file": "app.py", "line": None, "message": first["findings"][0]["message"]}
    ]
    assert set(first["findings"][0]) == {"file", "line", "message"}
    assert isinstance(first["duration_ms"], float)
    second = data["gates"][1]
    assert second["findings"] == []


def test_gate_result_to_dict_is_plain_json() -> None:
    import json

    from gonogo.gates.model import Finding

    result = GateResult("x", "NO-GO", "why", "what", (Finding("a.py", 3, "bad"),), 1.5)
    data = result.to_dict()
    assert data == {
        "id": "x",
        "verdict": "NO-GO",
        "reason": "why",
        "evidence": "what",
        "findings": [{"file": "a.py", "line": 3, "message": "bad"}],
        "duration_ms": 1.5,
        "fix": "",
        "override": None,
    }
    assert json.loads(json.dumps(data)) == data


def test_gates_change_nothing(repo, config, ledger) -> None:
    add_release(ledger, "staging", SHA, verified=True)
    before_events = ledger.events()
    before_status = git(repo, "status", "--porcelain")
    engine.for_command("deploy", make_input(repo, config, ledger, "production", environ=GUARD_OK))
    assert ledger.events() == before_events
    assert git(repo, "status", "--porcelain") == before_status
