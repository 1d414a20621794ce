"""Tests for gonogo.probes: pure evaluation, redaction, and polling against a real HTTP server."""

from __future__ import annotations

import json
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from gonogo import probes
from gonogo.config.schema import Probe, Verify
from gonogo.probes import (
    REDACTED,
    Attempt,
    ProbeResponse,
    evaluate,
    redact_body,
    redact_headers,
    redact_json,
    redact_url,
    render,
    verify_probes,
)

CTX = {"sha": "abc123", "name": "autorisen"}
JSON_CT = [("Content-Type", "application/json")]


def jresp(
    obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> ProbeResponse:
    return ProbeResponse(status, JSON_CT + (headers or []), json.dumps(obj).encode(), 1.0)


# ------------------------------------------------------------------------------------------
# evaluate: a table
# ------------------------------------------------------------------------------------------

HEALTH = Probe(name="health", path="/api/health", json={"status": "healthy"})
VERSION = Probe(name="version", path="/api/version", json={"gitSha": "{sha}"})
NESTED = Probe(name="nested", path="/x", json={"data.status": "ok"})
CSRF = Probe(name="csrf", path="/api/auth/csrf", cookie="csrf_token")
PLAIN = Probe(name="plain", path="/")

CASES: list[tuple[str, Probe, ProbeResponse, list[str]]] = [
    ("status ok", PLAIN, ProbeResponse(200, [], b"hello"), []),
    ("status wrong", PLAIN, ProbeResponse(500, [], b""), ["status 500, expected 200"]),
    (
        "status other expected",
        Probe(name="p", path="/", status=204),
        ProbeResponse(200, [], b""),
        ["status 200, expected 204"],
    ),
    (
        "redirect names its target",
        PLAIN,
        ProbeResponse(302, [("Location", "https://x.test/login?token=s3cr3tvalue")], b""),
        [f"status 302, expected 200 (redirect to https://x.test/login?token={REDACTED})"],
    ),
    ("json equal", HEALTH, jresp({"status": "healthy", "extra": 1}), []),
    (
        "json unequal",
        HEALTH,
        jresp({"status": "degraded"}),
        ["json status = 'degraded', expected 'healthy'"],
    ),
    ("json {sha} templated, equal", VERSION, jresp({"gitSha": "abc123"}), []),
    (
        "json {sha} templated, unequal",
        VERSION,
        jresp({"gitSha": "0000000"}),
        ["json gitSha = '0000000', expected 'abc123'"],
    ),
    (
        "json {name} templated",
        Probe(name="n", path="/", json={"app": "{name}-web"}),
        jresp({"app": "autorisen-web"}),
        [],
    ),
    ("nested dotted path", NESTED, jresp({"data": {"status": "ok"}}), []),
    (
        "nested dotted path unequal",
        NESTED,
        jresp({"data": {"status": "down"}}),
        ["json data.status = 'down', expected 'ok'"],
    ),
    ("nested missing leaf", NESTED, jresp({"data": {}}), ["json data.status missing"]),
    ("nested missing parent", NESTED, jresp({"status": "ok"}), ["json data.status missing"]),
    ("nested parent not an object", NESTED, jresp({"data": "ok"}), ["json data.status missing"]),
    ("body is a list", HEALTH, jresp(["healthy"]), ["json status missing"]),
    (
        "list index in path",
        Probe(name="l", path="/", json={"items.1.id": 7}),
        jresp({"items": [{"id": 6}, {"id": 7}]}),
        [],
    ),
    (
        "key containing a dot",
        Probe(name="d", path="/", json={"a.b": 1}),
        jresp({"a.b": 1}),
        [],
    ),
    (
        "non-string equal",
        Probe(name="b", path="/", json={"db": True, "n": 3, "tags": ["a"], "none": None}),
        jresp({"db": True, "n": 3, "tags": ["a"], "none": None}),
        [],
    ),
    (
        "bool is not int",
        Probe(name="b", path="/", json={"db": True, "n": 1}),
        jresp({"db": 1, "n": True}),
        ["json db = 1, expected true", "json n = true, expected 1"],
    ),
    (
        "string is not number",
        Probe(name="s", path="/", json={"n": 3}),
        jresp({"n": "3"}),
        ["json n = '3', expected 3"],
    ),
    (
        "null actual",
        HEALTH,
        jresp({"status": None}),
        ["json status = null, expected 'healthy'"],
    ),
    (
        "unknown placeholder fails with a reason",
        Probe(name="u", path="/", json={"v": "{version}"}),
        jresp({"v": "1.0"}),
        ["json v: expected value '{version}' uses {version}, which is not known here"],
    ),
    (
        "escaped braces are literal",
        Probe(name="e", path="/", json={"v": "{{sha}}"}),
        jresp({"v": "{sha}"}),
        [],
    ),
    (
        "status and json both reported",
        HEALTH,
        jresp({"status": "error"}, status=500),
        ["status 500, expected 200", "json status = 'error', expected 'healthy'"],
    ),
    ("cookie present", CSRF, ProbeResponse(200, [("Set-Cookie", "csrf_token=abc; Path=/")]), []),
    (
        "cookie among several",
        CSRF,
        ProbeResponse(
            200,
            [("set-cookie", "session=1; HttpOnly"), ("SET-COOKIE", "csrf_token=xyz; SameSite=lax")],
        ),
        [],
    ),
    (
        "cookie absent",
        CSRF,
        ProbeResponse(200, [], b"{}"),
        ["cookie csrf_token not set (response set no cookies)"],
    ),
    (
        "other cookie only",
        CSRF,
        ProbeResponse(200, [("Set-Cookie", "session=1; Path=/")]),
        ["cookie csrf_token not set (response set session)"],
    ),
    (
        "cookie name is exact",
        CSRF,
        ProbeResponse(200, [("Set-Cookie", "csrf_token_old=1")]),
        ["cookie csrf_token not set (response set csrf_token_old)"],
    ),
    (
        "cookie header in request direction does not count",
        CSRF,
        ProbeResponse(200, [("Cookie", "csrf_token=abc")]),
        ["cookie csrf_token not set (response set no cookies)"],
    ),
    (
        "cookie cleared by Max-Age=0",
        CSRF,
        ProbeResponse(200, [("Set-Cookie", "csrf_token=; Max-Age=0; Path=/")]),
        ["cookie csrf_token cleared, not set (Max-Age=0)"],
    ),
    (
        "cookie cleared by past Expires",
        CSRF,
        ProbeResponse(200, [("Set-Cookie", "csrf_token=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT")]),
        ["cookie csrf_token cleared, not set (Expires=Thu, 01 Jan 1970 00:00:00 GMT)"],
    ),
    (
        "cookie with empty value",
        CSRF,
        ProbeResponse(200, [("Set-Cookie", "csrf_token=; Path=/")]),
        ["cookie csrf_token set with an empty value"],
    ),
]


@pytest.mark.parametrize(
    ("probe", "response", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_evaluate(probe: Probe, response: ProbeResponse, expected: list[str]) -> None:
    assert evaluate(probe, response, CTX) == expected


@pytest.mark.parametrize(
    "body",
    [b"<html>ok</html>", b"", b"\xff\xfe\x00garbage", b'{"status": "healthy"'],
    ids=["html", "empty", "binary", "truncated-json"],
)
def test_evaluate_non_json_body(body: bytes) -> None:
    reasons = evaluate(HEALTH, ProbeResponse(200, [("Content-Type", "text/html")], body), CTX)
    assert len(reasons) == 1
    assert reasons[0].startswith("body is not JSON (text/html")
    assert "cannot check status" in reasons[0]


def test_evaluate_json_not_needed_ignores_body() -> None:
    assert (
        evaluate(CSRF, ProbeResponse(200, [("Set-Cookie", "csrf_token=a")], b"<html>"), CTX) == []
    )


def test_probe_response_is_frozen_and_normalises_headers() -> None:
    r = ProbeResponse(200, [("A", "1"), ("a", "2")], b"")
    assert r.headers == (("A", "1"), ("a", "2"))
    assert r.header_values("a") == ["1", "2"]
    assert r.header("missing") is None
    with pytest.raises(AttributeError):
        r.status = 500  # type: ignore[misc]
    hash(r)


def test_render() -> None:
    assert render("git-{sha}", CTX) == "git-abc123"
    assert render("{{literal}}", CTX) == "{literal}"
    with pytest.raises(KeyError, match="nope"):
        render("{nope}", CTX)


def test_sensitive_actual_value_not_echoed_in_reason() -> None:
    probe = Probe(name="t", path="/", json={"auth.token": "expected"})
    reasons = evaluate(probe, jresp({"auth": {"token": "leakedvalue123"}}), CTX)
    assert reasons == [f"json auth.token = '{REDACTED}', expected 'expected'"]


# ------------------------------------------------------------------------------------------
# redaction
# ------------------------------------------------------------------------------------------


def test_redact_headers() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "csrf_token=abcdef123456; Path=/; SameSite=lax"),
        ("Set-Cookie", "session=zzz; HttpOnly; Secure"),
        ("Cookie", "a=1; b=2"),
        ("Authorization", "Bearer eyJhbGciOi"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        ("X-CSRF-Token", "tok"),
        ("X-Api-Key", "k"),
        ("X-Client-Secret", "s"),
        ("x-my-token-header", "t"),
        ("WWW-Authenticate", "Bearer realm=x"),
        ("Server", "uvicorn"),
        ("Keep-Alive", "timeout=5"),
        ("Location", "https://u:pw@x.test/cb?state=1&access_token=abc#id_token=def"),
    ]
    assert redact_headers(headers) == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", f"csrf_token={REDACTED}; Path=/; SameSite=lax"),
        ("Set-Cookie", f"session={REDACTED}; HttpOnly; Secure"),
        ("Cookie", f"a={REDACTED}; b={REDACTED}"),
        ("Authorization", REDACTED),
        ("Proxy-Authorization", REDACTED),
        ("X-CSRF-Token", REDACTED),
        ("X-Api-Key", REDACTED),
        ("X-Client-Secret", REDACTED),
        ("x-my-token-header", REDACTED),
        ("WWW-Authenticate", REDACTED),
        ("Server", "uvicorn"),
        ("Keep-Alive", "timeout=5"),
        (
            "Location",
            f"https://u:{REDACTED}@x.test/cb?state=1&access_token={REDACTED}#id_token={REDACTED}",
        ),
    ]


def test_redact_json_recursive() -> None:
    doc = {
        "csrf_token": "abc",
        "user": {"name": "n", "Password": "p", "apiKey": {"id": 1}},
        "list": [{"client_SECRET": "s", "ok": True}],
        "status": "healthy",
    }
    assert redact_json(doc) == {
        "csrf_token": REDACTED,
        "user": {"name": "n", "Password": REDACTED, "apiKey": REDACTED},
        "list": [{"client_SECRET": REDACTED, "ok": True}],
        "status": "healthy",
    }
    assert doc["csrf_token"] == "abc"  # the input is not modified


def test_redact_body_json_scrubs_copies_under_other_keys() -> None:
    token = secrets.token_urlsafe(32)
    text, truncated = redact_body(json.dumps({"csrf_token": token, "echo": f"x{token}y"}).encode())
    assert token not in text
    assert json.loads(text) == {"csrf_token": REDACTED, "echo": f"x{REDACTED}y"}
    assert not truncated


def test_redact_body_json_without_secrets_is_kept_verbatim() -> None:
    raw = b'{"status":  "healthy"}'
    assert redact_body(raw) == ('{"status":  "healthy"}', False)


def test_redact_body_text_forms() -> None:
    token = "Zx9" + secrets.token_hex(12)
    body = (
        f'<input type="hidden" name="csrf_token" value="{token}">\n'
        f"api_key={token}&page=2\n"
        f"SECRET: {token}\n"
    ).encode()
    text, _ = redact_body(body)
    assert token not in text
    assert "page=2" in text
    assert text.count(REDACTED) == 3


def test_redact_body_extra_secrets_and_truncation() -> None:
    cookie_value = "cookievalue-" + secrets.token_hex(8)
    text, _ = redact_body(f"plain text mentioning {cookie_value}".encode(), secrets=[cookie_value])
    assert cookie_value not in text
    big, truncated = redact_body(b"x" * 10_000)
    assert truncated
    assert len(big.encode()) == probes.BODY_LIMIT
    # multi-byte characters are never split
    uni, truncated = redact_body(("é" * 5000).encode(), limit=101)
    assert truncated
    assert uni == "é" * 50


def test_redact_url() -> None:
    assert redact_url("https://user:pw@x.test/a?x=1&access_token=t&auth=a") == (
        f"https://user:{REDACTED}@x.test/a?x=1&access_token={REDACTED}&auth={REDACTED}"
    )
    assert redact_url("http://127.0.0.1:8000/api/health") == "http://127.0.0.1:8000/api/health"


# ------------------------------------------------------------------------------------------
# a real HTTP server whose behaviour each test scripts
# ------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> as is
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    trickle: float = 0.0  # seconds between single-byte writes of the body


Route = Callable[[int], Reply]  # n = 1-based count of requests to this path


@dataclass
class Received:
    path: str
    headers: dict[str, str]


class Script:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.received: list[Received] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def route(self, path: str, route: Route | Reply) -> None:
        if isinstance(route, Reply):
            fixed = route
            self.routes[path] = lambda _n: fixed
        else:
            self.routes[path] = route

    def next(self, path: str, headers: dict[str, str]) -> Reply:
        with self.lock:
            self.received.append(Received(path, headers))
            n = self.counts[path] = self.counts.get(path, 0) + 1
        route = self.routes.get(path)
        return route(n) if route else Reply(404, {"detail": "Not Found"})


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply = script.next(self.path, {k.lower(): v for k, v in self.headers.items()})
            if reply.delay:
                time.sleep(reply.delay)
            body = reply.body
            headers = list(reply.headers)
            if isinstance(body, dict | list):
                body = json.dumps(body).encode()
                headers.append(("Content-Type", "application/json"))
            elif isinstance(body, str):
                body = body.encode()
            elif body is None:
                body = b""
            self.send_response(reply.status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if reply.trickle:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle)
            else:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here


@dataclass
class Server:
    url: str
    script: Script


def _serve(script: Script, port: int = 0) -> QuietServer:
    httpd = QuietServer(("127.0.0.1", port), _handler(script))
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return httpd


@pytest.fixture
def server() -> Iterator[Server]:
    script = Script()
    httpd = _serve(script)
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", script)
    finally:
        httpd.shutdown()
        httpd.server_close()


def fails_first(n_fail: int, ok: Reply, bad: Reply | None = None) -> Route:
    bad = bad or Reply(500, {"status": "error"})
    return lambda n: bad if n <= n_fail else ok


def vcfg(
    *probe_list: Probe,
    deadline: float = 5.0,
    start: float = 0.02,
    cap: float = 0.1,
    passes: int = 1,
) -> Verify:
    """Single-pass by default so round counts stay easy to read; passes>1 is tested apart."""
    return Verify(
        deadline=deadline,
        backoff_start=start,
        backoff_max=cap,
        probes=list(probe_list),
        passes=passes,
    )


def csrf_reply(_n: int = 0) -> Reply:
    token = secrets.token_urlsafe(32)
    return Reply(
        200,
        {"csrf_token": token},
        [("Set-Cookie", f"csrf_token={token}; Path=/; SameSite=lax")],
    )


def playbook_routes(script: Script, sha: str = "abc123") -> None:
    script.route("/api/health", Reply(200, {"status": "healthy", "database_connected": True}))
    script.route("/api/auth/csrf", csrf_reply)
    script.route("/api/version", Reply(200, {"gitSha": sha, "version": "0.1.0"}))


PLAYBOOK = Verify(deadline=5, backoff_start=0.02, backoff_max=0.1).probes  # the §7 defaults


# ------------------------------------------------------------------------------------------
# polling
# ------------------------------------------------------------------------------------------


def test_playbook_probes_pass_in_first_round(server: Server) -> None:
    playbook_routes(server.script)
    seen: list[Attempt] = []
    result = verify_probes(server.url, vcfg(*PLAYBOOK), CTX, on_attempt=seen.append)
    assert result.ok, result.reason
    assert result.rounds == 1
    assert result.reason.startswith("all 3 probes passed after 1 round in ")
    assert [p.name for p in result.probes] == ["health", "csrf", "version"]
    assert all(p.ok and p.status == 200 and p.reasons == () for p in result.probes)
    assert result.probes[0].url == f"{server.url}/api/health"
    assert [a.probe for a in seen] == ["health", "csrf", "version"]
    assert result.transcript == seen
    assert result.omitted_attempts == 0


def test_fail_first_n_then_succeed(server: Server) -> None:
    ok = Reply(200, {"status": "healthy"})
    server.script.route("/api/health", fails_first(3, ok))
    result = verify_probes(server.url, vcfg(HEALTH), CTX)
    assert result.ok, result.reason
    assert result.rounds == 4
    assert result.reason.startswith("all 1 probe passed after 4 rounds in ")
    assert [a.reasons for a in result.transcript] == [
        ("status 500, expected 200", "json status = 'error', expected 'healthy'"),
    ] * 3 + [()]
    assert [a.round for a in result.transcript] == [1, 2, 3, 4]


def test_wrong_sha_until_deadline(server: Server) -> None:
    playbook_routes(server.script, sha="0000000")
    result = verify_probes(server.url, vcfg(*PLAYBOOK, deadline=0.5), CTX)
    assert not result.ok
    assert result.reason.startswith("deadline 0.5s passed after ")
    assert result.reason.endswith("version: json gitSha = '0000000', expected 'abc123'")
    version = result.probes[2]
    assert not version.ok and version.status == 200
    assert result.probes[0].ok and result.probes[1].ok


def test_deadline_respected_always_500(server: Server) -> None:
    server.script.route("/api/health", Reply(500, {"status": "error"}))
    t0 = time.monotonic()
    result = verify_probes(server.url, vcfg(HEALTH, deadline=1.0, cap=0.2), CTX)
    took = time.monotonic() - t0
    assert not result.ok
    assert result.reason.startswith("deadline 1s passed after ")
    assert "health: status 500, expected 200" in result.reason
    assert "\n" not in result.reason
    assert result.rounds > 1
    assert took < 1.0 + 1.5
    assert result.elapsed_s == pytest.approx(took, abs=0.2)


def test_slow_response_beyond_timeout(server: Server) -> None:
    slow = Probe(name="slow", path="/slow", timeout=0.3)
    server.script.route("/slow", Reply(200, "late", delay=3.0))
    t0 = time.monotonic()
    result = verify_probes(server.url, vcfg(slow, deadline=1.0), CTX)
    took = time.monotonic() - t0
    assert not result.ok
    assert result.transcript[0].error == "no response within 0.3s (read timed out)"
    assert result.transcript[0].response is None
    assert result.probes[0].status is None
    assert "slow: no response within" in result.reason
    assert took < 1.0 + 1.5


def test_request_timeout_is_capped_by_remaining_deadline(server: Server) -> None:
    slow = Probe(name="slow", path="/slow", timeout=30)
    server.script.route("/slow", Reply(200, "late", delay=3.0))
    t0 = time.monotonic()
    result = verify_probes(server.url, vcfg(slow, deadline=0.6), CTX)
    took = time.monotonic() - t0
    assert not result.ok
    assert result.rounds == 1
    assert result.transcript[0].error is not None
    assert "within 0.6s" in result.transcript[0].error
    assert took < 0.6 + 1.5


def test_slow_once_then_fast(server: Server) -> None:
    slow = Probe(name="slow", path="/slow", timeout=0.3)
    server.script.route("/slow", lambda n: Reply(200, "x", delay=1.0 if n == 1 else 0))
    result = verify_probes(server.url, vcfg(slow, deadline=5.0), CTX)
    assert result.ok, result.reason
    assert result.rounds == 2


def test_connection_refused_until_server_starts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Script()
    script.route("/api/health", Reply(200, {"status": "healthy"}))
    started: list[QuietServer] = []
    timer = threading.Timer(0.3, lambda: started.append(_serve(script, port)))
    timer.start()
    try:
        t0 = time.monotonic()
        result = verify_probes(f"http://127.0.0.1:{port}", vcfg(HEALTH, deadline=10, cap=0.2), CTX)
        took = time.monotonic() - t0
    finally:
        timer.join()
        for httpd in started:
            httpd.shutdown()
            httpd.server_close()
    assert result.ok, result.reason
    assert result.rounds > 1
    assert result.transcript[0].error == "connection refused"
    assert result.transcript[0].reasons == ("connection refused",)
    assert took < 5


def test_alive_reporting_exit_stops_at_once(server: Server) -> None:
    server.script.route("/api/health", Reply(500))
    calls = 0

    def alive() -> bool | str:
        nonlocal calls
        calls += 1
        return True if calls == 1 else "exited (code 1)"

    t0 = time.monotonic()
    result = verify_probes(server.url, vcfg(HEALTH, deadline=30), CTX, alive=alive)
    took = time.monotonic() - t0
    assert not result.ok
    assert result.rounds == 1
    assert result.reason.startswith("process exited (code 1) after ")
    assert took < 2


@pytest.mark.parametrize(
    ("said", "reason"),
    [
        (False, "process exited after "),
        ("process exited with code 3", "process exited with code 3 after "),
        ("killed by signal 9", "process exited: killed by signal 9 after "),
    ],
)
def test_alive_dead_before_first_round(server: Server, said: bool | str, reason: str) -> None:
    result = verify_probes(server.url, vcfg(HEALTH), CTX, alive=lambda: said)
    assert not result.ok
    assert result.rounds == 0
    assert result.reason.startswith(reason)
    assert server.script.received == []


def test_all_probes_must_pass_in_the_same_round(server: Server) -> None:
    # health passes on odd calls, version on even calls: each passes, never together.
    server.script.route(
        "/api/health", lambda n: Reply(200 if n % 2 else 500, {"status": "healthy"})
    )
    server.script.route(
        "/api/version", lambda n: Reply(200, {"gitSha": "abc123" if n % 2 == 0 else "old"})
    )
    result = verify_probes(server.url, vcfg(HEALTH, VERSION, deadline=0.6), CTX)
    assert not result.ok
    assert result.rounds >= 2
    passed = {a.probe for a in result.transcript if a.ok}
    assert passed == {"health", "version"}
    assert result.reason.startswith("deadline 0.6s passed")


def test_cookies_are_not_sent_back_between_rounds(server: Server) -> None:
    playbook_routes(server.script)
    server.script.route("/api/health", fails_first(2, Reply(200, {"status": "healthy"})))
    result = verify_probes(server.url, vcfg(*PLAYBOOK), CTX)
    assert result.ok, result.reason
    assert result.rounds == 3
    assert all("cookie" not in r.headers for r in server.script.received)


def test_cookie_required_but_missing(server: Server) -> None:
    server.script.route("/api/auth/csrf", Reply(200, {"csrf_token": "x" * 20}))
    result = verify_probes(server.url, vcfg(CSRF, deadline=0.3), CTX)
    assert not result.ok
    assert result.probes[0].reasons == ("cookie csrf_token not set (response set no cookies)",)


def test_redirect_is_not_followed(server: Server) -> None:
    server.script.route("/api/health", Reply(302, "", [("Location", "/login")]))
    server.script.route("/login", Reply(200, {"status": "healthy"}))
    result = verify_probes(server.url, vcfg(HEALTH, deadline=0.3), CTX)
    assert not result.ok
    assert result.probes[0].reasons[0] == "status 302, expected 200 (redirect to /login)"
    assert {r.path for r in server.script.received} == {"/api/health"}


def test_transcript_never_contains_csrf_token(server: Server) -> None:
    tokens: list[str] = []

    def csrf(_n: int) -> Reply:
        reply = csrf_reply()
        tokens.append(reply.body["csrf_token"])
        reply.body["echo"] = f"token is {tokens[-1]}"  # a copy under an innocent key
        return reply

    playbook_routes(server.script)
    server.script.route("/api/auth/csrf", csrf)
    server.script.route("/api/health", fails_first(2, Reply(200, {"status": "healthy"})))
    seen: list[Attempt] = []
    auth = "Bearer " + secrets.token_hex(20)
    with httpx.Client(headers={"Authorization": auth}) as client:
        result = verify_probes(
            server.url, vcfg(*PLAYBOOK), CTX, client=client, on_attempt=seen.append
        )
    assert result.ok, result.reason
    assert len(tokens) == 3
    dumped = json.dumps(result.to_dict()) + json.dumps([a.to_dict() for a in seen])
    for secret in [*tokens, auth, auth.split()[1]]:
        assert secret not in dumped
    csrf_attempt = next(a for a in result.transcript if a.probe == "csrf")
    assert csrf_attempt.response is not None
    assert ("set-cookie", f"csrf_token={REDACTED}; Path=/; SameSite=lax") in (
        csrf_attempt.response.headers
    )
    assert json.loads(csrf_attempt.response.body) == {
        "csrf_token": REDACTED,
        "echo": f"token is {REDACTED}",
    }
    assert ("authorization", REDACTED) in csrf_attempt.request.headers


def test_transcript_is_bounded(server: Server) -> None:
    probes3 = [
        Probe(name="a", path="/a"),
        Probe(name="b", path="/b"),
        Probe(name="c", path="/c"),
    ]
    server.script.route("/a", Reply(200))
    server.script.route("/b", Reply(200))
    server.script.route("/c", fails_first(15, Reply(200)))
    seen: list[Attempt] = []
    cfg = vcfg(*probes3, start=0.001, cap=0.001)
    result = verify_probes(server.url, cfg, CTX, on_attempt=seen.append)
    assert result.ok, result.reason
    assert result.rounds == 16
    assert len(seen) == 48
    assert result.transcript == seen[:3] + seen[-20:]
    assert result.omitted_attempts == 48 - 23
    assert result.to_dict()["omitted_attempts"] == 25


def test_body_in_transcript_is_truncated(server: Server) -> None:
    server.script.route("/big", Reply(200, "y" * 20_000))
    result = verify_probes(server.url, vcfg(Probe(name="big", path="/big")), CTX)
    assert result.ok
    response = result.transcript[0].response
    assert response is not None
    assert response.body == "y" * 4096
    assert response.body_truncated
    assert response.body_bytes == 20_000


def test_trickling_body_is_bounded_by_the_timeout(server: Server) -> None:
    slow = Probe(name="drip", path="/drip", timeout=0.3)
    server.script.route("/drip", Reply(200, "z" * 100, trickle=0.05))  # 5 s for the whole body
    t0 = time.monotonic()
    result = verify_probes(server.url, vcfg(slow, deadline=0.8), CTX)
    took = time.monotonic() - t0
    assert not result.ok
    assert result.transcript[0].error == "response body not complete within 0.3s"
    assert took < 0.8 + 1.5


def test_oversized_body_is_read_only_up_to_the_cap(server: Server) -> None:
    server.script.route(
        "/api/health", Reply(200, b'{"status": "healthy", "pad": "' + b"p" * 2_000_000)
    )
    result = verify_probes(server.url, vcfg(HEALTH, deadline=0.3), CTX)
    assert not result.ok
    reasons = result.probes[0].reasons
    assert reasons[0].startswith("body is not JSON")
    assert reasons[-1] == f"body larger than {probes.READ_LIMIT} bytes: only the start was read"
    response = result.transcript[0].response
    assert response is not None and response.body_bytes == probes.READ_LIMIT


def test_redaction_is_linear_on_large_bodies() -> None:
    t0 = time.monotonic()
    for body in [b"x" * 1_000_000, b"a=" * 500_000, b"<a " * 300_000, b"tokentoken" * 100_000]:
        redact_body(body)
    assert time.monotonic() - t0 < 2


def test_to_dict_shapes(server: Server) -> None:
    server.script.route("/api/health", fails_first(1, Reply(200, {"status": "healthy"})))
    result = verify_probes(server.url, vcfg(HEALTH), CTX)
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d) == {
        "ok",
        "rounds",
        "elapsed_s",
        "reason",
        "probes",
        "transcript",
        "omitted_attempts",
    }
    assert d["ok"] is True and d["rounds"] == 2
    assert d["probes"] == [
        {
            "name": "health",
            "ok": True,
            "reasons": [],
            "status": 200,
            "url": f"{server.url}/api/health",
            "round": 2,
        }
    ]
    first = d["transcript"][0]
    assert set(first) == {"probe", "round", "at", "ok", "request", "response", "error", "reasons"}
    assert first["at"].endswith("Z")
    assert first["request"]["method"] == "GET"
    assert first["request"]["url"] == f"{server.url}/api/health"
    assert ["user-agent", "gonogo/0.1.0 (post-deploy probe)"] in first["request"]["headers"]
    assert set(first["response"]) == {
        "status",
        "headers",
        "body",
        "body_bytes",
        "body_truncated",
        "elapsed_ms",
    }
    assert first["response"]["status"] == 500
    assert first["reasons"][0] == "status 500, expected 200"


def test_no_probes_is_a_failure_not_a_pass() -> None:
    result = verify_probes("http://127.0.0.1:9", vcfg(), CTX)
    assert not result.ok
    assert result.rounds == 0
    assert result.reason == "no probes configured: nothing to verify"


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "http://", "127.0.0.1:8000"])
def test_unusable_base_url_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        verify_probes(url, vcfg(HEALTH), CTX)


def test_base_url_with_prefix_and_trailing_slash(server: Server) -> None:
    server.script.route("/app/api/health", Reply(200, {"status": "healthy"}))
    result = verify_probes(server.url + "/app/", vcfg(HEALTH), CTX)
    assert result.ok, result.reason


# ------------------------------------------------------------------------------------------
# the schedule, with a fake clock (no real waiting)
# ------------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_doubles_with_jitter_and_caps() -> None:
    fake = FakeTime()
    timeouts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        fake.now += 0.05  # each request takes 50 ms of fake time
        return httpx.Response(503)

    cfg = Verify(deadline=10, backoff_start=0.1, backoff_max=1.0, probes=[PLAIN])
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = verify_probes(
            "http://127.0.0.1:1",
            cfg,
            CTX,
            clock=fake.clock,
            sleep=fake.sleep,
            client=client,
            rng=random.Random(7),
        )
    assert not result.ok
    assert result.reason.startswith("deadline 10s passed after ")
    nominal = [0.1, 0.2, 0.4, 0.8] + [1.0] * (len(fake.sleeps) - 4)
    for slept, base in zip(fake.sleeps[:-1], nominal, strict=False):
        assert base * 0.8 <= slept <= base * 1.2
    assert len(set(fake.sleeps[4:-1])) > 1  # jittered, not constant
    assert fake.now == pytest.approx(1010.0, abs=0.06)  # stops at the deadline, not after
    assert timeouts[0] == 5.0  # probe.timeout while plenty of time is left
    assert all(t <= 5.0 for t in timeouts)
    assert min(timeouts) < 5.0  # capped by the remaining deadline near the end


def test_rounds_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes, "MAX_ROUNDS", 25)
    fake = FakeTime()
    with httpx.Client(transport=httpx.MockTransport(lambda _r: httpx.Response(500))) as client:
        cfg = Verify(deadline=360_000, backoff_start=0.001, backoff_max=0.001, probes=[PLAIN])
        result = verify_probes(
            "http://127.0.0.1:1", cfg, CTX, clock=fake.clock, sleep=fake.sleep, client=client
        )
    assert not result.ok
    assert result.rounds == 25
    assert result.reason.startswith("gave up after 25 rounds (the round limit): plain: status 500")


def test_passed_client_is_not_closed_and_redirects_not_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            return httpx.Response(301, headers={"Location": "/elsewhere"})
        return httpx.Response(200)

    fake = FakeTime()
    cfg = Verify(deadline=0.5, backoff_start=0.1, backoff_max=0.1, probes=[PLAIN])
    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    result = verify_probes(
        "http://127.0.0.1:1", cfg, CTX, clock=fake.clock, sleep=fake.sleep, client=client
    )
    assert not client.is_closed
    client.close()
    assert not result.ok
    assert result.probes[0].reasons == ("status 301, expected 200 (redirect to /elsewhere)",)


def test_a_flapping_app_is_not_verified(server: Server) -> None:
    # Healthy on odd requests, 500 on even ones: one good round is luck, not health.
    server.script.route(
        "/api/health",
        lambda n: Reply(200, {"status": "healthy"}) if n % 2 else Reply(500, {"status": "error"}),
    )
    result = verify_probes(server.url, vcfg(HEALTH, deadline=1.0, passes=2), {})
    assert not result.ok
    assert "status 500" in result.reason
    assert result.rounds > 2


def test_consecutive_passes_confirm_a_healthy_app(server: Server) -> None:
    server.script.route("/api/health", Reply(200, {"status": "healthy"}))
    result = verify_probes(server.url, vcfg(HEALTH, passes=3), {})
    assert result.ok
    assert result.rounds == 3
    assert "3 rounds in a row" in result.reason


def test_config_var_names_are_the_vars_placeholders_of_expected_values() -> None:
    from gonogo.config.schema import Probe, Verify
    from gonogo.probes import config_var_names

    verify = Verify(
        probes=[
            Probe(name="v", path="/v", json={"a": "{vars.APP_ENV}-{sha}", "n": 3}),
            Probe(name="w", path="/w", json={"b": "{{vars.LITERAL}}", "c": "{vars.REGION}"}),
            Probe(name="h", path="/h"),
        ]
    )
    assert config_var_names(verify) == {"APP_ENV", "REGION"}


def test_an_expected_value_from_a_secret_looking_config_var_is_never_shown() -> None:
    probe = Probe(
        name="keys",
        path="/api/keys",
        json={"publishable": "{vars.STRIPE_KEY}", "region": "{vars.REGION}"},
    )
    response = ProbeResponse(
        200, JSON_CT, json.dumps({"publishable": "pk_old", "region": "us"}).encode(), 1.0
    )
    context = {"vars.STRIPE_KEY": "sk_live_SUPERSECRET123", "vars.REGION": "eu"}
    reasons = probes.evaluate(probe, response, context)
    assert "json publishable = '<redacted>', expected '<redacted>'" in reasons
    assert "json region = 'us', expected 'eu'" in reasons
    assert "SUPERSECRET" not in " ".join(reasons)
