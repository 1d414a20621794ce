"""Where a run ran: GitHub Actions, GitLab CI, another CI, or a person's machine."""

from __future__ import annotations

from gonogo.origin import describe, run_origin


def test_github_actions_run_url_workflow_actor_ref() -> None:
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_RUN_ID": "123",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_WORKFLOW": "deploy",
        "GITHUB_ACTOR": "octo",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_TOKEN": "ghs_secret_value",
    }
    origin = run_origin(environ, user="runner", host="fv-az1")
    assert origin["ci"] == "github-actions"
    assert origin["url"] == "https://github.com/acme/app/actions/runs/123/attempts/2"
    assert origin["workflow"] == "deploy" and origin["actor"] == "octo"
    assert origin["ref"] == "refs/heads/main" and origin["host"] == "fv-az1"
    assert "ghs_secret_value" not in repr(origin)
    assert describe(origin).startswith("GitHub Actions deploy by octo on refs/heads/main")


def test_gitlab_and_unknown_ci_and_local() -> None:
    gitlab = run_origin(
        {"GITLAB_CI": "true", "CI_JOB_URL": "https://gitlab.example/j/9", "CI": "true"},
        user="u",
        host="h",
    )
    assert gitlab["ci"] == "gitlab-ci" and gitlab["url"] == "https://gitlab.example/j/9"
    other = run_origin({"CI": "1"}, user="u", host="h")
    assert other["ci"] == "unknown-ci"
    local = run_origin({}, user="alice", host="laptop")
    assert local == {"ci": None, "user": "alice", "host": "laptop"}
    assert describe(local) == "alice@laptop"
