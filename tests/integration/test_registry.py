"""Pushing images to a real registry (Debian's docker-registry on 127.0.0.1), read back
with skopeo: digests match, re-pushes move no layer, faults are retried, errors are one line.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gonogo.images.credentials import Credentials
from gonogo.images.oci_layout import (
    MEDIA_OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    LayoutWriter,
    OciLayout,
    Platform,
    sha256_digest,
)
from gonogo.images.registry import (
    PushResult,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    manifest_json,
)
from registry_server import (
    SKOPEO_BIN,
    Fault,
    FaultProxy,
    RegistryServer,
    TokenServer,
    free_port,
    require_binary,
    skopeo_inspect,
)

pytestmark = pytest.mark.integration

USER, PASSWORD = "bob", "correct-horse-battery"


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start(user=USER, password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry() -> Iterator[tuple[TokenServer, RegistryServer]]:
    with TokenServer(USER, PASSWORD, refresh_token="refresh-abc") as tokens:
        server = RegistryServer.start(token=tokens)
        yield tokens, server
        server.stop()


@pytest.fixture(scope="module")
def skopeo() -> str:
    return require_binary(SKOPEO_BIN, "skopeo")


@pytest.fixture
def writer(tmp_path: Path) -> LayoutWriter:
    return LayoutWriter(tmp_path / "layout")


def client(host: str, **options: Any) -> RegistryClient:
    return RegistryClient(host, **options)


def push(
    host: str, writer: LayoutWriter, image: Descriptor, repo: str, *tags: str, **options: Any
) -> PushResult:
    """Push with a new client, so what is skipped is what the registry has, not a cache."""
    with client(host, **options) as c:
        return c.push_image(writer.layout, image.digest, repo, tags)


def raw_manifest(writer: LayoutWriter, digest: str) -> bytes:
    return writer.layout.read_blob(digest)


def test_push_tiny_image_and_read_back_with_skopeo(
    registry: RegistryServer, writer: LayoutWriter, skopeo: str
) -> None:
    image = writer.write_image({"app/hello.txt": b"hello"})
    result = push(registry.host, writer, image, "acme/tiny", "v1")

    assert result.digest == image.digest
    assert result.reference == f"{registry.host}/acme/tiny@{image.digest}"
    assert (result.counters.blob_uploads, result.counters.manifest_puts) == (2, 2)
    inspected = json.loads(skopeo_inspect(f"{registry.host}/acme/tiny:v1"))
    assert inspected["Digest"] == image.digest
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    raw = skopeo_inspect(f"{registry.host}/acme/tiny:v1", raw=True).encode()
    assert raw == raw_manifest(writer, image.digest)
    assert sha256_digest(raw) == image.digest
    loaded = writer.layout.load_manifest(image.digest)
    assert not isinstance(loaded, ImageIndex)
    assert registry.repository_layers("acme/tiny") == {b.digest for b in loaded.blobs}


def test_pushing_again_uploads_no_blob(registry: RegistryServer, writer: LayoutWriter) -> None:
    image = writer.write_image({"app/again.txt": b"again"})
    first = push(registry.host, writer, image, "acme/again", "v1")
    assert first.counters.blob_uploads == 2
    second = push(registry.host, writer, image, "acme/again", "v1")
    assert second.digest == first.digest
    counts = second.counters
    assert (counts.blob_uploads, counts.blob_bytes, counts.blobs_present) == (0, 0, 2)
    assert (counts.manifest_puts, counts.manifest_bytes) == (0, 0)


def test_new_tag_moves_manifest_bytes_only(registry: RegistryServer, writer: LayoutWriter) -> None:
    image = writer.write_image({"app/tagged.txt": b"x" * 50_000})
    push(registry.host, writer, image, "acme/tagged", "v1")
    result = push(registry.host, writer, image, "acme/tagged", "v1", "v2", "stable")
    counts = result.counters
    assert (counts.blob_uploads, counts.blob_bytes) == (0, 0)
    assert counts.manifest_puts == 2
    assert counts.manifest_bytes == 2 * len(raw_manifest(writer, image.digest))
    with client(registry.host) as c:
        for tag in ("v1", "v2", "stable"):
            assert c.manifest_digest("acme/tagged", tag) == image.digest


def test_image_on_a_known_base_uploads_only_its_own_layer(
    registry: RegistryServer, writer: LayoutWriter
) -> None:
    base = writer.write_layer({"usr/lib/base.so": b"b" * 100_000})
    first = writer.write_image({"app/v1.py": b"print(1)"}, base_layers=[base])
    second = writer.write_image({"app/v2.py": b"print(2)"}, base_layers=[base])
    push(registry.host, writer, first, "acme/based", "1")
    result = push(registry.host, writer, second, "acme/based", "2")
    # The new app layer and the new config go up; the 100 kB base layer does not.
    assert result.counters.blob_uploads == 2
    assert result.counters.blobs_present == 1
    assert result.counters.blob_bytes < 20_000


def test_cross_repository_mount_moves_no_blob_bytes(
    registry: RegistryServer, writer: LayoutWriter
) -> None:
    image = writer.write_image({"app/mounted.txt": b"m" * 10_000})
    push(registry.host, writer, image, "acme/source", "v1")
    with client(registry.host) as c:
        result = c.push_image(
            writer.layout, image.digest, "acme/target", ["v1"], mount_from="acme/source"
        )
    assert (result.counters.blob_mounts, result.counters.blob_bytes) == (2, 0)
    assert json.loads(skopeo_inspect(f"{registry.host}/acme/target:v1"))["Digest"] == image.digest


def test_index_with_two_platforms_reports_per_platform_digests(
    registry: RegistryServer, writer: LayoutWriter
) -> None:
    shared = writer.write_layer({"etc/os-release": b"ID=test\n"})
    amd = writer.write_image(
        {"bin/app": b"x86-64"}, platform=Platform("linux", "amd64"), base_layers=[shared]
    )
    arm = writer.write_image(
        {"bin/app": b"aarch64"}, platform=Platform("linux", "arm64", "v8"), base_layers=[shared]
    )
    index = writer.write_index([amd, arm])
    result = push(registry.host, writer, index, "acme/multi", "1.0")

    assert result.digest == index.digest
    assert [(p.platform, p.digest) for p in result.platforms] == [
        ("linux/amd64", amd.digest),
        ("linux/arm64/v8", arm.digest),
    ]
    assert result.counters.blob_uploads == 5  # shared layer once, two app layers, two configs
    raw = skopeo_inspect(f"{registry.host}/acme/multi:1.0", raw=True).encode()
    assert sha256_digest(raw) == index.digest
    listed = {m["platform"]["architecture"]: m["digest"] for m in manifest_json(raw)["manifests"]}
    assert listed == {"amd64": amd.digest, "arm64": arm.digest}
    for platform in result.platforms:
        child = skopeo_inspect(f"{registry.host}/acme/multi@{platform.digest}", raw=True)
        assert sha256_digest(child.encode()) == platform.digest
    with client(registry.host) as c:
        media_type, body, digest = c.get_manifest("acme/multi", "1.0")
    assert (digest, body) == (index.digest, raw)
    assert media_type == "application/vnd.oci.image.index.v1+json"


def test_reads_a_layout_written_by_skopeo(
    registry: RegistryServer, writer: LayoutWriter, tmp_path: Path, skopeo: str
) -> None:
    """Round trip through the real tool: skopeo pulls into an OCI layout that we read."""
    image = writer.write_image({"app/roundtrip.txt": b"rt"}, compress=True)
    push(registry.host, writer, image, "acme/roundtrip", "v1")
    target = tmp_path / "from-skopeo"
    subprocess.run(
        [
            skopeo,
            "copy",
            "--src-tls-verify=false",
            f"docker://{registry.host}/acme/roundtrip:v1",
            f"oci:{target}:pulled",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    layout = OciLayout.open(target)
    entry = layout.find("pulled")
    assert entry.digest == image.digest
    manifest = layout.load_descriptor(entry)
    assert not isinstance(manifest, ImageIndex)
    for blob in manifest.blobs:
        layout.verify_blob(blob.digest, blob.size)
    with client(registry.host) as c:
        again = c.push_image(layout, entry.digest, "acme/roundtrip", ["v2"])
    assert (again.digest, again.counters.blob_uploads) == (image.digest, 0)


def test_manifest_naming_missing_blobs_is_refused_with_the_oci_error_code(
    registry: RegistryServer, writer: LayoutWriter
) -> None:
    image = writer.write_image({"app/orphan.txt": b"orphan"})
    with client(registry.host) as c, pytest.raises(RegistryError) as caught:
        c.put_manifest("acme/orphan", "v1", raw_manifest(writer, image.digest), MEDIA_OCI_MANIFEST)
    message = str(caught.value)
    assert "400 MANIFEST_BLOB_UNKNOWN" in message and "\n" not in message


# -- authentication ---------------------------------------------------------------------


def test_basic_auth_push(auth_registry: RegistryServer, writer: LayoutWriter, skopeo: str) -> None:
    image = writer.write_image({"app/private.txt": b"private"})
    creds = Credentials(USER, PASSWORD, "test")
    result = push(auth_registry.host, writer, image, "acme/private", "v1", credentials=creds)
    assert result.digest == image.digest
    inspected = skopeo_inspect(f"{auth_registry.host}/acme/private:v1", creds=f"{USER}:{PASSWORD}")
    assert json.loads(inspected)["Digest"] == image.digest


def test_wrong_password_is_a_one_line_error_without_the_password(
    auth_registry: RegistryServer, writer: LayoutWriter
) -> None:
    image = writer.write_image({"app/x": b"x"})
    wrong = "wrong-Pa55word"
    creds = Credentials(USER, wrong, "environment GONOGO_REGISTRY_USER/GONOGO_REGISTRY_PASSWORD")
    with pytest.raises(RegistryError) as caught:
        push(auth_registry.host, writer, image, "acme/private", "v1", credentials=creds)
    error = caught.value
    assert error.exit_code == 1
    message = str(error)
    assert message == (
        f'registry {auth_registry.host} refused credentials for user "{USER}" '
        "(401 UNAUTHORIZED: authentication required); "
        "check environment GONOGO_REGISTRY_USER/GONOGO_REGISTRY_PASSWORD"
    )
    assert wrong not in message and wrong not in repr(error.__dict__)
    assert error.__cause__ is None and error.__context__ is None


def test_no_credentials_for_a_private_registry(
    auth_registry: RegistryServer, writer: LayoutWriter
) -> None:
    image = writer.write_image({"app/x": b"x"})
    with pytest.raises(RegistryError, match=r"requires authentication \(401 UNAUTHORIZED"):
        push(auth_registry.host, writer, image, "acme/private", "v1")


def test_credentials_from_a_docker_config_file(
    auth_registry: RegistryServer, writer: LayoutWriter, tmp_path: Path
) -> None:
    import base64

    folder = tmp_path / "docker"
    folder.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    image = writer.write_image({"app/from-config": b"c"})
    with RegistryClient.from_environment(
        auth_registry.host, environ={"DOCKER_CONFIG": str(folder)}
    ) as c:
        result = c.push_image(writer.layout, image.digest, "acme/config", ["v1"])
    assert result.digest == image.digest


def test_bearer_token_flow(
    token_registry: tuple[TokenServer, RegistryServer], writer: LayoutWriter
) -> None:
    tokens, server = token_registry
    image = writer.write_image({"app/bearer": b"b"})
    creds = Credentials(USER, PASSWORD, "test")
    before = len(tokens.requests)
    result = push(server.host, writer, image, "acme/bearer", "v1", credentials=creds)
    assert result.digest == image.digest
    # One token for the whole push, asked for with the push scope.
    assert result.counters.token_fetches == 1
    assert tokens.requests[before:] == [
        {"service": [TokenServer.service], "scope": ["repository:acme/bearer:pull,push"]}
    ]
    # An identity token (OAuth2 refresh token) works too.
    refresh = Credentials("<token>", "refresh-abc", "test", identity_token=True)
    again = push(server.host, writer, image, "acme/bearer", "v2", credentials=refresh)
    assert (again.digest, again.counters.blob_uploads) == (image.digest, 0)


def test_bearer_wrong_password(
    token_registry: tuple[TokenServer, RegistryServer], writer: LayoutWriter
) -> None:
    _, server = token_registry
    image = writer.write_image({"app/x": b"x"})
    creds = Credentials(USER, "nope-nope", "test")
    with pytest.raises(RegistryError) as caught:
        push(server.host, writer, image, "acme/bearer", "v1", credentials=creds)
    message = str(caught.value)
    assert (
        f'refused credentials for user "{USER}" (401 UNAUTHORIZED: bad username or password)'
        in message
    )
    assert "nope-nope" not in message


# -- faults -----------------------------------------------------------------------------


def test_unreachable_registry_is_a_one_line_error(writer: LayoutWriter) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    image = writer.write_image({"app/x": b"x"})
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as caught:
        push(host, writer, image, "acme/app", "v1", deadline_s=2.0)
    message = str(caught.value)
    assert message.startswith(f"registry {host} cannot be reached (GET /v2/)")
    assert "ConnectError" in message and "\n" not in message
    assert caught.value.exit_code == 1
    assert time.monotonic() - started < 5


def test_registry_that_fails_then_recovers(registry: RegistryServer, writer: LayoutWriter) -> None:
    image = writer.write_image({"app/flaky.txt": b"flaky"})
    with FaultProxy(registry.port, [Fault(times=3)]) as proxy:
        result = push(proxy.host, writer, image, "acme/flaky", "v1")
    assert len(proxy.log.failed) == 3
    assert result.counters.retries == 3
    assert result.digest == image.digest
    inspected = json.loads(skopeo_inspect(f"{registry.host}/acme/flaky:v1"))
    assert inspected["Digest"] == image.digest


def test_failed_upload_put_restarts_from_a_fresh_post(
    registry: RegistryServer, writer: LayoutWriter
) -> None:
    image = writer.write_image({"app/restart.txt": b"r" * 20_000})
    fault = Fault(method="PUT", path=r"/blobs/uploads/", times=1)
    with FaultProxy(registry.port, [fault]) as proxy:
        result = push(proxy.host, writer, image, "acme/restart", "v1")
    counts = result.counters
    assert counts.upload_restarts == 1 and counts.blob_uploads == 2
    posts = [p for m, p in proxy.log.requests if m == "POST"]
    assert len(posts) == 3  # config, layer, and the layer again after its PUT failed
    raw = skopeo_inspect(f"{registry.host}/acme/restart:v1", raw=True).encode()
    assert sha256_digest(raw) == image.digest


def test_registry_that_keeps_failing_gives_up_in_bounded_time(
    registry: RegistryServer, writer: LayoutWriter
) -> None:
    image = writer.write_image({"app/down": b"d"})
    started = time.monotonic()
    with (
        FaultProxy(registry.port, [Fault(times=10_000)]) as proxy,
        pytest.raises(RegistryUnavailable) as caught,
    ):
        push(proxy.host, writer, image, "acme/down", "v1", deadline_s=1.5, attempts=4)
    message = str(caught.value)
    assert message.startswith(f"registry {proxy.host} keeps failing (GET /v2/)")
    assert "last: HTTP 500" in message and "\n" not in message
    assert time.monotonic() - started < 5


def test_missing_programs_name_their_debian_package() -> None:
    with pytest.raises(RuntimeError, match=r"install the `docker-registry` package"):
        require_binary("/nonexistent/gonogo-no-such-registry", "docker-registry")
