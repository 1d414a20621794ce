"""A Heroku for the heroku provider's tests, made of real parts where it can be.

- The Platform API is the in-repo fake (tests/fakes/heroku_api.py), held to the public
  schema, with two things taken from the real world instead of scripts:
  - "was this image pushed to registry.heroku.com/<app>/<type>?" is answered by a real
    docker-registry on 127.0.0.1 (the push gonogo made, user `_`, password the API key);
  - a one-off dyno really runs its command (`python -m alembic ... upgrade REV`) in the
    released commit's files with the app's config vars (DATABASE_URL: a real PostgreSQL),
    and its output and real exit status go to the app's log like Heroku's dyno manager
    writes them. A scripted dyno (`script_next_dyno`) still wins, for faults.
- The web dynos are the example app served by uvicorn with GIT_SHA of the release Heroku
  runs (read from the image's `org.opencontainers.image.revision` label in the registry),
  behind a small router on the environment's URL. When the current release changes the
  router moves to a dyno of the new SHA; without preboot it answers 503 until that dyno is
  up, with preboot the old dyno keeps answering meanwhile (for `preboot_delay_s` more).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from fakes.heroku_api import API_KEY, DynoScript, FakeApp, FakeHeroku, FakeRelease

REGISTRY_USER = "_"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
REVISION_LABEL = "org.opencontainers.image.revision"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """Reads from the test registry (basic auth `_` / the API key)."""

    def __init__(self, host: str) -> None:
        self.host = host
        token = base64.b64encode(f"{REGISTRY_USER}:{API_KEY}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def _get(self, path: str, accept: str | None = None) -> httpx.Response:
        headers = dict(self.headers)
        if accept:
            headers["Accept"] = accept
        return httpx.get(f"http://{self.host}{path}", headers=headers, timeout=5, trust_env=False)

    def image_id(self, repo: str, tag: str = "latest") -> str | None:
        """The config digest `repo:tag` names (what Heroku calls the image id)."""
        response = self._get(f"/v2/{repo}/manifests/{tag}", MANIFEST_ACCEPT)
        if response.status_code != 200:
            return None
        return str(response.json()["config"]["digest"])

    def revision(self, repo: str, image_id: str) -> str | None:
        response = self._get(f"/v2/{repo}/blobs/{image_id}")
        if response.status_code != 200:
            return None
        labels = response.json().get("config", {}).get("Labels") or {}
        return labels.get(REVISION_LABEL)


class RegistryPushes(set[tuple[str, str]]):
    """FakeApp.pushed, answered by the real registry as well as by explicit adds."""

    def __init__(self, registry: Registry, app: str) -> None:
        super().__init__()
        self.registry = registry
        self.app = app

    def __contains__(self, item: object) -> bool:
        if super().__contains__(item):
            return True
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        ptype, image = item
        return bool(self.registry.image_id(f"{self.app}/{ptype}") == image)


class HerokuFake(FakeHeroku):
    """The fake API with real pushes, real one-off dynos and a hook on release changes."""

    def __init__(self, registry: Registry, **options: Any) -> None:
        super().__init__(**options)
        self.registry = registry
        self.dyno_cwd: Path | None = None  # the files one-off dynos run in
        self.on_current: Callable[[str, dict[str, str]], None] | None = None
        self.dyno_commands: list[str] = []
        self._current: dict[str, str] = {}

    def add_app(self, name: str, **options: Any) -> FakeApp:
        app = super().add_app(name, **options)
        app.pushed = RegistryPushes(self.registry, name)
        return app

    def _settle(self, app: FakeApp) -> None:
        super()._settle(app)
        current = next((r for r in app.releases if r.current), None)
        if current is not None and self._current.get(app.name) != current.id:
            self._current[app.name] = current.id
            if self.on_current is not None:
                self.on_current(app.name, dict(current.images))

    def _h_dyno_create(self, call: Any) -> Any:
        self.dyno_commands.append(call.payload["command"])
        if self.dyno_cwd is None or call.app.next_dynos:
            return super()._h_dyno_create(call)
        call.app.next_dynos.appendleft(DynoScript(exit_code=None, start_s=0.0))
        status, answer, extra = super()._h_dyno_create(call)
        dyno = call.app.dynos[answer["name"]]
        environ = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.defpath]),
            "HOME": os.environ.get("HOME", "/root"),
            **call.app.config,
            "DYNO": dyno.name,
        }
        threading.Thread(
            target=self._run_dyno, args=(call.app, dyno, environ, self.dyno_cwd), daemon=True
        ).start()
        return status, answer, extra

    def _run_dyno(self, app: FakeApp, dyno: Any, environ: dict[str, str], cwd: Path) -> None:
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", dyno.command], cwd=cwd, env=environ, capture_output=True,
                text=True, timeout=60, check=False,
            )  # fmt: skip
            lines, code = (done.stdout + done.stderr).splitlines(), done.returncode
        except subprocess.TimeoutExpired:
            lines, code = ["timed out"], 124
        with self.lock:
            now = time.monotonic()
            for line in lines:
                self._log(app, "app", dyno.name, line, now)
            self._log(app, "heroku", dyno.name, f"Process exited with status {code}", now)
            self._log(app, "heroku", dyno.name, "State changed from up to complete", now)
            dyno.exit_code, dyno.end_at = code, now

    def new_releases(self, app: str, after: int) -> list[FakeRelease]:
        return [r for r in self.releases_of(app) if r.version > after]


# -- web dynos behind a router ------------------------------------------------------------


class WebDynos:
    """The example app as one Heroku app's web dynos, on `url`."""

    def __init__(self, app: str, source: Path, registry: Registry, logs: Path) -> None:
        self.app = app
        self.source = source
        self.registry = registry
        self.logs = logs
        self.preboot = False
        self.preboot_delay_s = 0.0
        self.faults: dict[str, dict[str, str]] = {}  # SHA -> the example app's WEBAPP_* switches
        self.backends: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.target: int | None = None  # the backend port the router forwards to
        self.serving: str | None = None  # the SHA it serves
        self._lock = threading.Lock()
        self._switch = 0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on_release(self, images: dict[str, str]) -> None:
        image = images.get("web")
        sha = self.registry.revision(f"{self.app}/web", image) if image else None
        with self._lock:
            self._switch += 1
            turn = self._switch
            if not self.preboot:
                self.target, self.serving = None, None  # old dynos stop at once
        threading.Thread(target=self._start, args=(sha or "unknown", turn), daemon=True).start()

    def _start(self, sha: str, turn: int) -> None:
        port = self._backend(sha)
        if self.preboot and self.preboot_delay_s:
            time.sleep(self.preboot_delay_s)
        with self._lock:
            if turn == self._switch:
                self.target, self.serving = port, sha

    def _backend(self, sha: str) -> int | None:
        with self._lock:
            if sha in self.backends:
                return self.backends[sha][1]
        port = _free_port()
        self.logs.mkdir(parents=True, exist_ok=True)
        environ = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.defpath]),
            "HOME": os.environ.get("HOME", "/root"),
            "GIT_SHA": sha,
            "DATABASE_URL": f"sqlite:///{self.logs / (self.app + '.db')}",
            **self.faults.get(sha, {}),
        }
        with (self.logs / f"{self.app}-{sha[:12]}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                 "--port", str(port)],
                cwd=self.source, env=environ, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        with self._lock:
            self.backends[sha] = (proc, port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return port
            time.sleep(0.05)
        return None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        dynos = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with dynos._lock:
                    port = dynos.target
                if port is None:
                    self._answer(503, [("Content-Type", "text/plain")], b"no web dyno is up\n")
                    return
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", self.path, headers={"Host": self.headers["Host"] or ""})
                    response = conn.getresponse()
                    body = response.read()
                    headers = [
                        (k, v)
                        for k, v in response.getheaders()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")
                    ]
                    conn.close()
                except OSError:
                    self._answer(502, [("Content-Type", "text/plain")], b"dyno unreachable\n")
                    return
                self._answer(response.status, headers, body)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for proc, _ in self.backends.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@contextlib.contextmanager
def web_dynos(
    fake: HerokuFake, apps: list[str], source: Path, logs: Path
) -> Iterator[dict[str, WebDynos]]:
    """Web dynos for each app, switched by the fake whenever an app's release changes."""
    fleet = {app: WebDynos(app, source, fake.registry, logs) for app in apps}

    def on_current(app: str, images: dict[str, str]) -> None:
        if app in fleet:
            fleet[app].on_release(images)

    fake.on_current = on_current
    try:
        yield fleet
    finally:
        fake.on_current = None
        for dynos in fleet.values():
            dynos.close()


def ledger_json(value: str | None) -> Any:
    return json.loads(value) if value else None


# -- a project on two Heroku apps, for the CLI tests ------------------------------------------

STAGING_APP, PROD_APP = "acme-staging", "acme-prod"

# The image gonogo builds and pushes: FROM scratch, so no base image is ever pulled.
STUB_DOCKERFILE = """\
FROM scratch
COPY server /app/server
USER 10001:10001
ENTRYPOINT ["/app/server"]
"""

# staging and a protected production promoted from it, on the fake API and registry.
TWO_APPS = """\
[environments.staging]
provider = "heroku"
app = "{staging}"
url = "{staging_url}"
heroku = {{ {settings} }}

[environments.production]
provider = "heroku"
app = "{prod}"
url = "{prod_url}"
protected = true
promote_from = "staging"
heroku = {{ {settings} }}
"""

def cli_env(storage: Path) -> dict[str, str]:
    """What every CLI run needs: the key, and buildah in the module's own store (never
    a Docker engine)."""
    return {
        "HEROKU_API_KEY": API_KEY,
        "CONTAINERS_STORAGE_CONF": str(storage),
        "BUILDAH_ISOLATION": "chroot",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    }


def install_fake(server: Any, registry_host: str) -> HerokuFake:
    """A fresh HerokuFake behind the module's fake API server (replacing the last test's)."""
    fake = HerokuFake(Registry(registry_host), stream_max_s=3.0)
    if server.fake is not None:
        server.fake.close()
    fake.url = server.url
    server.fake = fake
    return fake


def stub_image(root: Path) -> None:
    image = root / "image"
    image.mkdir()
    (image / "server").write_text("#!/bin/false\n")
    (image / "Dockerfile").write_text(STUB_DOCKERFILE)


def two_apps(dynos: dict[str, WebDynos], settings: str) -> str:
    return TWO_APPS.format(
        staging=STAGING_APP,
        prod=PROD_APP,
        staging_url=dynos[STAGING_APP].url,
        prod_url=dynos[PROD_APP].url,
        settings=settings,
    )
