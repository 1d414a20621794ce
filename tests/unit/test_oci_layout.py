"""OCI image layouts: what the writer makes reads back, and damaged layouts are refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from gonogo.images.oci_layout import (
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    REF_NAME,
    ImageIndex,
    ImageManifest,
    LayoutError,
    LayoutWriter,
    OciLayout,
    Platform,
    check_digest,
    sha256_digest,
)


def test_written_image_reads_back_with_ref_name_platform_and_config(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path)
    manifest = writer.write_image({"app/hello.txt": b"hello"}, platform=Platform("linux", "arm64"))
    writer.add_ref(manifest, "v1")

    layout = OciLayout.open(tmp_path)
    (entry,) = layout.entries()
    assert entry.ref_name == "v1"
    assert entry.annotations == {REF_NAME: "v1"}
    assert entry.platform == Platform("linux", "arm64")
    assert layout.find("v1") == entry == layout.find()

    loaded = layout.load_descriptor(entry)
    assert isinstance(loaded, ImageManifest)
    assert loaded.media_type == MEDIA_OCI_MANIFEST
    assert sha256_digest(loaded.raw) == loaded.digest == entry.digest
    assert [b.digest for b in loaded.blobs] == [loaded.config.digest, loaded.layers[0].digest]
    config = layout.load_config(loaded.config.digest)
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    # An uncompressed layer's diff_id is its own digest.
    assert config["rootfs"]["diff_ids"] == [loaded.layers[0].digest]


def test_layer_is_a_real_tar_and_gzip_layers_keep_the_uncompressed_diff_id(
    tmp_path: Path,
) -> None:
    writer = LayoutWriter(tmp_path)
    plain = writer.write_layer({"/etc/motd": b"hi\n"})
    packed = writer.write_layer({"/etc/motd": b"hi\n"}, compress=True)
    assert plain.descriptor.media_type == MEDIA_OCI_LAYER
    assert packed.descriptor.media_type == MEDIA_OCI_LAYER_GZIP
    assert plain.diff_id == packed.diff_id == plain.descriptor.digest

    data = writer.layout.read_blob(packed.descriptor.digest, packed.descriptor.size)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        member = tar.getmember("etc/motd")
        assert (member.uid, member.mtime) == (0, 0)
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"hi\n"


def test_same_content_gives_same_digests_across_layouts(tmp_path: Path) -> None:
    one = LayoutWriter(tmp_path / "one").write_image({"a": b"1"})
    two = LayoutWriter(tmp_path / "two").write_image({"a": b"1"})
    other = LayoutWriter(tmp_path / "three").write_image({"a": b"2"})
    assert one.digest == two.digest != other.digest


def test_index_with_two_platforms(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path)
    amd = writer.write_image({"bin": b"x86"}, platform=Platform("linux", "amd64"))
    arm = writer.write_image({"bin": b"arm"}, platform=Platform.parse("linux/arm64/v8"))
    index = writer.write_index([amd, arm])
    writer.add_ref(index, "1.0")

    layout = OciLayout.open(tmp_path)
    entry = layout.find("1.0")
    assert entry.is_index and entry.media_type == MEDIA_OCI_INDEX
    loaded = layout.load_manifest(entry.digest)
    assert isinstance(loaded, ImageIndex)
    assert [str(m.platform) for m in loaded.manifests] == ["linux/amd64", "linux/arm64/v8"]
    assert [m.digest for m in loaded.manifests] == [amd.digest, arm.digest]


def test_add_ref_replaces_an_entry_with_the_same_name(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path)
    first = writer.write_image({"a": b"1"})
    second = writer.write_image({"a": b"2"})
    writer.add_ref(first, "latest")
    writer.add_ref(second, "latest")
    writer.add_ref(first, "old")
    assert [(e.ref_name, e.digest) for e in OciLayout.open(tmp_path).entries()] == [
        ("latest", second.digest),
        ("old", first.digest),
    ]
    # Reopening a layout keeps what index.json already lists.
    LayoutWriter(tmp_path).add_ref(second, "new")
    assert len(OciLayout.open(tmp_path).entries()) == 3


def test_find_needs_a_name_when_several_images_are_listed(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path)
    writer.add_ref(writer.write_image({"a": b"1"}), "a")
    writer.add_ref(writer.write_image({"a": b"2"}), "b")
    layout = OciLayout.open(tmp_path)
    with pytest.raises(LayoutError, match="lists 2 images"):
        layout.find()
    with pytest.raises(LayoutError, match=r"no image named 'c' \(names: a, b\)"):
        layout.find("c")


def test_corrupt_blob_is_refused_when_read_and_when_verified(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path)
    manifest = writer.write_image({"a": b"1"})
    layout = writer.layout
    loaded = layout.load_manifest(manifest.digest)
    assert isinstance(loaded, ImageManifest)
    layer = loaded.layers[0]
    path = layout.blob_path(layer.digest)
    assert layout.verify_blob(layer.digest, layer.size) == path
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    with pytest.raises(LayoutError, match="is corrupt"):
        layout.verify_blob(layer.digest)
    with pytest.raises(LayoutError, match="is corrupt"):
        layout.read_blob(layer.digest)
    layout.blob_path(manifest.digest).write_bytes(b"{}")
    with pytest.raises(LayoutError, match="is corrupt"):
        layout.load_manifest(manifest.digest)


def test_wrong_size_and_missing_blob(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path)
    blob = writer.write_blob(b"data", "application/octet-stream")
    with pytest.raises(LayoutError, match="has 4 bytes, expected 5"):
        writer.layout.read_blob(blob.digest, 5)
    missing = sha256_digest(b"nothing")
    assert not writer.layout.has_blob(missing)
    with pytest.raises(LayoutError, match="missing from"):
        writer.layout.verify_blob(missing)


@pytest.mark.parametrize(
    "digest",
    ["sha256:../../etc/passwd", "sha512:" + "a" * 128, "sha256:" + "A" * 64, "", "abc"],
)
def test_malformed_digests_never_become_paths(tmp_path: Path, digest: str) -> None:
    with pytest.raises(LayoutError, match="not a sha256 digest"):
        OciLayout(tmp_path).blob_path(digest)
    with pytest.raises(LayoutError):
        check_digest(digest)


def test_a_folder_that_is_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not an OCI image layout"):
        OciLayout.open(tmp_path)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    with pytest.raises(LayoutError, match=r"cannot read .*index\.json"):
        OciLayout.open(tmp_path).entries()
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(LayoutError, match="not valid JSON"):
        OciLayout.open(tmp_path).entries()
    (tmp_path / "index.json").write_text('{"manifests": [{"mediaType": "x", "size": 1}]}')
    with pytest.raises(LayoutError, match="not a sha256 digest"):
        OciLayout.open(tmp_path).entries()


def test_docker_media_types_and_manifests_without_media_type(tmp_path: Path) -> None:
    """skopeo/buildah may keep Docker schema2 manifests, and mediaType is optional."""
    writer = LayoutWriter(tmp_path)
    config = writer.write_blob(b"{}", "application/vnd.docker.container.image.v1+json")
    doc = {"schemaVersion": 2, "config": config.to_json(), "layers": []}
    bare = writer.write_blob(json.dumps(doc).encode(), "ignored")
    parsed = writer.layout.load_manifest(bare.digest)
    assert isinstance(parsed, ImageManifest) and parsed.media_type == MEDIA_OCI_MANIFEST
    docker_list = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [],
    }
    listed = writer.write_blob(json.dumps(docker_list).encode(), "ignored")
    parsed_list = writer.layout.load_manifest(listed.digest)
    assert isinstance(parsed_list, ImageIndex)
    assert parsed_list.media_type == docker_list["mediaType"]
    unknown = writer.write_blob(b'{"mediaType": "text/plain"}', "ignored")
    with pytest.raises(LayoutError, match="unsupported media type"):
        writer.layout.load_manifest(unknown.digest)


def test_platform_text() -> None:
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert Platform.parse("linux/amd64") == Platform("linux", "amd64")
    with pytest.raises(LayoutError):
        Platform.parse("linux")


def test_sha256_digest_matches_hashlib() -> None:
    assert sha256_digest(b"x") == "sha256:" + hashlib.sha256(b"x").hexdigest()
