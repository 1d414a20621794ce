"""Registry client pieces that need no server: references, schemes, challenges, messages.

The push, auth and retry paths run against a real registry in
tests/integration/test_registry.py; here only what a real registry cannot be made to do
(echo a password, lie about a digest) uses httpx's MockTransport.
"""

from __future__ import annotations

import json

import httpx
import pytest

from gonogo.images.credentials import Credentials
from gonogo.images.oci_layout import MEDIA_OCI_MANIFEST, sha256_digest
from gonogo.images.registry import (
    Reference,
    RegistryClient,
    RegistryCounters,
    RegistryError,
    _parse_challenge,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", Reference("docker.io", "library/nginx")),
        ("nginx:1.25", Reference("docker.io", "library/nginx", "1.25")),
        ("acme/app:v1", Reference("docker.io", "acme/app", "v1")),
        ("docker.io/nginx", Reference("docker.io", "library/nginx")),
        ("index.docker.io/acme/app", Reference("docker.io", "acme/app")),
        ("ghcr.io/acme/app:sha-1", Reference("ghcr.io", "acme/app", "sha-1")),
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app")),
        ("localhost/a/b/c:t", Reference("localhost", "a/b/c", "t")),
        (
            f"registry.heroku.com/web/app@{DIGEST}",
            Reference("registry.heroku.com", "web/app", None, DIGEST),
        ),
        (f"ghcr.io/a/b:v2@{DIGEST}", Reference("ghcr.io", "a/b", "v2", DIGEST)),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_reference_helpers() -> None:
    hub = parse_reference("nginx:1")
    assert hub.api_host == "registry-1.docker.io"
    assert str(hub) == "docker.io/library/nginx:1"
    pinned = parse_reference(f"ghcr.io/a/b:v2@{DIGEST}")
    assert pinned.reference == DIGEST and pinned.api_host == "ghcr.io"


@pytest.mark.parametrize(
    "text", ["Acme/App", "ghcr.io/a//b", "ghcr.io/a:-bad", "ghcr.io/a@sha256:zz", "a b"]
)
def test_bad_references_are_one_line_errors(text: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_reference(text)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 1


def test_scheme_is_http_only_for_loopback() -> None:
    for host, scheme in [
        ("127.0.0.1:5000", "http"),
        ("localhost:5000", "http"),
        ("[::1]:5000", "http"),
        ("ghcr.io", "https"),
        ("10.0.0.1:5000", "https"),
    ]:
        with RegistryClient(host) as client:
            assert client.base.scheme == scheme, host
    with RegistryClient("registry.internal:5000", scheme="http") as client:
        assert str(client.base) == "http://registry.internal:5000/"
    with RegistryClient("docker.io") as client:
        assert client.base.host == "registry-1.docker.io" and client.registry == "docker.io"


def test_challenge_parsing() -> None:
    challenge = _parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:samalba/my-app:pull,push",
    }
    basic = _parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert _parse_challenge(None) is None


def test_counters_since() -> None:
    counters = RegistryCounters(blob_uploads=2, manifest_bytes=10)
    before = counters.copy()
    counters.blob_uploads += 1
    counters.manifest_puts += 1
    delta = counters.since(before)
    assert (delta.blob_uploads, delta.manifest_puts, delta.manifest_bytes) == (1, 1, 0)


def _client(handler: httpx.MockTransport, credentials: Credentials | None = None) -> RegistryClient:
    return RegistryClient(
        "127.0.0.1:5000",
        credentials=credentials,
        client=httpx.Client(transport=handler),
        sleep=lambda _s: None,
    )


def test_a_password_echoed_by_the_server_is_redacted() -> None:
    secret = "pa55-word-xyz"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        body = {"errors": [{"code": "DENIED", "message": f"bad header Basic bob:{secret}"}]}
        return httpx.Response(403, json=body)

    client = _client(httpx.MockTransport(handler), Credentials("bob", secret))
    with client, pytest.raises(RegistryError) as caught:
        client.blob_exists("acme/app", DIGEST)
    message = str(caught.value)
    assert secret not in message and "<redacted>" in message
    assert 'access denied for user "bob" (403 DENIED:' in message


def test_a_registry_that_reports_another_digest_is_an_error() -> None:
    body = json.dumps({"schemaVersion": 2}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(201, headers={"Docker-Content-Digest": DIGEST})

    with _client(httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistryError, match="registry reports sha256:abab"):
            client.put_manifest("acme/app", "v1", body, MEDIA_OCI_MANIFEST)
        with pytest.raises(RegistryError, match="hash to"):
            client.put_manifest("acme/app", DIGEST, body, MEDIA_OCI_MANIFEST)
        with pytest.raises(RegistryError, match="not a valid tag"):
            client.put_manifest("acme/app", "bad tag", body, MEDIA_OCI_MANIFEST)
        with pytest.raises(RegistryError, match="refusing to upload"):
            client.push_blob("acme/app", DIGEST, b"not those bytes")
    assert sha256_digest(body) != DIGEST
