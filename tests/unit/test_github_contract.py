"""Contract of the GitHub client against the fake, and of the fake against GitHub's docs.

The documented shapes below are from the REST API reference (version 2022-11-28):
"List check runs for a Git reference", "Get the combined status for a specific reference"
and "List repository issues". Only the fields gonogo relies on are pinned; the fake must
serve them with these types and values, and the client must read them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import NoneType
from typing import Any

import httpx
import pytest

from gonogo.github import CheckRun, GitHub
from gonogo.retry import RemoteError

# pytest puts tests/unit (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import github as fake_github
from fakes.github import TOKEN, FakeGitHub

github_fake = fake_github.github_fake  # the fixture, for this module's tests

REPO = "acme/app"
SHA = "0123456789abcdef0123456789abcdef01234567"

# -- the documented shapes ---------------------------------------------------------------

CHECK_RUNS_RESPONSE: dict[str, type | tuple[type, ...]] = {
    "total_count": int,
    "check_runs": list,
}
CHECK_RUN: dict[str, type | tuple[type, ...]] = {
    "id": int,
    "name": str,
    "head_sha": str,
    "status": str,
    "conclusion": (str, NoneType),
    "html_url": (str, NoneType),
}
CHECK_RUN_STATUSES = {"queued", "in_progress", "completed", "waiting", "requested", "pending"}
CHECK_RUN_CONCLUSIONS = {
    "success",
    "failure",
    "neutral",
    "cancelled",
    "skipped",
    "timed_out",
    "action_required",
    "stale",
    "startup_failure",
    None,
}
COMBINED_STATUS: dict[str, type | tuple[type, ...]] = {
    "state": str,
    "statuses": list,
    "sha": str,
    "total_count": int,
}
COMBINED_STATES = {"success", "pending", "failure"}
COMMIT_STATUS: dict[str, type | tuple[type, ...]] = {
    "context": str,
    "state": str,
    "description": (str, NoneType),
    "target_url": (str, NoneType),
}
COMMIT_STATUS_STATES = {"error", "failure", "pending", "success"}
ISSUE: dict[str, type | tuple[type, ...]] = {
    "number": int,
    "title": str,
    "state": str,
    "labels": list,
    "html_url": str,
    "body": (str, NoneType),
}
LABEL: dict[str, type | tuple[type, ...]] = {"name": str}
ERROR: dict[str, type | tuple[type, ...]] = {"message": str, "documentation_url": str}


def assert_shape(obj: Any, shape: dict[str, type | tuple[type, ...]]) -> None:
    assert isinstance(obj, dict)
    missing = set(shape) - set(obj)
    assert not missing, f"missing documented fields {sorted(missing)}"
    for key, kind in shape.items():
        assert isinstance(obj[key], kind), f"{key}: {type(obj[key]).__name__}, expected {kind}"


def raw_get(fake: FakeGitHub, path: str, token: str = TOKEN, **params: str) -> httpx.Response:
    with httpx.Client(trust_env=False) as client:
        return client.get(
            f"{fake.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
        )


def client(fake: FakeGitHub, **kw: Any) -> GitHub:
    options: dict[str, Any] = {"timeout": 5.0}
    options.update(kw)
    token = options.pop("token", fake.token)
    return GitHub(fake.url, token, **options)


@pytest.fixture
def populated(github_fake: FakeGitHub) -> FakeGitHub:
    fake = github_fake
    fake.add_check_run(REPO, SHA, "build")
    fake.add_check_run(REPO, SHA, "lint", conclusion="failure")
    fake.add_check_run(REPO, SHA, "e2e", status="in_progress")
    fake.add_status(REPO, SHA, "ci/jenkins", "success", "Build #12 passed")
    fake.add_status(REPO, SHA, "security", "pending")
    fake.add_issue(REPO, 12, "Checkout broken", ["P1", "bug"], body="Seen on WO-7")
    fake.add_issue(REPO, 13, "Data loss", ["P0", "P1"])
    fake.add_issue(REPO, 14, "Typo", ["P3"])
    fake.add_issue(REPO, 15, "Fix checkout", ["P1"], pull_request=True)
    fake.add_issue(REPO, 16, "Old outage", ["P0"], state="closed")
    return fake


# -- the fake serves the documented shapes -------------------------------------------------


def test_fake_check_runs_have_the_documented_shape(populated: FakeGitHub) -> None:
    res = raw_get(populated, f"/repos/{REPO}/commits/{SHA}/check-runs")
    assert res.status_code == 200
    body = res.json()
    assert_shape(body, CHECK_RUNS_RESPONSE)
    assert body["total_count"] == 3
    for run in body["check_runs"]:
        assert_shape(run, CHECK_RUN)
        assert run["status"] in CHECK_RUN_STATUSES
        assert run["conclusion"] in CHECK_RUN_CONCLUSIONS
        assert run["head_sha"] == SHA
        # A run that has not completed has no conclusion yet.
        assert (run["status"] == "completed") == (run["conclusion"] is not None)


def test_fake_combined_status_has_the_documented_shape(populated: FakeGitHub) -> None:
    body = raw_get(populated, f"/repos/{REPO}/commits/{SHA}/status").json()
    assert_shape(body, COMBINED_STATUS)
    assert body["state"] in COMBINED_STATES
    assert body["state"] == "pending"  # one context is pending
    for status in body["statuses"]:
        assert_shape(status, COMMIT_STATUS)
        assert status["state"] in COMMIT_STATUS_STATES


def test_fake_combined_state_follows_the_documented_rules(github_fake: FakeGitHub) -> None:
    github_fake.add_commit(REPO, SHA)
    # "pending if there are no statuses"
    assert raw_get(github_fake, f"/repos/{REPO}/commits/{SHA}/status").json()["state"] == "pending"
    github_fake.add_status(REPO, SHA, "a", "success")
    assert raw_get(github_fake, f"/repos/{REPO}/commits/{SHA}/status").json()["state"] == "success"
    github_fake.add_status(REPO, SHA, "b", "error")
    assert raw_get(github_fake, f"/repos/{REPO}/commits/{SHA}/status").json()["state"] == "failure"


def test_fake_issues_have_the_documented_shape(populated: FakeGitHub) -> None:
    body = raw_get(populated, f"/repos/{REPO}/issues", state="open", labels="P1").json()
    assert isinstance(body, list)
    assert {i["number"] for i in body} == {12, 13, 15}  # the pull request is listed too
    for issue in body:
        assert_shape(issue, ISSUE)
        for label in issue["labels"]:
            assert_shape(label, LABEL)
    pr = next(i for i in body if i["number"] == 15)
    assert isinstance(pr["pull_request"], dict)
    assert all("pull_request" not in i for i in body if i["number"] != 15)


def test_fake_ands_comma_separated_labels(populated: FakeGitHub) -> None:
    body = raw_get(populated, f"/repos/{REPO}/issues", state="open", labels="P0,P1").json()
    assert [i["number"] for i in body] == [13]


def test_fake_errors_have_the_documented_shape(populated: FakeGitHub) -> None:
    res = raw_get(populated, f"/repos/{REPO}/issues", token="wrong")
    assert res.status_code == 401
    assert_shape(res.json(), ERROR)
    assert res.json()["message"] == "Bad credentials"
    res = raw_get(populated, "/repos/acme/nope/issues")
    assert res.status_code == 404
    assert res.json()["message"] == "Not Found"
    res = raw_get(populated, f"/repos/{REPO}/commits/{'f' * 40}/status")
    assert res.status_code == 404


def test_fake_rate_limit_headers(populated: FakeGitHub) -> None:
    res = raw_get(populated, f"/repos/{REPO}/issues")
    assert int(res.headers["x-ratelimit-remaining"]) > 0
    populated.fail_next(1, "403-rate-limit", reset_in=30)
    res = raw_get(populated, f"/repos/{REPO}/issues")
    assert res.status_code == 403
    assert res.headers["x-ratelimit-remaining"] == "0"
    assert int(res.headers["x-ratelimit-reset"]) >= int(time.time()) + 29
    populated.fail_next(1, "429", retry_after=3)
    res = raw_get(populated, f"/repos/{REPO}/issues")
    assert res.status_code == 429
    assert res.headers["retry-after"] == "3"


# -- the client reads them ---------------------------------------------------------------------


def test_client_sends_the_documented_headers(populated: FakeGitHub) -> None:
    with client(populated) as gh:
        gh.check_runs(REPO, SHA)
    seen = populated.seen("/check-runs")[0]
    assert seen.headers["accept"] == "application/vnd.github+json"
    assert seen.headers["x-github-api-version"] == "2022-11-28"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.query["per_page"] == ["100"]


def test_client_parses_check_runs(populated: FakeGitHub) -> None:
    with client(populated) as gh:
        runs = gh.check_runs(REPO, SHA)
    by_name = {r.name: r for r in runs}
    assert set(by_name) == {"build", "lint", "e2e"}
    assert by_name["build"] == CheckRun("build", "completed", "success", SHA, by_name["build"].url)
    assert by_name["lint"].conclusion == "failure"
    assert by_name["e2e"].status == "in_progress"
    assert by_name["e2e"].conclusion is None


def test_client_parses_combined_status(populated: FakeGitHub) -> None:
    with client(populated) as gh:
        combined = gh.combined_status(REPO, SHA)
    assert combined.state == "pending"
    assert [(s.context, s.state) for s in combined.statuses] == [
        ("ci/jenkins", "success"),
        ("security", "pending"),
    ]
    assert combined.statuses[0].description == "Build #12 passed"


def test_client_lists_open_issues_one_call_per_label_without_pull_requests(
    populated: FakeGitHub,
) -> None:
    with client(populated) as gh:
        issues = gh.open_issues(REPO, ["P0", "P1"])
    assert [i.number for i in issues] == [12, 13]  # no PR #15, no closed #16, no repeat of #13
    assert issues[0].labels == ("P1", "bug")
    assert issues[0].html_url == f"https://github.com/{REPO}/issues/12"
    assert issues[0].body == "Seen on WO-7"
    asked = [r.query["labels"] for r in populated.seen("/issues")]
    assert asked == [["P0"], ["P1"]]
    assert all(r.query["state"] == ["open"] for r in populated.seen("/issues"))


# -- pagination --------------------------------------------------------------------------------


def test_pagination_follows_link_next(github_fake: FakeGitHub) -> None:
    github_fake.max_per_page = 2
    for n in range(5):
        github_fake.add_check_run(REPO, SHA, f"job-{n}")
        github_fake.add_status(REPO, SHA, f"ctx-{n}", "success")
        github_fake.add_issue(REPO, n + 1, f"issue {n}", ["P1"])
    with client(github_fake) as gh:
        assert [r.name for r in gh.check_runs(REPO, SHA)] == [f"job-{n}" for n in range(5)]
        assert len(gh.combined_status(REPO, SHA).statuses) == 5
        assert [i.number for i in gh.open_issues(REPO, ["P1"])] == [1, 2, 3, 4, 5]
    pages = github_fake.seen("/check-runs")
    assert [r.query.get("page") for r in pages] == [None, ["2"], ["3"]]


def test_pagination_is_bounded(github_fake: FakeGitHub) -> None:
    github_fake.max_per_page = 1
    for n in range(5):
        github_fake.add_check_run(REPO, SHA, f"job-{n}")
    with client(github_fake, max_pages=3) as gh, pytest.raises(RemoteError) as err:
        gh.check_runs(REPO, SHA)
    assert "more than 3 pages" in str(err.value)
    assert len(github_fake.seen("/check-runs")) == 3


def test_next_link_to_another_origin_is_not_followed_with_the_token() -> None:
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(
            200,
            json={"total_count": 2, "check_runs": []},
            headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'},
        )

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        GitHub("https://api.github.com", TOKEN, 5.0, client=http) as gh,
        pytest.raises(RemoteError) as err,
    ):
        gh.check_runs(REPO, SHA)
    assert "another origin" in str(err.value)
    assert [r.url.host for r in asked] == ["api.github.com"]


# -- errors ------------------------------------------------------------------------------------


def test_bad_credentials_is_a_remote_error_without_the_token(populated: FakeGitHub) -> None:
    secret = "ghp_ThisIsTheWrongTokenButStillSecret42"
    with client(populated, token=secret) as gh, pytest.raises(RemoteError) as err:
        gh.check_runs(REPO, SHA)
    assert err.value.status == 401
    assert "Bad credentials" in str(err.value)
    assert secret not in str(err.value)
    assert len(populated.seen("/check-runs")) == 1  # a 401 is not retried


def test_unknown_repo_is_not_found(populated: FakeGitHub) -> None:
    with client(populated) as gh, pytest.raises(RemoteError) as err:
        gh.open_issues("acme/nope", ["P1"])
    assert err.value.status == 404
    assert "Not Found" in str(err.value)


def test_retries_then_answers(populated: FakeGitHub) -> None:
    populated.fail_next(1, "500")
    populated.fail_next(1, "drop")
    populated.fail_next(1, "429", retry_after=0.05)
    with client(populated) as gh:
        assert len(gh.check_runs(REPO, SHA)) == 3
    assert len(populated.seen("/check-runs")) == 4


def test_rate_limit_reset_past_the_deadline_fails_fast(populated: FakeGitHub) -> None:
    populated.fail_next(1, "403-rate-limit", reset_in=3600)
    started = time.monotonic()
    with client(populated, timeout=5.0) as gh, pytest.raises(RemoteError) as err:
        gh.check_runs(REPO, SHA)
    assert time.monotonic() - started < 2
    assert "rate limited" in str(err.value) and "deadline" in str(err.value)


def test_slow_response_is_cut_at_the_deadline(populated: FakeGitHub) -> None:
    populated.fail_next(1, "slow", delay=3.0)
    started = time.monotonic()
    with client(populated, timeout=0.5) as gh, pytest.raises(RemoteError) as err:
        gh.check_runs(REPO, SHA)
    assert time.monotonic() - started < 2
    assert "Timeout" in str(err.value)


def test_malformed_body_is_a_remote_error(populated: FakeGitHub) -> None:
    populated.fail_next(1, "malformed")
    with client(populated) as gh, pytest.raises(RemoteError) as err:
        gh.combined_status(REPO, SHA)
    assert "malformed" in str(err.value)


def test_wrong_shape_is_a_remote_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"check_runs": [{"name": "x"}], "total_count": 1})

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        GitHub("https://api.github.com", TOKEN, 5.0, client=http) as gh,
        pytest.raises(RemoteError) as err,
    ):
        gh.check_runs(REPO, SHA)
    assert "malformed check runs" in str(err.value)


@pytest.mark.parametrize("fault", ["500", "drop", "malformed", "403-rate-limit", "401"])
def test_the_token_never_appears_in_a_remote_error(populated: FakeGitHub, fault: str) -> None:
    token = populated.token
    if fault == "401":
        populated.token = "something-else"
    else:
        populated.fail_next(100, fault, reset_in=3600)  # more than 3 calls can use
    with client(populated, token=token, timeout=0.5) as gh:
        for call in (
            lambda: gh.check_runs(REPO, SHA),
            lambda: gh.combined_status(REPO, SHA),
            lambda: gh.open_issues(REPO, ["P1"]),
        ):
            with pytest.raises(RemoteError) as err:
                call()
            assert token not in str(err.value)
            assert token not in repr(err.value.args)


def test_the_token_is_never_sent_over_plain_http_to_a_remote_host() -> None:
    with pytest.raises(RemoteError) as err:
        GitHub("http://github.example.com/api/v3", TOKEN, 5.0)
    assert "https" in str(err.value)
    assert TOKEN not in str(err.value)


def test_a_token_with_a_trailing_newline_works_and_a_broken_one_is_refused(
    populated: FakeGitHub,
) -> None:
    with GitHub(populated.url, populated.token + "\n", 5.0) as gh:
        assert len(gh.check_runs(REPO, SHA)) == 3
    broken = "ghp_first\nsecond-half-of-secret"
    with pytest.raises(RemoteError) as err:
        GitHub(populated.url, broken, 5.0)
    assert "second-half-of-secret" not in str(err.value)
