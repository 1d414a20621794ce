"""Read a built image from an OCI image layout and check its structure before a push.

The reader is deliberately small (index.json -> manifest -> config + layer tars) so the
checks see exactly the bytes that will be pushed, not what a builder's local store says.
"""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gonogo.config.schema import ImageChecks
from gonogo.errors import GonogoError
from gonogo.evidence import looks_secret
from gonogo.gates.model import GateResult

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
_REF_NAME = "org.opencontainers.image.ref.name"
_REFERENCE_TYPE = "vnd.docker.reference.type"
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
# Manifests and configs are small; a huge "JSON" blob means a broken or hostile layout.
_MAX_JSON = 8 * 1024 * 1024
_MAX_PASSWD = 1024 * 1024
_LISTING_CAP = 200
# NAME=value inside a history line: ENV/ARG instructions, `export`, and the `|1 NAME=value`
# prefix builders record for build args a RUN step saw.
_ASSIGNMENT = re.compile(
    r"(?P<pre>(?:^|[\s|;&(]))(?P<name>[A-Za-z_][A-Za-z0-9_]*)="
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s;&|)]*)"
)
# The legacy `ENV NAME value` form, recorded verbatim by some builders.
_ENV_SPACE_FORM = re.compile(
    r"#\(nop\)\s+ENV\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<value>\S.*)$"
)
_VAR_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$")

EntryKind = Literal["dir", "file", "symlink", "hardlink", "other"]


class LayoutError(GonogoError):
    """The OCI layout is missing, malformed, or does not say which image is meant."""


@dataclass(frozen=True)
class ManifestRef:
    """One image manifest in a layout, with the platform it is for."""

    digest: str
    platform: str
    config_digest: str


@dataclass(frozen=True)
class LayoutEntry:
    """A top-level entry of index.json: one image, or an index of per-platform images."""

    digest: str
    media_type: str
    ref: str | None
    manifests: tuple[ManifestRef, ...]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class FsEntry:
    path: str
    kind: EntryKind
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    size: int = 0
    target: str = ""


@dataclass(frozen=True)
class ImageFacts:
    """What the structure checks read: the config JSON and the merged filesystem."""

    layout: Path
    manifest_digest: str
    config_digest: str
    platform: str
    config: Mapping[str, Any]
    files: Mapping[str, FsEntry]
    passwd: str | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_config(self) -> Mapping[str, Any]:
        value = self.config.get("config") or {}
        return value if isinstance(value, Mapping) else {}

    @property
    def user(self) -> str:
        return str(self.run_config.get("User") or "")

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in self.run_config.get("Env") or []:
            name, _, value = str(item).partition("=")
            pairs.append((name, value))
        return tuple(pairs)

    @property
    def exposed_ports(self) -> tuple[str, ...]:
        return tuple(sorted(self.run_config.get("ExposedPorts") or {}))

    @property
    def entrypoint(self) -> tuple[str, ...]:
        return tuple(str(x) for x in self.run_config.get("Entrypoint") or [])

    @property
    def cmd(self) -> tuple[str, ...]:
        return tuple(str(x) for x in self.run_config.get("Cmd") or [])

    @property
    def labels(self) -> Mapping[str, str]:
        return dict(self.run_config.get("Labels") or {})

    @property
    def history(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(h for h in self.config.get("history") or [] if isinstance(h, Mapping))

    def directories(self) -> list[str]:
        return sorted(p for p, e in self.files.items() if e.kind == "dir")

    def lookup(self, path: str) -> FsEntry | None:
        return lookup(self.files, path)


# -- layout reading --------------------------------------------------------------------------


def _blob_path(layout: Path, digest: str) -> Path:
    # The digest becomes a path, so it must be exactly algorithm:hex (no traversal).
    if not _DIGEST.match(digest):
        raise LayoutError(f"{layout}: malformed digest {digest!r}")
    algorithm, hexpart = digest.split(":", 1)
    path = layout / "blobs" / algorithm / hexpart
    if not path.is_file():
        raise LayoutError(f"{layout}: blob {digest} is missing")
    return path


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_JSON:
            raise LayoutError(f"{path}: {what} is larger than {_MAX_JSON} bytes")
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{path}: cannot read {what} ({exc})") from exc
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: {what} is not a JSON object")
    return data


def _blob_json(layout: Path, digest: str, what: str) -> dict[str, Any]:
    return _read_json(_blob_path(layout, digest), f"{what} {digest}")


def _platform_text(platform: Mapping[str, Any]) -> str:
    parts = [str(platform.get("os") or "?"), str(platform.get("architecture") or "?")]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def _manifest_ref(layout: Path, desc: Mapping[str, Any]) -> ManifestRef:
    digest = str(desc.get("digest", ""))
    manifest = _blob_json(layout, digest, "manifest")
    config_digest = str((manifest.get("config") or {}).get("digest", ""))
    platform = desc.get("platform")
    if not isinstance(platform, Mapping):
        # A single-image entry carries no platform; the config says what it was built for.
        platform = _blob_json(layout, config_digest, "config")
    return ManifestRef(digest, _platform_text(platform), config_digest)


def _flatten(layout: Path, desc: Mapping[str, Any], depth: int = 0) -> list[ManifestRef]:
    media_type = str(desc.get("mediaType", ""))
    if (desc.get("annotations") or {}).get(_REFERENCE_TYPE):
        # BuildKit's provenance/SBOM attestations are manifests too, for platform unknown/unknown.
        return []
    if media_type in MANIFEST_TYPES:
        return [_manifest_ref(layout, desc)]
    if media_type not in INDEX_TYPES:
        # Attestations and other artifacts in an index are not runnable images.
        return []
    if depth > 4:
        raise LayoutError(f"{layout}: indexes nested too deeply")
    index = _blob_json(layout, str(desc.get("digest", "")), "index")
    refs: list[ManifestRef] = []
    for child in index.get("manifests") or []:
        refs.extend(_flatten(layout, child, depth + 1))
    return refs


def _top_entries(layout: Path) -> list[dict[str, Any]]:
    if not (layout / "index.json").is_file():
        raise LayoutError(f"{layout}: not an OCI image layout (no index.json)")
    entries = _read_json(layout / "index.json", "index.json").get("manifests") or []
    return [e for e in entries if isinstance(e, dict)]


def read_layout(layout: Path, ref: str | None = None) -> LayoutEntry:
    """The layout's entry named `ref` (or its only entry), with every platform's manifest."""
    entries = _top_entries(layout)
    if ref is not None:
        chosen = [e for e in entries if (e.get("annotations") or {}).get(_REF_NAME) == ref]
        if not chosen:
            raise LayoutError(f"{layout}: no image named {ref!r} in index.json")
    else:
        chosen = entries
    if len(chosen) != 1:
        names = ", ".join(str((e.get("annotations") or {}).get(_REF_NAME, "?")) for e in chosen)
        raise LayoutError(f"{layout}: {len(chosen)} images in index.json ({names}); name one")
    top = chosen[0]
    return LayoutEntry(
        digest=str(top.get("digest", "")),
        media_type=str(top.get("mediaType", "")),
        ref=(top.get("annotations") or {}).get(_REF_NAME),
        manifests=tuple(_flatten(layout, top)),
    )


def _all_manifests(layout: Path) -> list[ManifestRef]:
    refs: list[ManifestRef] = []
    for entry in _top_entries(layout):
        refs.extend(_flatten(layout, entry))
    return refs


def _choose_manifest(layout: Path, manifest_digest: str | None) -> ManifestRef:
    refs = _all_manifests(layout)
    if manifest_digest is not None:
        for ref in refs:
            if ref.digest == manifest_digest:
                return ref
        raise LayoutError(f"{layout}: no image manifest {manifest_digest}")
    unique = {r.digest: r for r in refs}
    if len(unique) != 1:
        listed = ", ".join(f"{r.platform} {r.digest}" for r in unique.values()) or "none"
        raise LayoutError(f"{layout}: {len(unique)} image manifests ({listed}); pass a digest")
    return next(iter(unique.values()))


# -- filesystem from layers ------------------------------------------------------------------


def _normalise(name: str) -> str:
    path = posixpath.normpath("/" + name)
    # normpath keeps a leading "//" (POSIX allows it to mean something else); images don't.
    return "/" + path.lstrip("/")


def _kind(member: tarfile.TarInfo) -> EntryKind:
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfile():
        return "file"
    return "other"


@dataclass
class _Layer:
    entries: list[FsEntry] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    passwd: str | None = None


def _read_layer(path: Path, digest: str) -> _Layer:
    layer = _Layer()
    try:
        # "r|*" streams and detects gzip/bzip2/xz itself, so media types that lie don't matter.
        with path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                _read_member(tar, member, layer)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise LayoutError(
            f"layer {digest}: cannot read as tar, tar+gzip, bzip2 or xz ({exc})"
        ) from exc
    return layer


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, layer: _Layer) -> None:
    path = _normalise(member.name)
    if path == "/":
        return
    parent, base = posixpath.split(path)
    if base == ".wh..wh..opq":
        layer.opaque.append(parent)
    elif base.startswith(".wh."):
        layer.whiteouts.append(posixpath.join(parent, base[4:]))
    else:
        target = member.linkname if (member.issym() or member.islnk()) else ""
        entry = FsEntry(
            path, _kind(member), member.mode, member.uid, member.gid, member.size, target
        )
        layer.entries.append(entry)
        if path == "/etc/passwd" and member.isfile() and member.size <= _MAX_PASSWD:
            handle = tar.extractfile(member)
            if handle is not None:
                layer.passwd = handle.read().decode("utf-8", "replace")


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def _apply(files: dict[str, FsEntry], layer: _Layer, passwd: str | None) -> str | None:
    # Whiteouts hide what lower layers had, never what this layer adds, so remove first.
    for directory in layer.opaque:
        for path in [p for p in files if _under(p, directory) and p != directory]:
            del files[path]
    for gone in layer.whiteouts:
        for path in [p for p in files if _under(p, gone)]:
            del files[path]
    if "/etc/passwd" not in files:
        passwd = None
    for entry in layer.entries:
        _add_parents(files, entry.path)
        files[entry.path] = entry
        if entry.path == "/etc/passwd":
            # Replaced here: by readable text, or by a link or oversized file we do not follow.
            passwd = layer.passwd
    return passwd


def _add_parents(files: dict[str, FsEntry], path: str) -> None:
    # Tars may list "app/logs/x" without "app/" or "app/logs/": the directories still exist.
    parent = posixpath.dirname(path)
    while parent != "/" and parent not in files:
        files[parent] = FsEntry(parent, "dir")
        parent = posixpath.dirname(parent)


def merged_filesystem(layout: Path, layers: Sequence[str]) -> tuple[dict[str, FsEntry], str | None]:
    """The filesystem the layers make, lowest first, and the /etc/passwd text if present."""
    files: dict[str, FsEntry] = {}
    passwd: str | None = None
    for digest in layers:
        passwd = _apply(files, _read_layer(_blob_path(layout, digest), digest), passwd)
    return files, passwd


def lookup(files: Mapping[str, FsEntry], path: str) -> FsEntry | None:
    """The entry at `path`, following symlinks inside the image (as the runtime would)."""
    parts = [p for p in _normalise(path).split("/") if p]
    current, hops, i = "/", 0, 0
    while i < len(parts):
        candidate = posixpath.join(current, parts[i])
        entry = files.get(candidate)
        if entry is None:
            return None
        if entry.kind == "symlink":
            hops += 1
            if hops > 40:  # the kernel's own loop limit
                return None
            base = "/" if entry.target.startswith("/") else current
            resolved = _normalise(posixpath.join(base, entry.target))
            parts = [p for p in resolved.split("/") if p] + parts[i + 1 :]
            current, i = "/", 0
            continue
        current, i = candidate, i + 1
    return files.get(current, FsEntry("/", "dir"))


def inspect_layout(layout: Path, manifest_digest: str | None = None) -> ImageFacts:
    """Facts about one image in an OCI layout; `manifest_digest` picks one of several."""
    layout = Path(layout)
    ref = _choose_manifest(layout, manifest_digest)
    manifest = _blob_json(layout, ref.digest, "manifest")
    config = _blob_json(layout, ref.config_digest, "config")
    layers = [str(layer.get("digest", "")) for layer in manifest.get("layers") or []]
    files, passwd = merged_filesystem(layout, layers)
    return ImageFacts(
        layout=layout,
        manifest_digest=ref.digest,
        config_digest=ref.config_digest,
        platform=ref.platform,
        config=config,
        files=files,
        passwd=passwd,
        manifest=manifest,
    )


# -- users -----------------------------------------------------------------------------------


def passwd_uid(passwd: str | None, name: str) -> int | None:
    """The uid /etc/passwd gives `name`, or None when it is not listed."""
    for line in (passwd or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].strip().isdigit():
            return int(fields[2])
    return None


def user_verdict(user: str, passwd: str | None) -> tuple[bool, str]:
    """(acceptable, description) for a config User such as "", "root", "1000:1000", "app"."""
    name = user.split(":", 1)[0].strip()
    if name in ("", "root"):
        shown = "no USER (defaults to root)" if not user.strip() else f"user {user!r}"
        return False, f"{shown} is root"
    if name.isdigit():
        uid = int(name)
        return uid != 0, f"user {user!r} is uid {uid}" + (" (root)" if uid == 0 else "")
    listed = passwd_uid(passwd, name)
    if listed is None:
        where = "/etc/passwd" if passwd is not None else "the image (it has no /etc/passwd)"
        # The runtime refuses to start a container whose named user it cannot resolve.
        return False, f"user {name!r} is not defined in {where}; the container would not start"
    root = " (root)" if listed == 0 else ""
    return listed != 0, f"user {user!r} is uid {listed} in /etc/passwd{root}"


# -- secrets ---------------------------------------------------------------------------------


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _secret_value(name: str, value: str) -> bool:
    value = _unquote(value.strip())
    # `ENV TOKEN=$TOKEN` in history is a reference; the expanded value shows up in Env.
    return looks_secret(name) and bool(value) and not _VAR_REFERENCE.match(value)


def history_secret_names(created_by: str) -> list[str]:
    """Names of secret-looking variables given a literal value in one history line."""
    names = [
        m.group("name")
        for m in _ASSIGNMENT.finditer(created_by)
        if _secret_value(m.group("name"), m.group("value"))
    ]
    legacy = _ENV_SPACE_FORM.search(created_by)
    if legacy and _secret_value(*legacy.group(1, 2)):
        names.append(legacy.group("name"))
    return list(dict.fromkeys(names))


def redact_history_line(created_by: str) -> str:
    def hide(m: re.Match[str]) -> str:
        if _secret_value(m.group("name"), m.group("value")):
            return f"{m.group('pre')}{m.group('name')}=<redacted>"
        return m.group(0)

    text = _ASSIGNMENT.sub(hide, created_by)
    legacy = _ENV_SPACE_FORM.search(text)
    if legacy and _secret_value(*legacy.group(1, 2)):
        text = text[: legacy.start("value")] + "<redacted>"
    return text


def secret_findings(facts: ImageFacts) -> list[str]:
    """Where secrets sit, by name only: 'env API_KEY', 'history[3] API_KEY'."""
    found = [f"env {name}" for name, value in facts.env if _secret_value(name, value)]
    for i, step in enumerate(facts.history):
        for name in history_secret_names(str(step.get("created_by") or "")):
            found.append(f"history[{i}] {name}")
    return found


def redacted_config(facts: ImageFacts, *, history: bool = False) -> dict[str, Any]:
    """The image config for evidence, with secret values replaced: evidence gets shared."""
    run = dict(facts.run_config)
    if "Env" in run:
        run["Env"] = [
            f"{n}=<redacted>" if _secret_value(n, v) else f"{n}={v}" for n, v in facts.env
        ]
    doc: dict[str, Any] = {
        "platform": facts.platform,
        "config_digest": facts.config_digest,
        "manifest_digest": facts.manifest_digest,
        "config": run,
    }
    if history:
        doc["history"] = [
            {**step, "created_by": redact_history_line(str(step.get("created_by") or ""))}
            for step in facts.history
        ]
    return doc


def _config_json(facts: ImageFacts, *, history: bool = False) -> str:
    return json.dumps(redacted_config(facts, history=history), indent=2, sort_keys=True)


# -- structure checks ------------------------------------------------------------------------


def _check_user(facts: ImageFacts, checks: ImageChecks) -> GateResult:
    ok, description = user_verdict(facts.user, facts.passwd)
    evidence = f"config.User = {facts.user!r}\n{_config_json(facts)}"
    if not checks.user_not_root:
        return GateResult(
            "image-user", "GO", f"not checked (user_not_root = false): {description}", evidence
        )
    if ok:
        return GateResult("image-user", "GO", f"{facts.platform}: {description}", evidence)
    return GateResult(
        "image-user",
        "NO-GO",
        f"{facts.platform}: {description}",
        evidence,
        fix="set a non-root numeric user in the Dockerfile, e.g. `USER 10001:10001`, and rebuild",
    )


def _listing(facts: ImageFacts) -> str:
    dirs = facts.directories()
    shown = "\n".join(dirs[:_LISTING_CAP])
    more = f"\n... {len(dirs) - _LISTING_CAP} more" if len(dirs) > _LISTING_CAP else ""
    return f"directories in the image ({len(dirs)}):\n{shown}{more}"


def _check_dirs(facts: ImageFacts, checks: ImageChecks) -> GateResult:
    wanted = [_normalise(d) for d in checks.dirs]
    problems = []
    for path in wanted:
        entry = facts.lookup(path)
        if entry is None:
            problems.append(f"{path} (missing)")
        elif entry.kind != "dir":
            problems.append(f"{path} (a {entry.kind}, not a directory)")
    evidence = _listing(facts)
    if not wanted:
        return GateResult(
            "image-dirs", "GO", "no directories required ([build.image].dirs)", evidence
        )
    if not problems:
        return GateResult("image-dirs", "GO", f"present: {', '.join(wanted)}", evidence)
    return GateResult(
        "image-dirs",
        "NO-GO",
        f"{facts.platform}: required directories absent: {', '.join(problems)}",
        evidence,
        fix="create them in the Dockerfile (e.g. `WORKDIR /app/logs` or COPY --chown) and rebuild",
    )


def _check_entrypoint(facts: ImageFacts, expected: Sequence[str] | None) -> GateResult:
    shown = f"entrypoint {list(facts.entrypoint)}, cmd {list(facts.cmd)}"
    evidence = _config_json(facts)
    if expected is not None and list(facts.entrypoint) != list(expected):
        return GateResult(
            "image-entrypoint",
            "NO-GO",
            f"{facts.platform}: {shown}; expected entrypoint {list(expected)}",
            evidence,
            fix=f"set `ENTRYPOINT {json.dumps(list(expected))}` in the Dockerfile and rebuild",
        )
    if not facts.entrypoint and not facts.cmd:
        return GateResult(
            "image-entrypoint",
            "NO-GO",
            f"{facts.platform}: no ENTRYPOINT or CMD, so the container has nothing to run",
            evidence,
            fix="add an exec-form ENTRYPOINT or CMD to the Dockerfile and rebuild",
        )
    return GateResult("image-entrypoint", "GO", shown, evidence)


def _port_key(port: str | int) -> str:
    text = str(port).strip()
    return text if "/" in text else f"{text}/tcp"


def _check_ports(facts: ImageFacts, ports: Sequence[str | int]) -> GateResult:
    exposed = set(facts.exposed_ports)
    missing = [_port_key(p) for p in ports if _port_key(p) not in exposed]
    evidence = _config_json(facts)
    listed = ", ".join(sorted(exposed)) or "none"
    if missing:
        return GateResult(
            "image-ports",
            "NO-GO",
            f"{facts.platform}: not exposed: {', '.join(missing)} (exposed: {listed})",
            evidence,
            fix=f"add `EXPOSE {' '.join(missing)}` to the Dockerfile and rebuild",
        )
    reason = f"exposed: {listed}" if ports else f"no ports required (exposed: {listed})"
    return GateResult("image-ports", "GO", reason, evidence)


def _check_secrets(facts: ImageFacts) -> GateResult:
    found = secret_findings(facts)
    evidence = _config_json(facts, history=True)
    if not found:
        return GateResult(
            "image-secrets", "GO", "no secret-looking variables in env or history", evidence
        )
    return GateResult(
        "image-secrets",
        "NO-GO",
        f"{facts.platform}: secret-looking values baked into the image: {', '.join(found)}",
        evidence,
        fix="remove them from ENV/ARG; pass secrets at run time (environment or secret mounts)"
        " and rebuild",
    )


def structure_checks(
    facts: ImageFacts,
    checks: ImageChecks,
    *,
    ports: Sequence[str | int] = (),
    entrypoint: Sequence[str] | None = None,
) -> list[GateResult]:
    """One gate result per structure rule; any NO-GO means the image must not be pushed."""
    return [
        _check_user(facts, checks),
        _check_dirs(facts, checks),
        _check_entrypoint(facts, entrypoint),
        _check_ports(facts, ports),
        _check_secrets(facts),
    ]


def iter_images(layout: Path, ref: str | None = None) -> Iterator[ImageFacts]:
    """Facts for every platform of the layout entry `ref`: each must pass before a push."""
    for manifest in read_layout(Path(layout), ref).manifests:
        yield inspect_layout(Path(layout), manifest.digest)
