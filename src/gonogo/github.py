"""A tiny GitHub REST client: the three read-only endpoints the gates need.

- `combined_status`: GET /repos/{owner}/{repo}/commits/{ref}/status
  → `state` (success | pending | failure | error) and `statuses[].context/state`.
  GitHub reports `pending` when there are no statuses at all.
- `check_runs`: GET /repos/{owner}/{repo}/commits/{ref}/check-runs
  → `total_count` and `check_runs[].name/status/conclusion/head_sha`, paginated.
- `open_issues`: GET /repos/{owner}/{repo}/issues?state=open&labels=X
  → `number`, `title`, `labels[].name`, `html_url`; pull requests come back too and are
  recognised by their `pull_request` key. GitHub ANDs comma-separated labels, so each
  label is asked for separately.

Every request goes through `gonogo.retry.call_with_retry` with the configured timeout as
its deadline. Failures raise `RemoteError` (GitHub's own `message` for 401/403/404/422, or
"malformed response" when the body is not the documented shape); the token never appears
in a message. Pagination follows the `Link: <…>; rel="next"` header, only to the API's own
origin (the token is never sent elsewhere), for a bounded number of pages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from gonogo.closing import OwnsHttpClient
from gonogo.retry import RemoteError, call_with_retry

__all__ = [
    "CheckRun",
    "CombinedStatus",
    "CommitStatus",
    "GitHub",
    "Issue",
    "RemoteError",
]

API_VERSION = "2022-11-28"
PER_PAGE = 100


@dataclass(frozen=True)
class CheckRun:
    name: str
    status: str  # queued | in_progress | completed | waiting | requested | pending
    conclusion: str | None  # success | failure | neutral | cancelled | skipped | timed_out | …
    head_sha: str
    url: str | None = None


@dataclass(frozen=True)
class CommitStatus:
    context: str
    state: str  # error | failure | pending | success
    description: str | None = None
    target_url: str | None = None


@dataclass(frozen=True)
class CombinedStatus:
    state: str  # failure | pending | success
    statuses: tuple[CommitStatus, ...]


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    labels: tuple[str, ...]
    html_url: str
    body: str = ""


def _loopback(url: httpx.URL) -> bool:
    return url.host in ("127.0.0.1", "localhost", "::1")


class GitHub(OwnsHttpClient):
    """GitHub REST API v3 over httpx. Use as a context manager, or call close()."""

    def __init__(
        self,
        api_url: str,
        token: str,
        timeout: float,
        client: httpx.Client | None = None,
        *,
        max_pages: int = 10,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            self._base = httpx.URL(api_url.rstrip("/") + "/")
        except (httpx.InvalidURL, TypeError) as exc:
            raise RemoteError(f"GitHub api_url {api_url!r} is not a URL") from exc
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise RemoteError(f"GitHub api_url {api_url!r} is not an http(s) URL")
        if self._base.scheme == "http" and not _loopback(self._base):
            raise RemoteError(
                f"GitHub api_url {api_url!r} is plain http; the token is only sent over https"
            )
        token = token.strip()  # a secret pasted with its trailing newline still works
        if not token or not all(33 <= ord(c) < 127 for c in token):
            # httpx would reject it in a header, and its error would quote the header value.
            raise RemoteError("the GitHub token is empty or contains spaces or control characters")
        self._token = token
        self.timeout = timeout
        self.max_pages = max_pages
        self.attempts = attempts
        self._sleep = sleep
        self._own_client = client is None
        # A proxy from the environment is honoured for the real API, never for a loopback one.
        self._client = client or httpx.Client(
            follow_redirects=False, trust_env=not _loopback(self._base)
        )
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token}",
            "User-Agent": "gonogo",
        }

    # -- lifecycle ------------------------------------------------------------------

    # -- plumbing -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._base.host

    def _clean(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "<redacted>")
        return " ".join(text.split())

    def _url(self, path: str) -> httpx.URL:
        return self._base.join(path.lstrip("/"))

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ) and url.path.startswith(self._base.path)

    def _get(self, url: httpx.URL, params: dict[str, str] | None = None) -> httpx.Response:
        deadline = time.monotonic() + self.timeout

        def once() -> httpx.Response:
            left = max(0.05, deadline - time.monotonic())
            return self._client.get(url, params=params, headers=self._headers, timeout=left)

        what = f"GitHub GET {url.path}"
        try:
            response = call_with_retry(
                once,
                deadline_s=self.timeout,
                attempts=self.attempts,
                sleep=self._sleep,
                host=self.host,
            )
        except RemoteError as exc:
            raise RemoteError(self._clean(f"{what}: {exc.message}"), status=exc.status) from None
        except httpx.HTTPError as exc:  # not a transport error: a bad URL, a bad header
            raise RemoteError(
                self._clean(f"{what}: {type(exc).__name__}: {exc}"), status=None
            ) from None
        if response.status_code >= 400:
            raise RemoteError(
                self._clean(f"{what}: HTTP {response.status_code} {self._message(response)}"),
                status=response.status_code,
            )
        if response.status_code != 200:
            raise RemoteError(
                self._clean(f"{what}: unexpected HTTP {response.status_code}"),
                status=response.status_code,
            )
        return response

    def _message(self, response: httpx.Response) -> str:
        """GitHub's `message` field, or the reason phrase when the body has none."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"])[:300]
        return response.reason_phrase or "error"

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                self._clean(
                    f"GitHub GET {response.request.url.path}: malformed response (not JSON)"
                )
            ) from None

    def _pages(
        self, path: str, params: dict[str, str], *, what: str
    ) -> Iterator[tuple[httpx.Response, Any]]:
        """Each page of a paginated listing, following Link rel="next" up to max_pages."""
        url: httpx.URL | None = self._url(path)
        query: dict[str, str] | None = {**params, "per_page": str(PER_PAGE)}
        pages = 0
        while url is not None:
            if pages >= self.max_pages:
                raise RemoteError(
                    f"GitHub: more than {self.max_pages} pages of {what}; "
                    "refusing to decide on a partial list"
                )
            response = self._get(url, query)
            pages += 1
            yield response, self._json(response)
            nxt = response.links.get("next", {}).get("url")
            if not nxt:
                return
            try:
                next_url = response.request.url.join(nxt)
            except httpx.InvalidURL:
                raise RemoteError(f"GitHub: malformed Link header in the {what} listing") from None
            if not self._same_origin(next_url):
                raise RemoteError(
                    f"GitHub: the {what} listing links to another origin "
                    f"({next_url.scheme}://{next_url.host}); not following it with the token"
                )
            url, query = next_url, None  # the next link carries its own query

    @staticmethod
    def _repo_path(repo: str) -> str:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise RemoteError(f"GitHub repository {repo!r} is not owner/name")
        return f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    def _malformed(self, what: str, detail: str) -> RemoteError:
        return RemoteError(self._clean(f"GitHub: malformed {what} response ({detail})"))

    # -- endpoints ------------------------------------------------------------------

    def combined_status(self, repo: str, sha: str) -> CombinedStatus:
        path = f"{self._repo_path(repo)}/commits/{quote(sha, safe='')}/status"
        statuses: list[CommitStatus] = []
        state: str | None = None
        total: int | None = None
        # The combined `state` is the same on every page.
        for _response, body in self._pages(path, {}, what="commit statuses"):
            if not isinstance(body, dict):
                raise self._malformed("combined status", "not an object")
            page_state, items = body.get("state"), body.get("statuses")
            if not isinstance(page_state, str) or not isinstance(items, list):
                raise self._malformed("combined status", "no state or statuses")
            state = page_state
            for item in items:
                if not isinstance(item, dict):
                    raise self._malformed("combined status", "a status is not an object")
                context, st = item.get("context"), item.get("state")
                if not isinstance(context, str) or not isinstance(st, str):
                    raise self._malformed("combined status", "a status has no context or state")
                desc, target = item.get("description"), item.get("target_url")
                statuses.append(
                    CommitStatus(
                        context,
                        st,
                        desc if isinstance(desc, str) else None,
                        target if isinstance(target, str) else None,
                    )
                )
            count = body.get("total_count")
            total = count if isinstance(count, int) else total
        assert state is not None
        if total is not None and len(statuses) < total:
            raise RemoteError(
                f"GitHub: listed {len(statuses)} of {total} commit statuses; "
                "refusing to decide on a partial list"
            )
        return CombinedStatus(state, tuple(statuses))

    def check_runs(self, repo: str, sha: str) -> list[CheckRun]:
        path = f"{self._repo_path(repo)}/commits/{quote(sha, safe='')}/check-runs"
        runs: list[CheckRun] = []
        total: int | None = None
        for _response, body in self._pages(path, {"filter": "latest"}, what="check runs"):
            if not isinstance(body, dict):
                raise self._malformed("check runs", "not an object")
            count, items = body.get("total_count"), body.get("check_runs")
            if not isinstance(count, int) or not isinstance(items, list):
                raise self._malformed("check runs", "no total_count or check_runs")
            total = count
            for item in items:
                if not isinstance(item, dict):
                    raise self._malformed("check runs", "a check run is not an object")
                name, status = item.get("name"), item.get("status")
                conclusion, head = item.get("conclusion"), item.get("head_sha")
                if not isinstance(name, str) or not isinstance(status, str):
                    raise self._malformed("check runs", "a check run has no name or status")
                if conclusion is not None and not isinstance(conclusion, str):
                    raise self._malformed("check runs", f"{name}: conclusion is not a string")
                if not isinstance(head, str):
                    raise self._malformed("check runs", f"{name}: no head_sha")
                url = item.get("html_url")
                runs.append(
                    CheckRun(name, status, conclusion, head, url if isinstance(url, str) else None)
                )
        if total is not None and len(runs) < total:
            raise RemoteError(
                f"GitHub: listed {len(runs)} of {total} check runs; "
                "refusing to decide on a partial list"
            )
        return runs

    def open_issues(self, repo: str, labels: list[str]) -> list[Issue]:
        """Open issues (not pull requests) carrying any of `labels`, by number, no repeats."""
        path = f"{self._repo_path(repo)}/issues"
        found: dict[int, Issue] = {}
        for label in labels:
            params = {"state": "open", "labels": label}
            for _response, body in self._pages(path, params, what=f"issues labelled {label}"):
                if not isinstance(body, list):
                    raise self._malformed("issues", "not a list")
                for item in body:
                    issue = self._issue(item)
                    if issue is not None:
                        found.setdefault(issue.number, issue)
        return [found[n] for n in sorted(found)]

    def _issue(self, item: object) -> Issue | None:
        if not isinstance(item, dict):
            raise self._malformed("issues", "an issue is not an object")
        if item.get("pull_request") is not None:
            return None
        number, title, url = item.get("number"), item.get("title"), item.get("html_url")
        raw_labels = item.get("labels", [])
        if not isinstance(number, int) or isinstance(number, bool):
            raise self._malformed("issues", "an issue has no number")
        if not isinstance(title, str) or not isinstance(url, str):
            raise self._malformed("issues", f"#{number} has no title or html_url")
        if not isinstance(raw_labels, list):
            raise self._malformed("issues", f"#{number}: labels is not a list")
        names: list[str] = []
        for label in raw_labels:
            # The schema allows a label as an object with `name` or as a bare string.
            if isinstance(label, dict) and isinstance(label.get("name"), str):
                names.append(label["name"])
            elif isinstance(label, str):
                names.append(label)
            else:
                raise self._malformed("issues", f"#{number}: a label has no name")
        body = item.get("body")
        return Issue(number, title, tuple(names), url, body if isinstance(body, str) else "")
