"""OCI image layout folders: read what buildah/skopeo wrote, and write tiny ones for tests.

An OCI image layout (image-spec `image-layout.md`) is a folder with an `oci-layout` marker,
an `index.json` listing the top-level manifests, and content-addressed blobs under
`blobs/<algorithm>/<hex>`. `buildah push IMG oci:/dir` and `skopeo copy ... oci:/dir` write
one. Every blob read through `OciLayout` is checked against its digest, so a truncated or
edited file is reported here rather than pushed and rejected by a registry later.

Manifests are kept as the exact bytes on disk (`raw`): a registry names a manifest by the
sha256 of its bytes, so re-serializing one would change its digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonogo.errors import GonogoError

__all__ = [
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_DOCKER_MANIFEST_LIST",
    "MEDIA_OCI_CONFIG",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_LAYER",
    "MEDIA_OCI_LAYER_GZIP",
    "MEDIA_OCI_MANIFEST",
    "REF_NAME",
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "LayerBlob",
    "LayoutError",
    "LayoutWriter",
    "OciLayout",
    "Platform",
    "check_digest",
    "parse_manifest",
    "sha256_digest",
]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST)
REF_NAME = "org.opencontainers.image.ref.name"

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_CHUNK = 1 << 20
# Manifests and configs are small; a bigger "manifest" is a wrong digest, not an image.
_MAX_DOCUMENT = 4 << 20


class LayoutError(GonogoError):
    """The OCI layout folder is missing, malformed, or a blob does not match its digest."""


def sha256_digest(data: bytes) -> str:
    """The OCI digest string of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """`digest` if it is a well-formed sha256 digest; LayoutError otherwise.

    Only sha256 is accepted: it is what every registry and tool writes, and a validated
    digest is safe to turn into a path under blobs/.
    """
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise LayoutError(f"{digest!r} is not a sha256 digest (sha256:<64 hex>)")
    return digest


@dataclass(frozen=True)
class Platform:
    """Where an image runs: `os`/`architecture` and an optional `variant` (arm64 → v8)."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64` or `linux/arm64/v8`."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise LayoutError(f"{text!r} is not a platform (os/arch or os/arch/variant)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, doc: Any) -> Platform | None:
        if not isinstance(doc, dict):
            return None
        os_name, arch = doc.get("os"), doc.get("architecture")
        if not isinstance(os_name, str) or not isinstance(arch, str):
            return None
        variant = doc.get("variant")
        return cls(os_name, arch, variant if isinstance(variant, str) and variant else None)

    def to_json(self) -> dict[str, str]:
        doc = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            doc["variant"] = self.variant
        return doc


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob: media type, digest and size, plus platform/annotations if any."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref_name(self) -> str | None:
        """The `org.opencontainers.image.ref.name` annotation (the tag in a layout)."""
        return self.annotations.get(REF_NAME)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise LayoutError(f"{where}: a descriptor is not a JSON object")
        media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
        if not isinstance(media_type, str) or not isinstance(size, int) or size < 0:
            raise LayoutError(f"{where}: descriptor lacks a mediaType or a valid size")
        try:
            check_digest(str(digest))
        except LayoutError as exc:
            raise LayoutError(f"{where}: {exc.message}") from None
        raw_notes = doc.get("annotations")
        notes = raw_notes if isinstance(raw_notes, dict) else {}
        return cls(
            media_type=media_type,
            digest=str(digest),
            size=size,
            platform=Platform.from_json(doc.get("platform")),
            annotations={str(k): str(v) for k, v in notes.items()},
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            doc["platform"] = self.platform.to_json()
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc


@dataclass(frozen=True)
class ImageManifest:
    """One image: a config blob and its layers. `raw` is the manifest's exact bytes."""

    digest: str
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Everything a registry must hold before it accepts this manifest."""
        return (self.config, *self.layers)


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform image: a list of manifest descriptors. `raw` is the exact bytes."""

    digest: str
    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes


@dataclass(frozen=True)
class LayerBlob:
    """A layer written by LayoutWriter: its descriptor and its diff_id (uncompressed sha256)."""

    descriptor: Descriptor
    diff_id: str


def _load_json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{where} is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{where} is not a JSON object")
    return doc


def parse_manifest(
    raw: bytes, digest: str, media_type: str | None = None
) -> ImageManifest | ImageIndex:
    """An image manifest or an index from its bytes (`media_type` from its descriptor).

    The document's own `mediaType` wins; without one the shape decides (`manifests` makes
    an index, `config`+`layers` an image), as the image-spec allows the field to be absent.
    """
    where = f"manifest {digest}"
    doc = _load_json(raw, where)
    declared = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else None
    kind = declared or media_type
    if kind in INDEX_MEDIA_TYPES or (kind is None and "manifests" in doc):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise LayoutError(f"{where}: an index without a `manifests` list")
        descriptors = tuple(Descriptor.from_json(e, where) for e in entries)
        return ImageIndex(digest, kind or MEDIA_OCI_INDEX, descriptors, raw)
    if kind in MANIFEST_MEDIA_TYPES or (kind is None and "layers" in doc):
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise LayoutError(f"{where}: an image manifest without a `layers` list")
        config = Descriptor.from_json(doc.get("config"), where)
        parsed_layers = tuple(Descriptor.from_json(e, where) for e in layers)
        return ImageManifest(digest, kind or MEDIA_OCI_MANIFEST, config, parsed_layers, raw)
    raise LayoutError(f"{where}: unsupported media type {kind!r}")


class OciLayout:
    """An OCI image layout folder, read-only. Blob reads are verified against digests."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def open(cls, root: Path) -> OciLayout:
        """The layout at `root`; LayoutError if the folder is not an OCI layout."""
        layout = cls(root)
        marker = layout.root / "oci-layout"
        if not marker.is_file():
            raise LayoutError(f"{layout.root} is not an OCI image layout (no oci-layout file)")
        doc = _load_json(marker.read_bytes(), str(marker))
        if not isinstance(doc.get("imageLayoutVersion"), str):
            raise LayoutError(f"{marker} has no imageLayoutVersion")
        return layout

    # -- index.json -----------------------------------------------------------------

    def entries(self) -> list[Descriptor]:
        """The manifests index.json lists, in order (with platform and ref.name if set)."""
        path = self.root / "index.json"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LayoutError(f"cannot read {path}: {exc.strerror or exc}") from None
        doc = _load_json(data, str(path))
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise LayoutError(f"{path} has no `manifests` list")
        return [Descriptor.from_json(e, str(path)) for e in entries]

    def find(self, ref_name: str | None = None) -> Descriptor:
        """The index.json entry named `ref_name`, or the only entry when no name is given."""
        entries = self.entries()
        if ref_name is not None:
            named = [e for e in entries if e.ref_name == ref_name]
            if not named:
                known = ", ".join(sorted({e.ref_name for e in entries if e.ref_name})) or "none"
                raise LayoutError(f"{self.root} has no image named {ref_name!r} (names: {known})")
            return named[0]
        if len(entries) != 1:
            raise LayoutError(
                f"{self.root} lists {len(entries)} images; name one "
                "(org.opencontainers.image.ref.name)"
            )
        return entries[0]

    # -- blobs ----------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, hexpart = check_digest(digest).split(":", 1)
        return self.root / "blobs" / algorithm / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def verify_blob(self, digest: str, size: int | None = None) -> Path:
        """The blob's path after hashing the whole file (streamed, for big layers)."""
        path = self.blob_path(digest)
        hasher = hashlib.sha256()
        seen = 0
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    hasher.update(chunk)
                    seen += len(chunk)
        except OSError as exc:
            raise LayoutError(f"blob {digest} missing from {self.root}: {exc.strerror}") from None
        self._check(digest, "sha256:" + hasher.hexdigest(), size, seen)
        return path

    def read_blob(self, digest: str, size: int | None = None) -> bytes:
        """A small blob's bytes (manifest, config), verified against its digest and size."""
        path = self.blob_path(digest)
        try:
            if path.stat().st_size > _MAX_DOCUMENT:
                raise LayoutError(f"blob {digest} is too big to be a manifest or config")
            data = path.read_bytes()
        except OSError as exc:
            raise LayoutError(f"blob {digest} missing from {self.root}: {exc.strerror}") from None
        self._check(digest, sha256_digest(data), size, len(data))
        return data

    def _check(self, digest: str, actual: str, size: int | None, seen: int) -> None:
        if actual != digest:
            raise LayoutError(f"blob {digest} in {self.root} is corrupt (its sha256 is {actual})")
        if size is not None and size != seen:
            raise LayoutError(f"blob {digest} in {self.root} has {seen} bytes, expected {size}")

    # -- documents ------------------------------------------------------------------

    def load_manifest(
        self, digest: str, media_type: str | None = None
    ) -> ImageManifest | ImageIndex:
        """The manifest or index stored under `digest` (verified)."""
        return parse_manifest(self.read_blob(digest), digest, media_type)

    def load_descriptor(self, descriptor: Descriptor) -> ImageManifest | ImageIndex:
        raw = self.read_blob(descriptor.digest, descriptor.size)
        return parse_manifest(raw, descriptor.digest, descriptor.media_type)

    def load_config(self, digest: str) -> dict[str, Any]:
        """An image config (architecture, os, rootfs.diff_ids, config...) as JSON."""
        return _load_json(self.read_blob(digest), f"config {digest}")


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _layer_tar(files: Mapping[str, bytes]) -> bytes:
    """A tar of `files` with fixed owners and times, so equal contents give equal digests."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class LayoutWriter:
    """Writes a small OCI layout (for tests and fixtures): blobs, manifests, an index.

    Output is deterministic: the same files and platform give the same digests, which is
    what lets tests build "the same layer" twice and count registry uploads.
    """

    def __init__(self, root: Path) -> None:
        self.layout = OciLayout(Path(root))
        (self.layout.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.layout.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        index = self.layout.root / "index.json"
        self._entries = self.layout.entries() if index.is_file() else []
        self._write_index_json()

    def write_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(data)
        path = self.layout.blob_path(digest)
        if not path.is_file():
            path.write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def write_layer(self, files: Mapping[str, bytes], *, compress: bool = False) -> LayerBlob:
        """A layer holding `files` (path → bytes), gzip-compressed or plain tar."""
        tar = _layer_tar(files)
        if compress:
            blob = self.write_blob(gzip.compress(tar, mtime=0), MEDIA_OCI_LAYER_GZIP)
        else:
            blob = self.write_blob(tar, MEDIA_OCI_LAYER)
        return LayerBlob(blob, sha256_digest(tar))

    def write_config(
        self,
        platform: Platform,
        diff_ids: Sequence[str],
        *,
        config: Mapping[str, Any] | None = None,
    ) -> Descriptor:
        doc: dict[str, Any] = {
            **platform.to_json(),
            "config": dict(config or {"Cmd": ["/bin/true"]}),
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        }
        return self.write_blob(_canonical(doc), MEDIA_OCI_CONFIG)

    def write_manifest(
        self,
        config: Descriptor,
        layers: Sequence[Descriptor],
        *,
        platform: Platform | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """An image manifest; the returned descriptor carries `platform` for an index."""
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        if annotations:
            doc["annotations"] = dict(annotations)
        blob = self.write_blob(_canonical(doc), MEDIA_OCI_MANIFEST)
        return Descriptor(blob.media_type, blob.digest, blob.size, platform=platform)

    def write_index(
        self, manifests: Sequence[Descriptor], *, annotations: Mapping[str, str] | None = None
    ) -> Descriptor:
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        if annotations:
            doc["annotations"] = dict(annotations)
        return self.write_blob(_canonical(doc), MEDIA_OCI_INDEX)

    def write_image(
        self,
        files: Mapping[str, bytes],
        *,
        platform: Platform | None = None,
        base_layers: Sequence[LayerBlob] = (),
        compress: bool = False,
    ) -> Descriptor:
        """A one-layer image on top of `base_layers`; returns its manifest descriptor."""
        where = platform or Platform("linux", "amd64")
        layers = [*base_layers, self.write_layer(files, compress=compress)]
        config = self.write_config(where, [layer.diff_id for layer in layers])
        return self.write_manifest(config, [b.descriptor for b in layers], platform=where)

    def add_ref(self, descriptor: Descriptor, ref_name: str | None = None) -> Descriptor:
        """List `descriptor` in index.json (named `ref_name`, replacing that name's entry)."""
        notes = dict(descriptor.annotations)
        if ref_name is not None:
            notes[REF_NAME] = ref_name
            self._entries = [e for e in self._entries if e.ref_name != ref_name]
        entry = Descriptor(
            descriptor.media_type, descriptor.digest, descriptor.size, descriptor.platform, notes
        )
        self._entries.append(entry)
        self._write_index_json()
        return entry

    def _write_index_json(self) -> None:
        doc = {"schemaVersion": 2, "manifests": [e.to_json() for e in self._entries]}
        target = self.layout.root / "index.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(doc, indent=2) + "\n")
        temporary.replace(target)
