"""A client for OCI distribution registries (Docker Hub, GHCR, Heroku, private ones).

It speaks the OCI distribution spec over httpx: `HEAD /v2/<repo>/blobs/<digest>`, blob
uploads (`POST /v2/<repo>/blobs/uploads/`, then `PUT <location>?digest=`), cross-repository
mounts, and manifests (`PUT`/`GET`/`HEAD /v2/<repo>/manifests/<reference>`).

Authentication follows Docker's scheme: the client first asks `GET /v2/` and reads the
`WWW-Authenticate` challenge. `Basic` (a registry with an htpasswd file) sends the
credentials with every request; `Bearer` (Docker Hub, GHCR, Heroku) trades them at the
challenge's realm for a token per scope (`repository:<repo>:pull,push`), cached until it
expires. No password or token is ever put in a message, a log or an exception.

`push_image` is ordered so that a push interrupted anywhere leaves nothing half-visible:
blobs first (skipping the ones the registry has), then each manifest by digest, and tags
last, each read back to confirm the registry names the same digest. Every request goes
through `gonogo.retry.call_with_retry`. A blob upload whose final PUT fails is started
again from a fresh POST: the registry checks the digest of what it received, so a retried
upload can fail but never store wrong bytes under a digest.

`counters` counts what went over the wire, so callers (and benchmarks) can show that a
re-push uploads no layer and that a new tag costs one manifest.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import httpx

from gonogo.closing import OwnsHttpClient
from gonogo.errors import GonogoError
from gonogo.images.credentials import Credentials, find_credentials
from gonogo.images.oci_layout import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    ImageIndex,
    ImageManifest,
    LayoutError,
    OciLayout,
    check_digest,
    sha256_digest,
)
from gonogo.retry import RemoteError, call_with_retry

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "MANIFEST_ACCEPT",
    "PlatformDigest",
    "PushResult",
    "Reference",
    "RegistryClient",
    "RegistryCounters",
    "RegistryError",
    "RegistryUnavailable",
    "manifest_json",
    "parse_reference",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MANIFEST_ACCEPT = (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES)
_LOOPBACK_NAMES = frozenset({"localhost", "::1"})
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$")
_CHUNK = 1 << 20
_TOKEN_MARGIN_S = 10.0
_MESSAGE_LIMIT = 300


class RegistryError(GonogoError):
    """A registry refused or failed an operation. One line, no secrets. Exit 1."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or kept failing (connection errors, 5xx, 429)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# -- references -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """`registry/repository[:tag][@digest]`, with Docker Hub's defaults applied."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the registry API answers (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str | None:
        """What to ask the manifests endpoint for: the digest if given, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_registry(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry if it has a `.` or `:`, or is
    `localhost`; otherwise the name lives on Docker Hub."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, name


def parse_reference(text: str) -> Reference:
    """Parse `host[:port]/repo[:tag][@sha256:...]`; `nginx` → `docker.io/library/nginx`."""
    raw = text.strip()
    name, _, digest = raw.partition("@")
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    registry, repository = _split_registry(name)
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _HOST.match(registry):
        raise RegistryError(f"{text!r}: {registry!r} is not a registry host[:port]")
    if not _REPOSITORY.match(repository):
        raise RegistryError(
            f"{text!r}: repository {repository!r} must be lower-case path components"
        )
    if tag is not None and not _TAG.match(tag):
        raise RegistryError(f"{text!r}: {tag!r} is not a valid tag")
    if digest:
        try:
            check_digest(digest)
        except LayoutError as exc:
            raise RegistryError(f"{text!r}: {exc.message}") from None
    return Reference(registry, repository, tag, digest or None)


def _is_loopback(host: str) -> bool:
    """True for localhost/127.x/::1, given as host, host:port or [v6]:port."""
    try:
        bare = httpx.URL(f"http://{host}/").host
    except httpx.InvalidURL:
        return False
    if bare in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


# -- results and counters -------------------------------------------------------------


@dataclass
class RegistryCounters:
    """What a client sent. Bytes count request bodies as they leave, failed ones too."""

    requests: int = 0  # HTTP requests sent, token requests and retries included
    retries: int = 0  # requests repeated after a connection error, 5xx or 429
    upload_restarts: int = 0  # blob uploads begun again from the POST
    token_fetches: int = 0
    blob_checks: int = 0  # HEAD /blobs/
    blobs_present: int = 0  # blobs not sent because the registry had them
    blob_mounts: int = 0  # blobs linked from another repository instead of sent
    blob_uploads: int = 0  # blob uploads the registry accepted
    blob_bytes: int = 0
    manifest_checks: int = 0  # HEAD /manifests/
    manifest_gets: int = 0
    manifest_puts: int = 0
    manifest_bytes: int = 0

    def copy(self) -> RegistryCounters:
        return replace(self)

    def since(self, earlier: RegistryCounters) -> RegistryCounters:
        """The difference from an earlier copy: what happened in between."""
        return RegistryCounters(
            **{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class PlatformDigest:
    """One platform's manifest inside a pushed index."""

    platform: str | None
    digest: str
    media_type: str


@dataclass(frozen=True)
class PushResult:
    """A pushed image: its digest, the tags confirmed to name it, and what it cost."""

    registry: str
    repository: str
    digest: str
    media_type: str
    tags: tuple[str, ...]
    platforms: tuple[PlatformDigest, ...]
    counters: RegistryCounters

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"


# -- authentication -------------------------------------------------------------------


@dataclass(frozen=True)
class _Challenge:
    scheme: str  # "basic" or "bearer", lower-case
    params: Mapping[str, str]


def _parse_challenge(header: str | None) -> _Challenge | None:
    """`Bearer realm="...",service="...",scope="..."` → scheme and parameters."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        key.lower(): quoted if quoted or not bare else bare
        for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', rest)
    }
    return _Challenge(scheme.lower(), params)


@dataclass
class _Token:
    value: str
    expires_at: float


def _basic_header(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


# -- request bodies -------------------------------------------------------------------


class _Body:
    """A blob's bytes, from memory or a file, replayable for each upload attempt."""

    def __init__(self, data: bytes | Path, counters: RegistryCounters) -> None:
        self._data = data
        self._counters = counters
        self.size = len(data) if isinstance(data, bytes) else Path(data).stat().st_size

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self._data, bytes):
            self._counters.blob_bytes += len(self._data)
            yield self._data
            return
        with Path(self._data).open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                self._counters.blob_bytes += len(chunk)
                yield chunk


def _oci_error(response: httpx.Response) -> str:
    """`CODE: message` from the OCI error body, else the HTTP reason phrase."""
    try:
        doc = response.json()
    except (ValueError, UnicodeDecodeError):
        doc = None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "").strip()
        message = str(errors[0].get("message") or "").strip()
        if code or message:
            return f"{code}: {message}" if code and message else code or message
    return response.reason_phrase or "no error body"


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";", 1)[0].strip()


# -- the client -----------------------------------------------------------------------


class RegistryClient(OwnsHttpClient):
    """One registry host. Use as a context manager, or call close().

    `registry` is host[:port] as written in image references (`docker.io` is reached at
    registry-1.docker.io). The scheme is https, except plain http for loopback hosts; pass
    `scheme="http"` for another registry without TLS. `deadline_s` bounds each request
    with its retries; an upload gets `upload_attempts` fresh sessions.
    """

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        scheme: str | None = None,
        deadline_s: float = 120.0,
        timeout_s: float = 60.0,
        attempts: int = 5,
        upload_attempts: int = 3,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = DOCKER_HUB if registry in ("index.docker.io", DOCKER_HUB_API) else registry
        self.host = DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry
        if not _HOST.match(self.host):
            raise RegistryError(f"{registry!r} is not a registry host[:port]")
        chosen = scheme or ("http" if _is_loopback(self.host) else "https")
        if chosen not in ("http", "https"):
            raise RegistryError(f"registry scheme must be http or https, not {chosen!r}")
        self.base = httpx.URL(f"{chosen}://{self.host}/")
        self.credentials = credentials
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.upload_attempts = max(1, upload_attempts)
        self.counters = RegistryCounters()
        self._sleep = sleep
        self._clock = clock
        self._own_client = client is None
        # A proxy from the environment is honoured for real registries, never for loopback.
        self._client = client or httpx.Client(
            follow_redirects=False, trust_env=not _is_loopback(self.host)
        )
        self._pinged = False
        self._auth: _Challenge | None = None  # the challenge GET /v2/ answered with
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._push_repos: set[str] = set()

    @classmethod
    def from_environment(
        cls,
        registry: str,
        *,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
        **options: Any,
    ) -> RegistryClient:
        """A client with credentials found by `credentials.find_credentials`."""
        found = find_credentials(registry, environ=environ, home=home)
        return cls(registry, credentials=found, **options)

    # -- plumbing ---------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        """One line, bounded, with any secret we hold blanked (servers may echo input)."""
        secrets = [t.value for t in self._tokens.values()]
        if self.credentials is not None and self.credentials.secret:
            secrets.append(self.credentials.secret)
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        text = " ".join(text.split())
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"

    def _error(self, text: str) -> RegistryError:
        return RegistryError(self._clean(f"registry {self.registry}: {text}"))

    def _url(self, path: str) -> httpx.URL:
        return self.base.join(path.lstrip("/"))

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (
            self.base.scheme,
            self.base.host,
            self.base.port,
        )

    def _retrying(
        self, send: Callable[[], httpx.Response], what: str, attempts: int | None = None
    ) -> httpx.Response:
        """`send` under the retry policy; RegistryUnavailable when the policy gives up."""
        made = 0

        def once() -> httpx.Response:
            nonlocal made
            made += 1
            self.counters.requests += 1
            return send()

        try:
            return call_with_retry(
                once,
                deadline_s=self.deadline_s,
                attempts=attempts or self.attempts,
                sleep=self._sleep,
                clock=self._clock,
                host=self.host,
            )
        except RemoteError as exc:
            reach = "cannot be reached" if exc.status is None else "keeps failing"
            raise RegistryUnavailable(
                self._clean(f"registry {self.registry} {reach} ({what}): {exc.message}"),
                status=exc.status,
            ) from None
        except httpx.HTTPError as exc:  # not transport: a malformed URL or header
            raise self._error(f"{what}: {type(exc).__name__}: {exc}") from None
        finally:
            self.counters.retries += max(0, made - 1)

    # -- authentication ---------------------------------------------------------------

    def _scopes(self, repo: str, also: Sequence[str] = ()) -> tuple[str, ...]:
        actions = "pull,push" if repo in self._push_repos else "pull"
        return (f"repository:{repo}:{actions}", *also)

    def _ping(self) -> None:
        """`GET /v2/` once, to learn the auth scheme before any request with a body."""
        if self._pinged:
            return
        url = self._url("/v2/")
        response = self._retrying(lambda: self._client.get(url, timeout=self.timeout_s), "GET /v2/")
        self._pinged = True
        if response.status_code == 401:
            self._auth = _parse_challenge(response.headers.get("WWW-Authenticate"))
            if self._auth is None or self._auth.scheme not in ("basic", "bearer"):
                raise self._error("asks for an authentication scheme gonogo does not speak")
            if self._auth.scheme == "basic":
                self._check_basic(url, response)
        elif response.status_code >= 400:
            raise self._error(f"GET /v2/ answered {response.status_code} {_oci_error(response)}")

    def _check_basic(self, url: httpx.URL, anonymous: httpx.Response) -> None:
        """Basic auth is one realm for everything: bad credentials are known right now."""
        if self.credentials is None:
            raise self._auth_error(anonymous)
        headers = {"Authorization": _basic_header(self.credentials)}
        response = self._retrying(
            lambda: self._client.get(url, headers=headers, timeout=self.timeout_s), "GET /v2/"
        )
        if response.status_code in (401, 403):
            raise self._auth_error(response)

    def _auth_error(self, response: httpx.Response) -> RegistryError:
        status = f"{response.status_code} {_oci_error(response)}"
        if self.credentials is None:
            return self._error_line(
                f"registry {self.registry} requires authentication ({status}); set "
                "GONOGO_REGISTRY_USER and GONOGO_REGISTRY_PASSWORD or run "
                f"`docker login {self.registry}`"
            )
        where = self.credentials.source or "GONOGO_REGISTRY_PASSWORD or ~/.docker/config.json"
        return self._error_line(
            f"registry {self.registry} refused credentials for user "
            f'"{self.credentials.username}" ({status}); check {where}'
        )

    def _error_line(self, text: str) -> RegistryError:
        return RegistryError(self._clean(text))

    def _auth_headers(self, url: httpx.URL, scopes: tuple[str, ...]) -> dict[str, str]:
        if self._auth is None or not self._same_origin(url):
            return {}  # never hand credentials to another host (e.g. blob storage)
        if self._auth.scheme == "basic" and self.credentials is not None:
            return {"Authorization": _basic_header(self.credentials)}
        if self._auth.scheme == "bearer":
            token = self._tokens.get(scopes)
            if token is None or token.expires_at <= self._clock():
                token = self._fetch_token(scopes)
            return {"Authorization": f"Bearer {token.value}"}
        return {}

    def _fetch_token(self, scopes: tuple[str, ...]) -> _Token:
        """Trade the credentials for a bearer token at the challenge's realm."""
        assert self._auth is not None
        realm = self._auth.params.get("realm", "")
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            url = httpx.URL("")
        if url.scheme not in ("http", "https") or not url.host:
            raise self._error(f"token realm {realm!r} is not an http(s) URL")
        if url.scheme == "http" and not _is_loopback(url.host) and self.credentials is not None:
            raise self._error(f"token realm {realm!r} is plain http; credentials need https")
        service = self._auth.params.get("service", "")
        response = self._retrying(
            lambda: self._token_request(url, service, scopes), f"token from {url.host}"
        )
        self.counters.token_fetches += 1
        if response.status_code in (401, 403):
            raise self._auth_error(response)
        if response.status_code != 200:
            raise self._error(f"token service {url.host} answered {response.status_code}")
        token = self._parse_token(response)
        self._tokens[scopes] = token
        return token

    def _token_request(
        self, url: httpx.URL, service: str, scopes: tuple[str, ...]
    ) -> httpx.Response:
        creds = self.credentials
        if creds is not None and creds.identity_token:
            # An identity token is an OAuth2 refresh token (distribution's oauth spec).
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.secret,
                "service": service,
                "scope": " ".join(scopes),
                "client_id": "gonogo",
            }
            return self._client.post(url, data=form, timeout=self.timeout_s)
        params: list[tuple[str, str | int | float | bool | None]] = [("service", service)]
        params += [("scope", scope) for scope in scopes]
        headers = {"Authorization": _basic_header(creds)} if creds is not None else {}
        return self._client.get(url, params=params, headers=headers, timeout=self.timeout_s)

    def _parse_token(self, response: httpx.Response) -> _Token:
        try:
            doc = response.json()
        except (ValueError, UnicodeDecodeError):
            doc = None
        value = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise self._error("token service answered without a token")
        expires_in = doc.get("expires_in") if isinstance(doc, dict) else None
        # The spec's default lifetime is 60 s; renew a little early so none expires in flight.
        life = float(expires_in) if isinstance(expires_in, int | float) else 60.0
        return _Token(value, self._clock() + max(1.0, life - _TOKEN_MARGIN_S))

    def _request(
        self,
        method: str,
        url: httpx.URL,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], bytes | Iterator[bytes]] | None = None,
        attempts: int | None = None,
    ) -> httpx.Response:
        """One registry request with auth and retries; any final response is returned.

        A 401 is answered once: a bearer token may have expired or lack a scope the
        challenge names, so a fresh one is fetched and the request sent again.
        """
        self._ping()
        # Auth is settled before the retry loop so a token fetch never nests inside it.
        all_headers = {**(headers or {}), **self._auth_headers(url, scopes)}

        def send() -> httpx.Response:
            content = body() if body is not None else None
            return self._client.request(
                method, url, headers=all_headers, content=content, timeout=self.timeout_s
            )

        response = self._retrying(send, what, attempts)
        if response.status_code == 401 and self._renew_token(response, scopes):
            all_headers.update(self._auth_headers(url, scopes))
            response = self._retrying(send, what, attempts)
        if response.status_code == 401:
            raise self._auth_error(response)
        return response

    def _renew_token(self, response: httpx.Response, scopes: tuple[str, ...]) -> bool:
        challenge = _parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None or challenge.scheme != "bearer":
            return False
        self._auth = challenge
        # The challenge names the scope this request needs; ask for it alongside ours.
        wanted = challenge.params.get("scope")
        ask = scopes if not wanted or wanted in scopes else (*scopes, wanted)
        self._tokens[scopes] = self._fetch_token(ask)
        return True

    def _fail(self, response: httpx.Response, what: str) -> RegistryError:
        if response.status_code == 403:
            who = f' for user "{self.credentials.username}"' if self.credentials else ""
            return self._error(f"{what}: access denied{who} (403 {_oci_error(response)})")
        return self._error(f"{what}: {response.status_code} {_oci_error(response)}")

    # -- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        """True if the registry holds blob `digest` in `repo` (HEAD, no body moved)."""
        check_digest(digest)
        what = f"HEAD blob {digest[:19]} in {repo}"
        url = self._url(f"/v2/{repo}/blobs/{digest}")
        self.counters.blob_checks += 1
        response = self._request("HEAD", url, scopes=self._scopes(repo), what=what)
        if response.status_code == 404:
            return False
        # A redirect points at the blob's storage: it exists.
        if response.status_code in (200, 307, 302, 303):
            return True
        raise self._fail(response, what)

    def push_blob(
        self, repo: str, digest: str, data: bytes | Path, *, mount_from: str | None = None
    ) -> str:
        """Upload blob `digest` to `repo`; returns "mounted" or "uploaded".

        With `mount_from`, the registry is first asked to link the blob from that
        repository (no bytes move). Otherwise, or if it declines, the bytes go in one PUT.
        A PUT that fails (connection lost, 5xx, session gone) is not repeated on the same
        session, whose state is unknown: after checking whether the blob arrived anyway,
        the upload starts over with a fresh POST, at most `upload_attempts` times.
        """
        check_digest(digest)
        if isinstance(data, bytes) and sha256_digest(data) != digest:
            raise self._error(f"refusing to upload bytes whose sha256 is not {digest}")
        self._push_repos.add(repo)
        body = _Body(data, self.counters)
        started = self._clock()
        for attempt in range(1, self.upload_attempts + 1):
            location = self._start_upload(repo, digest, mount_from if attempt == 1 else None)
            if location is None:
                self.counters.blob_mounts += 1
                return "mounted"
            try:
                self._finish_upload(repo, location, digest, body)
            except RegistryUnavailable as exc:
                if self.blob_exists(repo, digest):
                    # The PUT landed but its answer was lost on the way back.
                    self.counters.blob_uploads += 1
                    return "uploaded"
                if attempt == self.upload_attempts or self._clock() - started > self.deadline_s:
                    raise self._error(
                        f"upload of {digest[:19]} to {repo} failed {attempt} time(s); "
                        f"last: {exc.message}"
                    ) from None
                self.counters.upload_restarts += 1
                self._sleep(min(2.0, 0.1 * 2**attempt))
                continue
            self.counters.blob_uploads += 1
            return "uploaded"
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _start_upload(self, repo: str, digest: str, mount_from: str | None) -> httpx.URL | None:
        """POST an upload session; its URL, or None when the blob was mounted instead."""
        url = self._url(f"/v2/{repo}/blobs/uploads/")
        also: tuple[str, ...] = ()
        if mount_from:
            url = url.copy_merge_params({"mount": digest, "from": mount_from})
            also = (f"repository:{mount_from}:pull",)
        what = f"POST upload to {repo}"
        response = self._request(
            "POST",
            url,
            scopes=self._scopes(repo, also),
            what=what,
            headers={"Content-Length": "0"},
        )
        if response.status_code == 201 and mount_from:
            return None
        if response.status_code != 202:
            raise self._fail(response, what)
        location = response.headers.get("Location")
        if not location:
            raise self._error(f"{what}: 202 without a Location header")
        # Location may be absolute or relative to the registry (the spec allows both).
        return self.base.join(location)

    def _finish_upload(self, repo: str, location: httpx.URL, digest: str, body: _Body) -> None:
        url = location.copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(body.size)}
        what = f"PUT blob {digest[:19]} to {repo}"
        # One attempt: a failed PUT is retried by push_blob from a fresh session.
        response = self._request(
            "PUT",
            url,
            scopes=self._scopes(repo),
            what=what,
            headers=headers,
            body=body.chunks,
            attempts=1,
        )
        if response.status_code == 404:
            raise RegistryUnavailable(f"{what}: upload session gone ({_oci_error(response)})")
        if response.status_code not in (201, 204):
            raise self._fail(response, what)
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != digest:
            raise self._error(f"{what}: registry stored it as {echoed}")

    # -- manifests --------------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns the digest, checked."""
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and reference != digest:
            raise self._error(f"manifest bytes hash to {digest}, not {reference}")
        self._check_reference(reference)
        self._push_repos.add(repo)
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        what = f"PUT manifest {repo}:{reference[:19]}"

        def content() -> bytes:
            self.counters.manifest_bytes += len(body)
            return body

        response = self._request(
            "PUT",
            url,
            scopes=self._scopes(repo),
            what=what,
            headers={"Content-Type": media_type},
            body=content,
        )
        if response.status_code not in (200, 201):
            raise self._fail(response, what)
        self.counters.manifest_puts += 1
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != digest:
            raise self._error(f"{what}: registry reports {echoed}, the bytes hash to {digest}")
        return digest

    def _check_reference(self, reference: str) -> None:
        if reference.startswith("sha256:"):
            try:
                check_digest(reference)
            except LayoutError as exc:
                raise self._error(exc.message) from None
        elif not _TAG.match(reference):
            raise self._error(f"{reference!r} is not a valid tag")

    def get_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> tuple[str, bytes, str]:
        """(media type, exact bytes, digest) of a manifest, by tag or digest."""
        self._check_reference(reference)
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        what = f"GET manifest {repo}:{reference[:19]}"
        self.counters.manifest_gets += 1
        response = self._request(
            "GET",
            url,
            scopes=self._scopes(repo),
            what=what,
            headers={"Accept": ", ".join(accept)},
        )
        if response.status_code != 200:
            raise self._fail(response, what)
        body = response.content
        digest = sha256_digest(body)
        echoed = response.headers.get("Docker-Content-Digest")
        if (echoed and echoed != digest) or (
            reference.startswith("sha256:") and reference != digest
        ):
            raise self._error(f"{what}: the registry sent bytes that hash to {digest}")
        return _media_type(response), body, digest

    def manifest_digest(
        self, repo: str, reference: str, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> str | None:
        """The digest the registry gives `reference` (HEAD), or None if it has none."""
        self._check_reference(reference)
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        what = f"HEAD manifest {repo}:{reference[:19]}"
        self.counters.manifest_checks += 1
        response = self._request(
            "HEAD",
            url,
            scopes=self._scopes(repo),
            what=what,
            headers={"Accept": ", ".join(accept)},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, what)
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed:
            return str(echoed)
        return self.get_manifest(repo, reference, accept)[2]  # registries that omit it

    # -- whole images -----------------------------------------------------------------

    def push_image(
        self,
        layout: OciLayout,
        manifest_digest: str,
        repo: str,
        tags: Sequence[str] = (),
        *,
        mount_from: str | None = None,
    ) -> PushResult:
        """Push the image or index `manifest_digest` from `layout` to `repo`, then tag it.

        Order: missing blobs, each platform manifest by digest, the top manifest by
        digest, then each tag, read back and compared. Blobs and manifests the registry
        already has are not sent again.
        """
        for tag in tags:
            self._check_reference(tag)
        before = self.counters.copy()
        self._push_repos.add(repo)
        top = layout.load_manifest(manifest_digest)
        platforms: tuple[PlatformDigest, ...] = ()
        sent: set[str] = set()
        if isinstance(top, ImageIndex):
            platforms = self._push_children(layout, top, repo, mount_from, sent)
        else:
            self._push_blobs(layout, top, repo, mount_from, sent)
        self._ensure_manifest(repo, top)
        for tag in tags:
            self._tag(repo, tag, top)
        return PushResult(
            registry=self.registry,
            repository=repo,
            digest=top.digest,
            media_type=top.media_type,
            tags=tuple(tags),
            platforms=platforms,
            counters=self.counters.since(before),
        )

    def _push_children(
        self,
        layout: OciLayout,
        index: ImageIndex,
        repo: str,
        mount_from: str | None,
        sent: set[str],
    ) -> tuple[PlatformDigest, ...]:
        pushed = []
        for descriptor in index.manifests:
            child = layout.load_descriptor(descriptor)
            if isinstance(child, ImageIndex):
                raise self._error(f"index {index.digest[:19]} nests another index; not supported")
            self._push_blobs(layout, child, repo, mount_from, sent)
            self._ensure_manifest(repo, child)
            platform = str(descriptor.platform) if descriptor.platform else None
            pushed.append(PlatformDigest(platform, child.digest, child.media_type))
        return tuple(pushed)

    def _push_blobs(
        self,
        layout: OciLayout,
        manifest: ImageManifest,
        repo: str,
        mount_from: str | None,
        sent: set[str],
    ) -> None:
        for blob in manifest.blobs:
            if blob.digest in sent:
                continue  # shared by two platforms of one index
            if self.blob_exists(repo, blob.digest):
                self.counters.blobs_present += 1
            else:
                path = layout.verify_blob(blob.digest, blob.size)
                self.push_blob(repo, blob.digest, path, mount_from=mount_from)
            sent.add(blob.digest)

    def _ensure_manifest(self, repo: str, manifest: ImageManifest | ImageIndex) -> None:
        """PUT a manifest by digest unless the registry already holds those bytes."""
        if self.manifest_digest(repo, manifest.digest) == manifest.digest:
            return
        self.put_manifest(repo, manifest.digest, manifest.raw, manifest.media_type)

    def _tag(self, repo: str, tag: str, manifest: ImageManifest | ImageIndex) -> None:
        if self.manifest_digest(repo, tag) != manifest.digest:
            self.put_manifest(repo, tag, manifest.raw, manifest.media_type)
        confirmed = self.manifest_digest(repo, tag)
        if confirmed != manifest.digest:
            raise self._error(
                f"tag {repo}:{tag} reads back as {confirmed or 'missing'}, "
                f"not the pushed {manifest.digest}"
            )


def manifest_json(body: bytes) -> dict[str, Any]:
    """A manifest's JSON (for callers that read one back), or RegistryError."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RegistryError("the registry returned a manifest that is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("the registry returned a manifest that is not a JSON object")
    return doc
