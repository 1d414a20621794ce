"""`gonogo history [ENV]`: what happened, newest first, with filters."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_history_is_a_filtered_timeline(project: Any) -> None:
    first = project.head()
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("migrate", "staging", "approve", "--note", "dba ok", check=0)
    project.gonogo("migrate", "staging", "apply", check=0)
    (project.root / "README.md").write_text("second\n")
    second = project.commit("WO-2: second change")
    project.gonogo("deploy", "staging", check=0)
    project.gonogo("rollback", "staging", check=0)

    doc = project.json("history", "staging", check=0)
    kinds = [e["kind"] for e in doc["entries"]]
    for kind in ("release.created", "release.verified", "migration.approved",
                 "migration.applied", "rollback", "run.finished"):
        assert kind in kinds, kind
    stamps = [e["ts"] for e in doc["entries"]]
    assert stamps == sorted(stamps, reverse=True)
    assert kinds.index("rollback") < kinds.index("migration.applied")  # newest first
    applied = next(e for e in doc["entries"] if e["kind"] == "migration.applied")
    assert applied["actor"] == "tester" and "0003_create_audit_log" in applied["text"]

    by_sha = project.json("history", "staging", "--sha", second[:8], check=0)
    assert by_sha["runs"] and {r["sha"] for r in by_sha["runs"]} == {second}
    assert all(e["sha"] in (second, None) for e in by_sha["entries"])

    wo = project.json("history", "staging", "--work-order", "WO-2", check=0)
    assert {r["sha"] for r in wo["runs"]} == {second}
    wo1 = project.json("history", "staging", "--work-order", "wo-1", check=0)
    assert first in {r["sha"] for r in wo1["runs"]} and second not in {
        r["sha"] for r in wo1["runs"]
    }

    assert project.json("history", "staging", "--since", "10m", check=0)["entries"]
    future = project.json("history", "staging", "--since", "2999-01-01", check=0)
    assert future["entries"] == [] and future["runs"] == []
    bad = project.gonogo("history", "staging", "--since", "last tuesday", check=1)
    assert "--since" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    human = project.gonogo("history", check=0).stdout
    assert "all environments" in human and "migrated base → 0003_create_audit_log" in human


def test_every_run_records_where_it_ran(project: Any) -> None:
    ci = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/webapp",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKFLOW": "release",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_REF": "refs/heads/main",
    }
    project.gonogo("deploy", "staging", env=ci, check=0)
    project.gonogo("migrate", "staging", "approve", check=0)
    runs = project.json("history", "staging", check=0)["runs"]
    verify_run, deploy_run = runs[0], runs[1]  # the approve run is the local one
    assert deploy_run["origin"]["ci"] == "github-actions"
    assert deploy_run["origin"]["url"] == "https://github.com/acme/webapp/actions/runs/4242"
    assert deploy_run["origin"]["actor"] == "octocat"
    assert deploy_run["origin"]["ref"] == "refs/heads/main"
    assert verify_run["origin"]["ci"] is None and verify_run["origin"]["user"] == "tester"
    assert project.gonogo("audit", "verify", check=0).returncode == 0


def test_an_automatic_rollback_is_in_the_timeline(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    project.set_vars(staging_vars='WEBAPP_HEALTH_500 = "1"', deadline="3s")
    project.gonogo("deploy", "staging", check=3)
    doc = project.json("history", "staging", check=0)
    (auto,) = [e for e in doc["entries"] if e["kind"] == "rollback.automatic"]
    assert auto["text"].startswith("rolled back automatically v2 → v1 after: ")
    assert "rolled back automatically v2 → v1" in project.gonogo("history", check=0).stdout
