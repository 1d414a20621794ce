"""A fake GitHub REST API on 127.0.0.1, following the public API's documented shapes.

Endpoints (GET only, API version 2022-11-28):

- /repos/{owner}/{repo}/commits/{ref}/check-runs  → {"total_count", "check_runs": [...]}
- /repos/{owner}/{repo}/commits/{ref}/status      → {"state", "statuses": [...], "sha",
                                                      "total_count", "repository", ...}
- /repos/{owner}/{repo}/issues?state=&labels=     → [issue, ...] (pull requests included,
                                                      marked by a "pull_request" key)

Like GitHub: `per_page` (default 30, at most 100; `max_per_page` lowers the cap so tests can
paginate small lists) and `page`, a `Link` header with rel="next"/"last"/"first"/"prev",
comma-separated labels that must all match, 401 {"message": "Bad credentials"} for a wrong
token, 404 {"message": "Not Found"} for an unknown repository or commit, and the
x-ratelimit-* headers on every response.

Faults for the next N requests: "500", "429" (with Retry-After), "403-rate-limit"
(x-ratelimit-remaining: 0 and a reset time), "slow" (answers after a delay), "drop" (closes
the connection without answering), "malformed" (200 with a body that is not JSON).

Use the `github_fake` fixture, or `with FakeGitHub.serve() as fake:`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

TOKEN = "ghp_FakeToken0123456789abcdefABCDEF0123"
DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000


@dataclass
class Fault:
    kind: str  # "500" | "429" | "403-rate-limit" | "slow" | "drop" | "malformed"
    retry_after: float = 1.0  # 429: the Retry-After header, seconds
    reset_in: float = 60.0  # 403-rate-limit: x-ratelimit-reset = now + reset_in
    delay: float = 1.0  # slow: seconds before answering


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeGitHub:
    token: str = TOKEN
    max_per_page: int = 100
    # (repo, sha) -> check run objects / status objects; repo -> issue objects.
    check_runs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    commits: dict[str, set[str]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    _faults: deque[Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1000

    # -- state set by tests ---------------------------------------------------------

    def add_repo(self, repo: str) -> None:
        self.commits.setdefault(repo, set())
        self.issues.setdefault(repo, [])

    def add_commit(self, repo: str, sha: str) -> None:
        self.add_repo(repo)
        self.commits[repo].add(sha)

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_check_run(
        self,
        repo: str,
        sha: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> dict[str, Any]:
        self.add_commit(repo, sha)
        run_id = self._id()
        done = status == "completed"
        run = {
            "id": run_id,
            "head_sha": sha,
            "node_id": f"CR_kwDO{run_id}",
            "external_id": "",
            "url": f"{self.url}/repos/{repo}/check-runs/{run_id}",
            "html_url": f"https://github.com/{repo}/runs/{run_id}",
            "details_url": f"https://github.com/{repo}/actions/runs/{run_id}",
            "status": status,
            "conclusion": conclusion if done else None,
            "started_at": "2024-05-01T10:00:00Z",
            "completed_at": "2024-05-01T10:05:00Z" if done else None,
            "output": {
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{self.url}/repos/{repo}/check-runs/{run_id}/annotations",
            },
            "name": name,
            "check_suite": {"id": run_id // 10},
            "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
            "pull_requests": [],
        }
        self.check_runs.setdefault((repo, sha), []).append(run)
        return run

    def add_status(
        self, repo: str, sha: str, context: str, state: str, description: str | None = None
    ) -> dict[str, Any]:
        self.add_commit(repo, sha)
        status_id = self._id()
        status = {
            "url": f"{self.url}/repos/{repo}/statuses/{sha}",
            "avatar_url": "https://github.com/images/error/hubot_happy.gif",
            "id": status_id,
            "node_id": f"SC_kwDO{status_id}",
            "state": state,
            "description": description,
            "target_url": f"https://ci.example.com/{repo}/{status_id}",
            "context": context,
            "created_at": "2024-05-01T10:00:00Z",
            "updated_at": "2024-05-01T10:05:00Z",
        }
        self.statuses.setdefault((repo, sha), []).append(status)
        return status

    def add_issue(
        self,
        repo: str,
        number: int,
        title: str,
        labels: list[str],
        *,
        state: str = "open",
        body: str | None = None,
        pull_request: bool = False,
    ) -> dict[str, Any]:
        self.add_repo(repo)
        kind = "pull" if pull_request else "issues"
        issue: dict[str, Any] = {
            "id": self._id(),
            "node_id": f"I_kwDO{number}",
            "url": f"{self.url}/repos/{repo}/issues/{number}",
            "repository_url": f"{self.url}/repos/{repo}",
            "html_url": f"https://github.com/{repo}/{kind}/{number}",
            "number": number,
            "state": state,
            "title": title,
            "body": body,
            "user": {"login": "octocat", "id": 1},
            "labels": [
                {
                    "id": self._id(),
                    "node_id": f"LA_kwDO{name}",
                    "url": f"{self.url}/repos/{repo}/labels/{name}",
                    "name": name,
                    "description": None,
                    "color": "d73a4a",
                    "default": False,
                }
                for name in labels
            ],
            "locked": False,
            "comments": 0,
            "created_at": "2024-05-01T10:00:00Z",
            "updated_at": "2024-05-01T10:00:00Z",
            "closed_at": None,
            "author_association": "MEMBER",
        }
        if pull_request:
            issue["pull_request"] = {
                "url": f"{self.url}/repos/{repo}/pulls/{number}",
                "html_url": f"https://github.com/{repo}/pull/{number}",
                "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
                "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
            }
        self.issues[repo].append(issue)
        return issue

    def fail_next(self, n: int, kind: str, **options: float) -> None:
        """Answer the next `n` requests with a fault instead of the real answer."""
        with self._lock:
            for _ in range(n):
                self._faults.append(Fault(kind, **options))

    def _take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def seen(self, path_part: str = "") -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path_part in r.path]

    # -- serving ----------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def serve(cls, **kwargs: Any) -> Iterator[FakeGitHub]:
        fake = cls(**kwargs)
        server = _QuietServer(("127.0.0.1", 0), _handler_for(fake))
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield fake
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out on a "slow" fault leaves a broken pipe behind; expected.
        return


def combined_state(statuses: list[dict[str, Any]]) -> str:
    """As documented: failure if any error/failure, pending if none or any pending."""
    states = {s["state"] for s in statuses}
    if states & {"error", "failure"}:
        return "failure"
    if not statuses or "pending" in states:
        return "pending"
    return "success"


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes; no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:
            return

        # -- responses --------------------------------------------------------------

        def _send(
            self,
            status: int,
            body: Any,
            headers: dict[str, str] | None = None,
            *,
            raw: bytes | None = None,
        ) -> None:
            data = raw if raw is not None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            if not headers or "x-ratelimit-remaining" not in headers:
                self.send_header("x-ratelimit-limit", str(RATE_LIMIT))
                self.send_header("x-ratelimit-remaining", str(RATE_LIMIT - 1))
                self.send_header("x-ratelimit-reset", str(int(time.time()) + 3600))
                self.send_header("x-ratelimit-used", "1")
                self.send_header("x-ratelimit-resource", "core")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(
            self,
            status: int,
            message: str,
            headers: dict[str, str] | None = None,
        ) -> None:
            self._send(status, {"message": message, "documentation_url": DOCS}, headers)

        def _fault(self, fault: Fault) -> bool:
            """Act out a fault; True when the request has been answered (or dropped)."""
            if fault.kind == "500":
                self._send(500, {"message": "Server Error"})
            elif fault.kind == "429":
                self._error(
                    429,
                    "You have exceeded a secondary rate limit.",
                    {"Retry-After": f"{fault.retry_after:g}"},
                )
            elif fault.kind == "403-rate-limit":
                self._error(
                    403,
                    "API rate limit exceeded for user ID 1.",
                    {
                        "x-ratelimit-limit": str(RATE_LIMIT),
                        "x-ratelimit-remaining": "0",
                        "x-ratelimit-reset": str(int(time.time() + fault.reset_in)),
                        "x-ratelimit-used": str(RATE_LIMIT),
                        "x-ratelimit-resource": "core",
                    },
                )
            elif fault.kind == "drop":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            elif fault.kind == "malformed":
                self._send(200, None, raw=b"<html>Unicorn! This page is taking too long")
            elif fault.kind == "slow":
                time.sleep(fault.delay)
                return False
            else:
                raise AssertionError(f"unknown fault {fault.kind!r}")
            return True

        def _paginated(
            self, items: list[Any], query: dict[str, list[str]], wrap: Any = None
        ) -> None:
            try:
                per_page = int(query.get("per_page", ["30"])[0])
                page = int(query.get("page", ["1"])[0])
            except ValueError:
                self._error(422, "Validation Failed")
                return
            per_page = max(1, min(per_page, 100, fake.max_per_page))
            page = max(1, page)
            last = max(1, -(-len(items) // per_page))
            chunk = items[(page - 1) * per_page : page * per_page]
            links = []
            path = urlsplit(self.path).path

            def link(n: int, rel: str) -> str:
                q = {k: v[0] for k, v in query.items()}
                q.update(per_page=str(per_page), page=str(n))
                return f'<{fake.url}{path}?{urlencode(q)}>; rel="{rel}"'

            if page < last:
                links += [link(page + 1, "next"), link(last, "last")]
            if page > 1:
                links += [link(1, "first"), link(page - 1, "prev")]
            headers = {"Link": ", ".join(links)} if links else {}
            self._send(200, wrap(chunk) if wrap else chunk, headers)

        # -- routing ------------------------------------------------------------------

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            query = parse_qs(split.query)
            with fake._lock:
                fake.requests.append(
                    Seen("GET", split.path, query, {k.lower(): v for k, v in self.headers.items()})
                )
            fault = fake._take_fault()
            if fault is not None and self._fault(fault):
                return
            auth = self.headers.get("Authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() not in ("bearer", "token") or given != fake.token:
                self._error(401, "Bad credentials")
                return
            parts = split.path.strip("/").split("/")
            if len(parts) < 3 or parts[0] != "repos":
                self._error(404, "Not Found")
                return
            repo = f"{parts[1]}/{parts[2]}"
            if repo not in fake.commits:
                self._error(404, "Not Found")
                return
            rest = parts[3:]
            if len(rest) == 3 and rest[0] == "commits" and rest[2] in ("check-runs", "status"):
                sha = rest[1]
                if sha not in fake.commits[repo]:
                    self._error(404, "Not Found")
                    return
                if rest[2] == "check-runs":
                    runs = fake.check_runs.get((repo, sha), [])
                    self._paginated(
                        runs, query, lambda chunk: {"total_count": len(runs), "check_runs": chunk}
                    )
                else:
                    statuses = fake.statuses.get((repo, sha), [])
                    self._paginated(
                        statuses,
                        query,
                        lambda chunk: {
                            "state": combined_state(statuses),
                            "statuses": chunk,
                            "sha": sha,
                            "total_count": len(statuses),
                            "repository": {"id": 1, "name": repo.split("/")[1], "full_name": repo},
                            "commit_url": f"{fake.url}/repos/{repo}/commits/{sha}",
                            "url": f"{fake.url}/repos/{repo}/commits/{sha}/status",
                        },
                    )
                return
            if rest == ["issues"]:
                state = query.get("state", ["open"])[0]
                wanted = [x for x in query.get("labels", [""])[0].split(",") if x]
                found = [
                    i
                    for i in fake.issues.get(repo, [])
                    if (state == "all" or i["state"] == state)
                    and all(w in {lab["name"] for lab in i["labels"]} for w in wanted)
                ]
                self._paginated(found, query)
                return
            self._error(404, "Not Found")

    return Handler


@pytest.fixture
def github_fake() -> Iterator[FakeGitHub]:
    """A running fake GitHub; its `url` is the api_url, `token` the token it accepts."""
    with FakeGitHub.serve() as fake:
        yield fake
