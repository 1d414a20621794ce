"""Where a run ran: the CI system's run (URL, workflow, actor, ref), or a person's machine.

Recorded with every run so the ledger answers "which pipeline did this" without digging
through CI logs (playbook §10: the audit trail was spread over CI logs and evidence files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _github(environ: Mapping[str, str]) -> dict[str, Any]:
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo = environ.get("GITHUB_REPOSITORY", "")
    run_id = environ.get("GITHUB_RUN_ID", "")
    attempt = environ.get("GITHUB_RUN_ATTEMPT", "")
    url = f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else None
    if url and attempt:
        url += f"/attempts/{attempt}"
    return {
        "ci": "github-actions",
        "url": url,
        "workflow": environ.get("GITHUB_WORKFLOW"),
        "job": environ.get("GITHUB_JOB"),
        "actor": environ.get("GITHUB_ACTOR"),
        "ref": environ.get("GITHUB_REF"),
        "sha": environ.get("GITHUB_SHA"),
        "repository": repo or None,
        "event": environ.get("GITHUB_EVENT_NAME"),
    }


def _gitlab(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        "ci": "gitlab-ci",
        "url": environ.get("CI_JOB_URL") or environ.get("CI_PIPELINE_URL"),
        "workflow": environ.get("CI_PIPELINE_ID"),
        "job": environ.get("CI_JOB_NAME"),
        "actor": environ.get("GITLAB_USER_LOGIN"),
        "ref": environ.get("CI_COMMIT_REF_NAME"),
        "sha": environ.get("CI_COMMIT_SHA"),
        "repository": environ.get("CI_PROJECT_PATH"),
        "event": environ.get("CI_PIPELINE_SOURCE"),
    }


def run_origin(environ: Mapping[str, str], *, user: str, host: str) -> dict[str, Any]:
    """A small JSON-able description of where this process runs. Never includes secrets:
    only the CI's public identifiers are read."""
    if environ.get("GITHUB_ACTIONS") == "true":
        found = _github(environ)
    elif environ.get("GITLAB_CI") == "true":
        found = _gitlab(environ)
    elif environ.get("CI"):
        found = {"ci": "unknown-ci", "url": environ.get("BUILD_URL")}
    else:
        found = {"ci": None}
    found = {k: v for k, v in found.items() if v is not None or k == "ci"}
    found.update(user=user, host=host)
    return found


def describe(origin: Mapping[str, Any]) -> str:
    if origin.get("ci") == "github-actions":
        what = f"GitHub Actions {origin.get('workflow') or ''}".strip()
        by = f" by {origin['actor']}" if origin.get("actor") else ""
        return f"{what}{by} on {origin.get('ref', '?')}: {origin.get('url', '')}".rstrip(": ")
    if origin.get("ci"):
        return f"{origin['ci']} {origin.get('url') or ''}".strip()
    return f"{origin.get('user')}@{origin.get('host')}"
