"""no-blockers against a real fake GitHub and real commands."""

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
from gonogo.gates.builtin.no_blockers import NoBlockers
from gonogo.gates.model import GateInput, GateResult
from gonogo.ledger import Ledger

# pytest puts tests/unit (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import github as fake_github
from fakes.github import TOKEN, FakeGitHub

github_fake = fake_github.github_fake  # the fixture, for this module's tests

REPO = "acme/app"
SHA = "0123456789abcdef0123456789abcdef01234567"
PATH_ONLY = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def config(nb: Mapping[str, Any] | None) -> Config:
    gates: dict[str, Any] = {} if nb is None else {"no-blockers": dict(nb)}
    return Config.model_validate(
        {
            "project": {"name": "nb-test"},
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
    def make(cfg: Config, environ: Mapping[str, str] | None = None) -> GateInput:
        return GateInput(
            root=tmp_path,
            config=cfg,
            env="staging",
            ledger=ledger,
            environ=dict(environ or {}),
            sha=SHA,
        )

    return make


def source(fake: FakeGitHub, **extra: Any) -> dict[str, Any]:
    return {"repo": REPO, "api_url": fake.url, "timeout": "2s", **extra}


def evaluate(inp: GateInput) -> GateResult:
    result = NoBlockers().evaluate(inp)
    json.dumps(result.to_dict())
    return result


def test_applies_only_when_configured(make: Any) -> None:
    assert not NoBlockers().applies(make(config(None)))
    assert NoBlockers().applies(make(config({"command": "true"})))
    assert NoBlockers().overridable


def test_no_open_blockers_is_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_issue(REPO, 1, "Polish the footer", ["P3"])
    github_fake.add_issue(REPO, 2, "Old outage", ["P0"], state="closed")
    github_fake.add_issue(REPO, 3, "Hotfix for checkout", ["P0"], pull_request=True)
    result = evaluate(make(config({"github": source(github_fake)}), {"GITHUB_TOKEN": TOKEN}))
    assert result.verdict == "GO", result.reason
    assert result.reason == "no open issues labelled P0 or P1 in acme/app"
    assert result.evidence == "GitHub open issues in acme/app labelled P0 or P1"
    assert [r.query["labels"] for r in github_fake.seen("/issues")] == [["P0"], ["P1"]]


def test_open_p0_p1_issues_block(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_issue(REPO, 123, "Checkout broken", ["P1", "bug"])
    github_fake.add_issue(REPO, 7, "Data loss on save", ["P0", "P1"])
    github_fake.add_issue(REPO, 9, "Typo", ["P2"])
    result = evaluate(make(config({"github": source(github_fake)}), {"GITHUB_TOKEN": TOKEN}))
    assert result.verdict == "NO-GO"
    assert result.reason.startswith(
        "2 open blocker issue(s): #7 Data loss on save [P0, P1]; #123 Checkout broken [P1, bug]"
    )
    assert "blocks every release" in result.reason
    assert [(f.file, f.line) for f in result.findings] == [
        (f"https://github.com/{REPO}/issues/7", None),
        (f"https://github.com/{REPO}/issues/123", None),
    ]
    assert result.findings[1].message == "#123 Checkout broken [P1, bug]"


def test_configured_labels(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_issue(REPO, 1, "Sev1 incident", ["sev1"])
    github_fake.add_issue(REPO, 2, "P1 by old scheme", ["P1"])
    cfg = config({"github": source(github_fake), "labels": ["sev1"]})
    result = evaluate(make(cfg, {"GITHUB_TOKEN": TOKEN}))
    assert result.verdict == "NO-GO"
    assert [f.message for f in result.findings] == ["#1 Sev1 incident [sev1]"]


def test_many_issues_are_paginated_and_summarised(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.max_per_page = 3
    for n in range(1, 9):
        github_fake.add_issue(REPO, n, f"bug {n}", ["P1"])
    result = evaluate(make(config({"github": source(github_fake)}), {"GITHUB_TOKEN": TOKEN}))
    assert result.verdict == "NO-GO"
    assert len(result.findings) == 8
    assert "and 3 more" in result.reason


def test_no_token_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    result = evaluate(make(config({"github": source(github_fake)}), {}))
    assert result.verdict == "NO-GO"
    assert result.reason == "cannot read GitHub issues: token GITHUB_TOKEN not set"
    assert github_fake.seen() == []


def test_api_down_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_repo(REPO)
    github_fake.fail_next(1000, "500")
    cfg = config({"github": source(github_fake, timeout="1s")})
    started = time.monotonic()
    result = evaluate(make(cfg, {"GITHUB_TOKEN": TOKEN}))
    assert time.monotonic() - started < 4
    assert result.verdict == "NO-GO"
    assert result.reason.startswith("cannot read GitHub issues: ")
    assert "HTTP 500" in result.reason


def test_malformed_response_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_repo(REPO)
    github_fake.fail_next(1, "malformed")
    result = evaluate(make(config({"github": source(github_fake)}), {"GITHUB_TOKEN": TOKEN}))
    assert result.verdict == "NO-GO"
    assert "malformed" in result.reason


def test_bad_token_is_no_go_and_never_shown(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_repo(REPO)
    secret = "ghp_WrongButSecret1234567890abcdef"
    cfg = config({"github": source(github_fake, token_env="ISSUES_PAT")})
    result = evaluate(make(cfg, {"ISSUES_PAT": secret}))
    assert result.verdict == "NO-GO"
    assert "Bad credentials" in result.reason
    assert secret not in json.dumps(result.to_dict())


def test_unknown_repo_is_no_go(github_fake: FakeGitHub, make: Any) -> None:
    result = evaluate(make(config({"github": source(github_fake)}), {"GITHUB_TOKEN": TOKEN}))
    assert result.verdict == "NO-GO"
    assert "Not Found" in result.reason


def test_command_source(make: Any) -> None:
    ok = config({"command": "test {sha} = " + SHA + " && test {env} = staging"})
    assert evaluate(make(ok, PATH_ONLY)).verdict == "GO"
    blocked = config({"command": "echo 'JIRA: OPS-12 open (Blocker)'; exit 1"})
    result = evaluate(make(blocked, PATH_ONLY))
    assert result.verdict == "NO-GO"
    assert result.reason.endswith("exited 1: JIRA: OPS-12 open (Blocker)")


def test_command_timeout(make: Any) -> None:
    cfg = config({"command": "sleep 30", "timeout": "0.5s"})
    result = evaluate(make(cfg, PATH_ONLY))
    assert result.verdict == "NO-GO"
    assert "timed out after 0.5s" in result.reason


def test_both_sources_must_be_go(github_fake: FakeGitHub, make: Any) -> None:
    github_fake.add_repo(REPO)
    env = {"GITHUB_TOKEN": TOKEN, **PATH_ONLY}
    both_go = config({"github": source(github_fake), "command": "true"})
    result = evaluate(make(both_go, env))
    assert result.verdict == "GO"
    assert "GitHub open issues" in result.evidence and "command `true`" in result.evidence

    command_no = config({"github": source(github_fake), "command": "echo blocked; exit 1"})
    result = evaluate(make(command_no, env))
    assert result.verdict == "NO-GO"
    assert result.reason.endswith("exited 1: blocked")

    github_fake.add_issue(REPO, 5, "Outage", ["P0"])
    github_no = config({"github": source(github_fake), "command": "true"})
    result = evaluate(make(github_no, env))
    assert result.verdict == "NO-GO"
    assert "#5 Outage [P0]" in result.reason


def test_no_source_configured_is_no_go(make: Any) -> None:
    result = evaluate(make(config({})))
    assert result.verdict == "NO-GO"
    assert result.reason == "no source to read blockers from"
