"""Real buildah builds of small FROM-scratch images, exported to OCI layouts and inspected.

No network: every Dockerfile is FROM scratch with no RUN, which also lets a foreign platform
build without an emulator. One private vfs store serves the whole module.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from buildah_env import BuildahStore, buildah_store
from gonogo.config.schema import ImageChecks
from gonogo.errors import EXIT_USAGE
from gonogo.images.build import (
    BuildFailed,
    BuildSpec,
    BuiltImage,
    DockerfileMissing,
    build_image,
    detect_builder,
    oci_labels,
)
from gonogo.images.inspect import (
    LayoutError,
    inspect_layout,
    iter_images,
    read_layout,
    structure_checks,
)

pytestmark = pytest.mark.integration

SHA = "0123456789abcdef0123456789abcdef01234567"
CHECKS = ImageChecks(user_not_root=True, dirs=["/app/logs", "/app/tmp"])
SECRET = "s3cr3t-value-do-not-print"


def dockerfile(user: str = "USER 10001:10001", *, dirs: tuple[str, ...] = ("/app/logs", "/app/tmp"),
               extra: str = "") -> str:  # fmt: skip
    workdirs = "\n".join(f"WORKDIR {d}" for d in dirs)
    return f"""\
FROM scratch
ARG VERSION=dev
COPY server /app/server
{workdirs}
WORKDIR /app
{extra}
{user}
EXPOSE 8000
ENTRYPOINT ["/app/server"]
LABEL app.version=$VERSION
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildahStore]:
    with buildah_store(tmp_path_factory.mktemp("buildah")) as s:
        yield s


def make_spec(store: BuildahStore, tmp: Path, text: str | None, name: str,
              files: dict[str, str] | None = None, **overrides: Any) -> BuildSpec:  # fmt: skip
    context = tmp / "ctx"
    context.mkdir(exist_ok=True)
    (context / "server").write_text("#!/bin/false\n")
    for rel, content in (files or {}).items():
        (context / rel).write_text(content)
    if text is not None:
        (context / "Dockerfile").write_text(text)
    spec = BuildSpec(
        context=context,
        dockerfile=Path("Dockerfile"),
        tag=f"localhost/gonogo-test/{name}:1",
        layout=tmp / "layout",
        log_path=tmp / "evidence" / "build.log",
        builder=store.builder(),
        ref=SHA[:12],
        build_args={"VERSION": "1.2.3"},
        labels=oci_labels(
            revision=SHA,
            source="https://example.invalid/app",
            created="2026-01-02T03:04:05Z",
            version="1.2.3",
        ),
        isolation="chroot",
    )
    return replace(spec, **overrides)


def build(store: BuildahStore, tmp: Path, text: str, name: str, **kw: Any) -> BuiltImage:
    return build_image(make_spec(store, tmp, text, name, **kw))


def verdicts(built: BuiltImage, **kw: Any) -> dict[str, Any]:
    facts = inspect_layout(built.layout, built.images[0].manifest_digest)
    return {r.id: r for r in structure_checks(facts, CHECKS, **kw)}


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


# -- builds ----------------------------------------------------------------------------------


def test_detection_picks_buildah_when_no_engine_answers() -> None:
    # The machine has the docker CLI but no engine; CI has buildah and may have neither.
    builder = detect_builder()
    assert builder.name in ("buildah", "docker")
    if builder.name == "buildah":
        assert "buildah" in builder.reason


def test_good_image_passes_every_check(store: BuildahStore, tmp_path: Path) -> None:
    built = build(store, tmp_path, dockerfile(), "good")

    assert built.builder == "buildah"
    assert built.index_digest is None and len(built.images) == 1
    image = built.images[0]
    assert built.digest == image.manifest_digest and built.image_id == image.image_id
    # The digests are the bytes in the layout: what a push will send.
    assert sha256_file(blob(built.layout, image.manifest_digest)) == image.manifest_digest
    assert sha256_file(blob(built.layout, image.image_id)) == image.image_id
    assert read_layout(built.layout, SHA[:12]).digest == built.digest

    manifest = json.loads(blob(built.layout, image.manifest_digest).read_text())
    config = json.loads(blob(built.layout, image.image_id).read_text())
    assert manifest["annotations"]["org.opencontainers.image.revision"] == SHA
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://example.invalid/app"
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert labels["app.version"] == "1.2.3"  # the build arg reached the Dockerfile

    results = verdicts(built, ports=[8000], entrypoint=["/app/server"])
    assert {k: r.verdict for k, r in results.items()} == {
        "image-user": "GO", "image-dirs": "GO", "image-entrypoint": "GO",
        "image-ports": "GO", "image-secrets": "GO",
    }  # fmt: skip
    assert '"User": "10001:10001"' in results["image-user"].evidence
    assert "/app/logs" in results["image-dirs"].evidence.splitlines()
    log = built.log_path.read_text()
    assert "STEP 1/" in log and "--build-arg VERSION=1.2.3" in log


@pytest.mark.parametrize(
    ("user", "why"),
    [("USER root", "'root' is root"), ("", "no USER"), ("USER 0:0", "uid 0")],
    ids=["root", "no-user", "uid0"],
)
def test_root_user_is_refused(store: BuildahStore, tmp_path: Path, user: str, why: str) -> None:
    built = build(store, tmp_path, dockerfile(user), "root")
    result = verdicts(built)["image-user"]
    assert result.verdict == "NO-GO"
    assert why in result.reason and "root" in result.reason
    assert "USER" in result.fix


@pytest.mark.parametrize(("user", "verdict"), [("toor", "NO-GO"), ("app", "GO")])
def test_named_user_resolved_through_etc_passwd(
    store: BuildahStore, tmp_path: Path, user: str, verdict: str
) -> None:
    passwd = "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"
    text = dockerfile(f"USER {user}", extra="COPY passwd /etc/passwd")
    built = build(store, tmp_path, text, "named", files={"passwd": passwd})
    result = verdicts(built)["image-user"]
    assert result.verdict == verdict, result.reason


def test_missing_directory_is_refused(store: BuildahStore, tmp_path: Path) -> None:
    built = build(store, tmp_path, dockerfile(dirs=("/app/tmp",)), "nologs")
    result = verdicts(built)["image-dirs"]
    assert result.verdict == "NO-GO"
    assert "/app/logs (missing)" in result.reason
    listing = result.evidence.splitlines()
    assert "/app/tmp" in listing and "/app/logs" not in listing
    assert "WORKDIR" in result.fix


def test_secret_env_is_flagged_by_name_only(store: BuildahStore, tmp_path: Path) -> None:
    text = dockerfile(extra=f"ENV API_KEY={SECRET} LOG_LEVEL=info EMPTY_TOKEN=")
    built = build(store, tmp_path, text, "secret")
    results = verdicts(built)
    result = results["image-secrets"]
    assert result.verdict == "NO-GO"
    assert "env API_KEY" in result.reason and "API_KEY" in result.reason
    assert "EMPTY_TOKEN" not in result.reason  # no value, nothing leaked
    everything = json.dumps([r.to_dict() for r in results.values()])
    assert SECRET not in everything
    assert "API_KEY=<redacted>" in result.evidence
    # The builder echoes the step; the build log shows the name, never the value.
    log = built.log_path.read_text()
    assert "API_KEY=<redacted>" in log and "LOG_LEVEL=info" in log
    assert SECRET not in log


def test_two_platforms_make_an_index(store: BuildahStore, tmp_path: Path) -> None:
    platforms = ("linux/amd64", "linux/arm64")
    built = build(store, tmp_path, dockerfile(), "multi", platforms=platforms)

    assert built.index_digest == built.digest and built.image_id is None
    assert built.platforms == platforms
    index = json.loads(blob(built.layout, built.digest).read_text())
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    ] == list(platforms)
    for image in built.images:
        config = json.loads(blob(built.layout, image.image_id).read_text())
        assert f"{config['os']}/{config['architecture']}" == image.platform
    facts = list(iter_images(built.layout, SHA[:12]))
    assert [f.platform for f in facts] == list(platforms)
    for f in facts:
        assert all(r.go for r in structure_checks(f, CHECKS)), f.platform
    with pytest.raises(LayoutError, match="2 image manifests"):
        inspect_layout(built.layout)


def test_failing_dockerfile_names_the_step(store: BuildahStore, tmp_path: Path) -> None:
    text = "FROM scratch\nCOPY server /app/server\nCOPY missing.txt /app/missing.txt\nUSER 1000\n"
    spec = make_spec(store, tmp_path, text, "broken", labels={})
    with pytest.raises(BuildFailed) as info:
        build_image(spec)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "STEP 3/4: COPY missing.txt /app/missing.txt" in message
    assert "no such file or directory" in message
    assert str(spec.log_path) in message
    assert info.value.exit_code == EXIT_USAGE


def test_missing_dockerfile_names_the_path(store: BuildahStore, tmp_path: Path) -> None:
    spec = make_spec(store, tmp_path, None, "none", dockerfile=Path("docker/Dockerfile.prod"))
    with pytest.raises(DockerfileMissing) as info:
        build_image(spec)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert str(tmp_path / "ctx" / "docker" / "Dockerfile.prod") in message
    assert info.value.exit_code == EXIT_USAGE
    assert not spec.log_path.exists()  # refused before anything ran


# -- the layout reader on hand-made layouts (whiteouts, compression) -------------------------


def _tar(entries: list[tuple[str, str | None]]) -> bytes:
    """A layer: (name, None) is a directory, (name, text) a file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in entries:
            info = tarfile.TarInfo(name)
            if text is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = text.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(layout: Path, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    blob(layout, digest).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _layout(tmp: Path, layers: list[bytes], user: str) -> Path:
    layout = tmp / "hand"
    config = {"os": "linux", "architecture": "amd64",
              "config": {"User": user, "Cmd": ["/bin/app"]}, "history": []}  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_put(layout, json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_put(layout, d)}
            for d in layers
        ],
    }
    desc = {"mediaType": manifest["mediaType"], **_put(layout, json.dumps(manifest).encode())}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layout


def test_layout_reader_applies_whiteouts_and_reads_gzip(tmp_path: Path) -> None:
    lower = gzip.compress(_tar([
        ("etc/", None), ("etc/passwd", "svc:x:0:0::/:/bin/sh\n"),
        ("app/", None), ("app/logs/", None), ("app/logs/old.log", "x"),
        ("app/cache/", None), ("app/cache/a", "x"), ("./srv/data/file", "x"),
    ]))  # fmt: skip
    upper = _tar([
        ("app/logs/.wh.old.log", ""), ("app/cache/.wh..wh..opq", ""), ("app/cache/b", "y"),
        ("etc/.wh.passwd", ""), ("app/.wh.logs", ""), ("app/logs/", None),
    ])  # fmt: skip
    facts = inspect_layout(_layout(tmp_path, [lower, upper], "svc"))

    assert facts.lookup("/app/logs") is not None  # whited out below, re-created above
    assert "/app/logs/old.log" not in facts.files
    assert sorted(p for p in facts.files if p.startswith("/app/cache/")) == ["/app/cache/b"]
    assert facts.lookup("/srv/data") is not None  # implied by a file beneath it
    # /etc/passwd is gone, so "svc" (uid 0 in the lower layer) no longer resolves.
    assert facts.passwd is None
    result = {r.id: r for r in structure_checks(facts, CHECKS)}["image-user"]
    assert result.verdict == "NO-GO" and "not defined" in result.reason


def test_layout_reader_resolves_symlinked_directories(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("data/", "data/logs/", "app/"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        link = tarfile.TarInfo("app/logs")
        link.type, link.linkname = tarfile.SYMTYPE, "../data/logs"
        tar.addfile(link)
    facts = inspect_layout(_layout(tmp_path, [buf.getvalue()], "1000"))
    dirs = {r.id: r for r in structure_checks(facts, ImageChecks(dirs=["/app/logs"]))}
    assert dirs["image-dirs"].verdict == "GO"
    assert dirs["image-user"].verdict == "GO"


def test_attestation_manifests_in_an_index_are_not_images(tmp_path: Path) -> None:
    layout = _layout(tmp_path, [_tar([("app/", None)])], "1000")
    image = json.loads((layout / "index.json").read_text())["manifests"][0]
    attestation = {
        **image,
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**image, "platform": {"os": "linux", "architecture": "amd64"}}, attestation],
    }
    desc = {"mediaType": index["mediaType"], **_put(layout, json.dumps(index).encode())}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))

    entry = read_layout(layout)
    assert entry.is_index and [m.platform for m in entry.manifests] == ["linux/amd64"]
    assert inspect_layout(layout).platform == "linux/amd64"
