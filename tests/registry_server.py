"""A real, throwaway OCI registry for the tests, and a proxy that injects faults in front.

`RegistryServer.start()` runs Debian's `docker-registry` (the reference distribution
registry) on 127.0.0.1 with a free port, filesystem storage in a temp folder and, if asked,
htpasswd basic auth. A missing binary is a failure, never a skip: `.ci/run` installs the
`docker-registry` package (and `skopeo`, which the tests read manifests back with).

`FaultProxy` forwards to a registry but answers 500 to the first N requests, or to the
first N requests matching a method and path pattern, so retry and restart paths run
against the real server's responses.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO_BIN = "/usr/bin/skopeo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(path: str, package: str) -> str:
    """`path`, or a RuntimeError naming the Debian package that provides it."""
    found = path if Path(path).is_file() else shutil.which(Path(path).name)
    if not found:
        raise RuntimeError(
            f"{Path(path).name} is not installed; install the `{package}` package "
            f"(apt-get install {package}) — the registry tests need the real program"
        )
    return found


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry. Cost 4 (bcrypt's minimum): the registry checks it on every
    request, and the default cost of 12 would make each request take a quarter second."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves in 3.13
        import crypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this Python's crypt module cannot make bcrypt hashes")
    return f"{user}:{hashed}\n"


def _config(root: Path, port: int, htpasswd: Path | None, token: TokenServer | None = None) -> str:
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: gonogo-test\n    path: {htpasswd}\n"
    elif token is not None:
        auth = (
            "auth:\n  token:\n"
            f"    realm: {token.realm}\n    service: {token.service}\n"
            f"    issuer: {token.issuer}\n    rootcertbundle: {token.cert}\n"
        )
    return (
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        "  secret: gonogo-test-secret\n"
        "health:\n  storagedriver:\n    enabled: false\n" + auth
    )


@dataclass
class RegistryServer:
    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    user: str | None = None
    password: str | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @classmethod
    def start(
        cls,
        *,
        user: str | None = None,
        password: str | None = None,
        token: TokenServer | None = None,
    ) -> RegistryServer:
        """Basic auth with `user`/`password`, bearer tokens from `token`, else open."""
        binary = require_binary(REGISTRY_BIN, "docker-registry")
        folder = Path(tempfile.mkdtemp(prefix="gonogo-registry-"))
        server = cls(folder=folder, port=free_port(), user=user, password=password)
        htpasswd = None
        if user is not None and password is not None:
            htpasswd = folder / "htpasswd"
            htpasswd.write_text(htpasswd_line(user, password))
        config = folder / "config.yml"
        config.write_text(_config(folder, server.port, htpasswd, token))
        log = (folder / "registry.log").open("wb")
        server.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "registry.log").read_text(errors="replace")
        return ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll `GET /v2/` (200, or 401 with auth on) until it answers; bounded."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 1):
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited at start:\n{self.log()[-2000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                try:
                    conn.request("GET", "/v2/")
                    if conn.getresponse().status in (200, 401):
                        return
                finally:
                    conn.close()
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer in {timeout:g}s:\n{self.log()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def repository_layers(self, repo: str) -> set[str]:
        """Blob digests linked into `repo`, read from the registry's storage on disk."""
        base = (
            self.folder / "data" / "docker" / "registry" / "v2" / "repositories" / repo / "_layers"
        )
        return {f"sha256:{p.name}" for p in (base / "sha256").glob("*")} if base.is_dir() else set()


# -- bearer tokens --------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token service for the registry's `auth.token` mode (Docker Hub's scheme).

    It checks Basic credentials (or an OAuth2 refresh token on POST) and issues RS256
    JWTs whose `x5c` header carries a self-signed certificate the registry trusts through
    `rootcertbundle`. Signing uses the openssl CLI, so no Python crypto package is needed.
    Every requested action is granted: the test is about the client's flow, not ACLs.
    """

    service = "gonogo-test-registry"
    issuer = "gonogo-test-issuer"

    def __init__(self, user: str, password: str, *, refresh_token: str | None = None) -> None:
        self.user, self.password, self.refresh_token = user, password, refresh_token
        self.folder = Path(tempfile.mkdtemp(prefix="gonogo-token-"))
        self.key, self.cert = self.folder / "key.pem", self.folder / "cert.pem"
        self.requests: list[dict[str, list[str]]] = []
        self.port = free_port()
        self._make_key()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _make_key(self) -> None:
        self._openssl = openssl = require_binary("/usr/bin/openssl", "openssl")
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(self.key),
                "-out",
                str(self.cert),
                "-days",
                "2",
                "-subj",
                "/CN=gonogo-test-token",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        der = subprocess.run(
            [openssl, "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        self._x5c = base64.b64encode(der).decode()

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self.folder, ignore_errors=True)

    def issue(self, scopes: list[str], subject: str) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        now = int(time.time())
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            [self._openssl, "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        tokens = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, doc: dict[str, object]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                tokens.requests.append(query)
                expected = base64.b64encode(f"{tokens.user}:{tokens.password}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._send(401, _unauthorized("bad username or password"))
                    return
                token = tokens.issue(query.get("scope", []), tokens.user)
                self._send(200, {"token": token, "expires_in": 300})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                tokens.requests.append(form)
                given = form.get("refresh_token", [""])[0]
                if form.get("grant_type") != ["refresh_token"] or given != tokens.refresh_token:
                    self._send(401, _unauthorized("bad refresh token"))
                    return
                token = tokens.issue(form.get("scope", [""])[0].split(" "), tokens.user)
                self._send(200, {"access_token": token, "expires_in": 300})

        return Handler


# -- fault injection ------------------------------------------------------------------


@dataclass
class Fault:
    """Answer 500 to the next `times` requests whose method and path match."""

    method: str = ".*"
    path: str = ".*"
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return bool(re.fullmatch(self.method, method) and re.search(self.path, path))


@dataclass
class ProxyLog:
    requests: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of `upstream_port`, injecting 500s.

    The Host header is forwarded unchanged, so the registry writes upload Locations that
    point back at the proxy and every request of an upload passes through it.
    """

    def __init__(self, upstream_port: int, faults: list[Fault] | None = None) -> None:
        self.upstream_port = upstream_port
        self.faults = list(faults or [])
        self.log = ProxyLog()
        self.port = free_port()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _should_fail(self, method: str, path: str) -> bool:
        with self.log.lock:
            self.log.requests.append((method, path))
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    self.log.failed.append((method, path))
                    return True
        return False

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._should_fail(self.command, self.path):
                    self._answer(500, {"Content-Type": "application/json"}, _error_body())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    upstream = conn.getresponse()
                    data = upstream.read()
                    relayed = {
                        k: v for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP
                    }
                    self._answer(upstream.status, relayed, data)
                finally:
                    conn.close()

            def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                length = headers.get("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        return Handler


def _unauthorized(message: str) -> dict[str, object]:
    return {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]}


def _error_body() -> bytes:
    doc = {"errors": [{"code": "UNKNOWN", "message": "injected fault", "detail": None}]}
    return json.dumps(doc).encode()


def skopeo_inspect(ref: str, *, raw: bool = False, creds: str | None = None) -> str:
    """`skopeo inspect` of docker://ref against a plain-http registry; its stdout."""
    binary = require_binary(SKOPEO_BIN, "skopeo")
    argv = [binary, "inspect", "--tls-verify=false"]
    if raw:
        argv.append("--raw")
    if creds:
        argv += ["--creds", creds]
    done = subprocess.run(
        [*argv, f"docker://{ref}"], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"skopeo inspect {ref} failed: {done.stderr.strip()}")
    return done.stdout
