"""Build the configured Dockerfile with Docker or buildah and export it to an OCI image layout.

The argv builders are pure (no I/O), so a plan can print them and tests compare lists; only
`detect_builder` and `build_image` run anything. The OCI layout written at the end is the
artifact: its digests are what gets recorded, checked and pushed, whichever builder made it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from gonogo.errors import GonogoError
from gonogo.images.inspect import LayoutEntry, read_layout, redact_history_line

INSTALL_HINT = "install buildah (apt-get install buildah) or Docker"
BUILDERS = ("docker", "buildah")
# `docker info` hangs for a long time on a dead remote DOCKER_HOST; a few seconds is plenty
# for a local engine to answer.
DOCKER_INFO_TIMEOUT = 5.0
# Manifest and export steps copy local blobs; minutes would mean something is stuck.
QUICK_TIMEOUT = 300.0
STOP_GRACE = 5.0
_TAIL_LINES = 3
_TAIL_CHARS = 400
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BUILDAH_STEP = re.compile(r"^(?:\[[^\]]*\]\s*)?STEP \d+/\d+: .*$", re.MULTILINE)
_LEGACY_DOCKER_STEP = re.compile(r"^Step \d+/\d+ : .*$", re.MULTILINE)
_BUILDKIT_STEP = re.compile(r"^#(?P<n>\d+) \[(?P<stage>[^\]]+)\] (?P<text>.*)$", re.MULTILINE)
_BUILDKIT_ERROR = re.compile(r"^#(?P<n>\d+) ERROR\b", re.MULTILINE)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

BuilderName = Literal["docker", "buildah"]
Which = Callable[[str], str | None]
Probe = Callable[[Sequence[str], float], tuple[bool, str]]


class BuildError(GonogoError):
    """An image could not be built or exported. Exit 1."""


class DockerfileMissing(BuildError):
    """The configured Dockerfile does not exist."""


class NoBuilder(BuildError):
    """Neither a reachable Docker engine nor buildah (or the forced one is unavailable)."""


class BuildFailed(BuildError):
    """The builder ran and failed; the message names the failing step."""


@dataclass(frozen=True)
class Builder:
    name: BuilderName
    executable: str
    # Why this builder was chosen, for the run's report ("no Docker engine reachable ...").
    reason: str
    forced: bool = False
    # Options placed before the subcommand, e.g. buildah's --root/--runroot/--storage-driver.
    global_args: tuple[str, ...] = ()

    @property
    def prefix(self) -> tuple[str, ...]:
        return (self.executable, *self.global_args)


# -- choosing a builder ----------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_probe(argv: Sequence[str], timeout: float) -> tuple[bool, str]:
    """Run a yes/no command: (succeeded, last line of its complaint)."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:g}s"
    except OSError as exc:
        return False, str(exc)
    return proc.returncode == 0, _last_line(proc.stderr) or _last_line(proc.stdout)


def _docker_engine(docker: str | None, probe: Probe) -> tuple[bool, str]:
    if docker is None:
        return False, "the docker CLI is not installed"
    ok, detail = probe([docker, "info", "--format", "{{.ServerVersion}}"], DOCKER_INFO_TIMEOUT)
    if ok:
        return True, "Docker engine reachable (docker info succeeded)"
    return False, f"no Docker engine reachable (docker info: {detail or 'failed'})"


def detect_builder(
    force: str | None = None, which: Which = shutil.which, probe: Probe = run_probe
) -> Builder:
    """Docker when its engine answers, else buildah; `force` names one and must be usable."""
    if force is not None and force not in BUILDERS:
        raise NoBuilder(f"unknown builder {force!r}: choose docker or buildah")
    buildah = which("buildah")
    if force == "buildah":
        if buildah is None:
            raise NoBuilder(
                "builder buildah was forced but is not installed: apt-get install buildah"
            )
        return Builder("buildah", buildah, "forced (--builder buildah)", forced=True)
    docker = which("docker")
    docker_ok, docker_why = _docker_engine(docker, probe)
    if force == "docker":
        if docker is None or not docker_ok:
            raise NoBuilder(f"builder docker was forced but {docker_why}")
        return Builder("docker", docker, "forced (--builder docker)", forced=True)
    if docker_ok and docker is not None:
        return Builder("docker", docker, docker_why)
    if buildah is not None:
        return Builder("buildah", buildah, f"{docker_why}; using buildah (daemonless)")
    raise NoBuilder(f"no image builder: {docker_why} and buildah is not installed; {INSTALL_HINT}")


# -- argv builders (pure) --------------------------------------------------------------------


def oci_labels(
    *, revision: str, source: str = "", created: str = "", version: str = ""
) -> dict[str, str]:
    """The standard OCI annotation keys for a build; empty values are left out."""
    values = {"revision": revision, "source": source, "created": created, "version": version}
    return {f"org.opencontainers.image.{k}": v for k, v in values.items() if v}


def _pairs(flag: str, mapping: Mapping[str, str]) -> list[str]:
    return [arg for key, value in mapping.items() for arg in (flag, f"{key}={value}")]


def platform_tag(tag: str, platform: str) -> str:
    """A per-platform local name: localhost/app:1 + linux/arm64 -> localhost/app:1-linux-arm64."""
    suffix = platform.replace("/", "-")
    last = tag.rsplit("/", 1)[-1]
    return f"{tag}-{suffix}" if ":" in last else f"{tag}:{suffix}"


def docker_build_argv(
    *,
    context: Path,
    dockerfile: Path,
    tag: str,
    iidfile: Path,
    build_args: Mapping[str, str] = {},
    labels: Mapping[str, str] = {},
    platform: str | None = None,
    docker: str = "docker",
) -> list[str]:
    # Plain `docker build` works with the classic builder and BuildKit alike; it has no
    # --annotation, so the OCI keys go in as labels only.
    argv = [docker, "build", "--file", str(dockerfile), "--tag", tag, "--iidfile", str(iidfile)]
    if platform:
        argv += ["--platform", platform]
    return [*argv, *_pairs("--build-arg", build_args), *_pairs("--label", labels), str(context)]


def docker_buildx_argv(
    *,
    context: Path,
    dockerfile: Path,
    tag: str,
    layout: Path,
    platforms: Sequence[str],
    build_args: Mapping[str, str] = {},
    labels: Mapping[str, str] = {},
    docker: str = "docker",
) -> list[str]:
    # The engine's own image store cannot hold a multi-platform image; a buildx builder
    # (docker-container driver) writes the index straight into an OCI layout directory.
    annotations = _pairs("--annotation", {f"index,manifest:{k}": v for k, v in labels.items()})
    return [
        docker, "buildx", "build", "--file", str(dockerfile), "--tag", tag,
        "--platform", ",".join(platforms),
        "--output", f"type=oci,dest={layout},tar=false",
        *_pairs("--build-arg", build_args), *_pairs("--label", labels), *annotations,
        str(context),
    ]  # fmt: skip


def docker_export_argv(
    *, image: str, layout: Path, ref: str, digestfile: Path, skopeo: str = "skopeo"
) -> list[str]:
    return [skopeo, "copy", "--digestfile", str(digestfile),
            f"docker-daemon:{image}", f"oci:{layout}:{ref}"]  # fmt: skip


def buildah_build_argv(
    *,
    context: Path,
    dockerfile: Path,
    tag: str,
    iidfile: Path,
    build_args: Mapping[str, str] = {},
    labels: Mapping[str, str] = {},
    platform: str | None = None,
    isolation: str | None = None,
    prefix: Sequence[str] = ("buildah",),
) -> list[str]:
    argv = [*prefix, "build", "--file", str(dockerfile), "--tag", tag,
            "--iidfile", str(iidfile), "--format", "oci"]  # fmt: skip
    if platform:
        argv += ["--platform", platform]
    if isolation:
        argv += ["--isolation", isolation]
    # Labels land in the image config, annotations on the manifest; registries show both.
    return [
        *argv,
        *_pairs("--build-arg", build_args),
        *_pairs("--label", labels),
        *_pairs("--annotation", labels),
        str(context),
    ]


def buildah_push_argv(
    *, image: str, layout: Path, ref: str, digestfile: Path, prefix: Sequence[str] = ("buildah",)
) -> list[str]:
    return [*prefix, "push", "--format", "oci", "--digestfile", str(digestfile),
            image, f"oci:{layout}:{ref}"]  # fmt: skip


def buildah_manifest_rm_argv(name: str, prefix: Sequence[str] = ("buildah",)) -> list[str]:
    return [*prefix, "manifest", "rm", name]


def buildah_manifest_argvs(
    *,
    name: str,
    images: Iterable[str],
    layout: Path,
    ref: str,
    digestfile: Path,
    prefix: Sequence[str] = ("buildah",),
) -> list[list[str]]:
    """Create a manifest list of the per-platform images and push it, all of it, as an index."""
    return [
        [*prefix, "manifest", "create", name],
        *([*prefix, "manifest", "add", name, image] for image in images),
        [*prefix, "manifest", "push", "--all", "--format", "oci", "--digestfile",
         str(digestfile), name, f"oci:{layout}:{ref}"],
    ]  # fmt: skip


# -- failure messages (pure) -----------------------------------------------------------------


def _clean(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "\n")


def failing_step(output: str) -> str | None:
    """The step a build stopped at: BuildKit's `#n [stage x/y] ...` that errored, else the
    last buildah `STEP n/m: ...` or classic docker `Step n/m : ...` line."""
    text = _clean(output)
    errored = {m.group("n") for m in _BUILDKIT_ERROR.finditer(text)}
    if errored:
        for m in _BUILDKIT_STEP.finditer(text):
            if m.group("n") in errored:
                return f"[{m.group('stage')}] {m.group('text').strip()}"
    steps: list[str] = _BUILDAH_STEP.findall(text) + _LEGACY_DOCKER_STEP.findall(text)
    if not steps:
        return None
    # Both styles never mix in one output; the later position is the one that ran last.
    return max(steps, key=text.rfind).strip()


def output_tail(output: str, n: int = _TAIL_LINES) -> str:
    """The last meaningful lines of output on one line (step headers and rules dropped)."""
    lines = []
    for raw in _clean(output).splitlines():
        line = raw.strip()
        if not line or set(line) <= {"-", "="}:
            continue
        if _BUILDAH_STEP.match(line) or _LEGACY_DOCKER_STEP.match(line):
            continue
        lines.append(line)
    tail = " | ".join(lines[-n:])
    return tail if len(tail) <= _TAIL_CHARS else "..." + tail[-_TAIL_CHARS:]


def build_failure_message(output: str, returncode: int, log_path: Path) -> str:
    step = failing_step(output)
    where = f"at {step}" if step else f"(exit {returncode})"
    tail = output_tail(output) or "no output"
    return f"image build failed {where}: {tail} (log: {log_path})"


# -- running ---------------------------------------------------------------------------------


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class BuildSpec:
    context: Path
    # Relative paths are taken from the context, as `docker build -f` would.
    dockerfile: Path
    # The local image name, e.g. localhost/gonogo/app:<sha>.
    tag: str
    # The OCI image layout directory the result is exported to, under the name `ref`.
    layout: Path
    log_path: Path
    builder: Builder
    ref: str = "latest"
    # Empty: the builder's own platform. Two or more: one build each, pushed as an index.
    platforms: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # buildah only; "chroot" where the process cannot create namespaces (CI containers).
    isolation: str | None = None
    timeout: float = 1800.0
    # Applied to every command line written to the log and to error messages (secrets).
    redact: Callable[[str], str] = _same


@dataclass(frozen=True)
class PlatformImage:
    platform: str
    # The config digest: what `docker images` / `buildah images` call the image id.
    image_id: str
    manifest_digest: str


@dataclass(frozen=True)
class BuiltImage:
    builder: BuilderName
    builder_reason: str
    tag: str
    layout: Path
    ref: str
    # What a registry serves for this build: the index digest, or the one manifest's digest.
    digest: str
    index_digest: str | None
    images: tuple[PlatformImage, ...]
    log_path: Path

    @property
    def image_id(self) -> str | None:
        """The config digest when there is one image; per platform otherwise (see images)."""
        return self.images[0].image_id if len(self.images) == 1 else None

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(image.platform for image in self.images)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(layout=str(self.layout), log_path=str(self.log_path))
        data.update(image_id=self.image_id, platforms=list(self.platforms))
        return data


class CommandLog:
    """Runs commands with their output streamed into the build log, bounded by a timeout.

    Every line is redacted before it reaches the file: a builder echoes each Dockerfile
    step (`ENV API_KEY=...`) and its build args, and evidence must never hold a secret,
    not even while a build is still running.
    """

    def __init__(self, path: Path, redact: Callable[[str], str] = _same) -> None:
        self.path = path
        self.redact = redact

    def clean(self, line: str) -> str:
        return redact_history_line(self.redact(line))

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int | None, str]:
        """(exit status, or None when it overran and was stopped; its output, redacted)."""
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"$ {self.clean(shlex.join(argv))}\n")
            log.flush()
            lines: list[str] = []
            returncode = self._wait(argv, log, lines, timeout)
        return returncode, "".join(lines)

    def _wait(self, argv: Sequence[str], log: Any, lines: list[str], timeout: float) -> int | None:
        try:
            # Own session so a timeout can stop the builder's helpers too, not just the CLI.
            proc = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise BuildError(f"cannot run {argv[0]}: {exc}") from exc
        assert proc.stdout is not None
        stream = proc.stdout
        done = threading.Event()  # set once the log may be closed: stop writing to it

        def copy() -> None:
            for raw in iter(stream.readline, b""):
                if done.is_set():
                    return  # a helper that escaped the session outlived the build
                line = self.clean(raw.decode("utf-8", "replace").rstrip("\n")) + "\n"
                lines.append(line)
                try:
                    log.write(line)
                    log.flush()
                except ValueError:  # closed meanwhile: the build is over
                    return

        reader = threading.Thread(target=copy, name="gonogo-build-log", daemon=True)
        reader.start()
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            returncode = None
        except BaseException:
            # Ctrl-C only reaches our own process group; the builder must not outlive us.
            _stop(proc)
            raise
        finally:
            # The pipe closes once the builder and its helpers are gone; bounded anyway, as
            # a helper that escaped the session could hold it open.
            reader.join(timeout=STOP_GRACE)
            done.set()
            if not reader.is_alive():
                stream.close()
        return returncode

    def must(self, argv: Sequence[str], timeout: float, what: str, *, build: bool = False) -> str:
        """Run; on failure raise one line saying `what` failed and quoting the output's end."""
        returncode, output = self.run(argv, timeout)
        if returncode is None:
            step = failing_step(output)
            at = f" at {step}" if step else ""
            raise BuildFailed(f"{what} timed out after {timeout:g}s{at} (log: {self.path})")
        if returncode != 0 and build:
            raise BuildFailed(build_failure_message(output, returncode, self.path))
        if returncode != 0:
            tail = output_tail(output) or f"exit {returncode}"
            raise BuildFailed(f"{what} failed: {tail} (log: {self.path})")
        return output


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM first: buildah cleans up its working container and storage locks on TERM.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _check_inputs(spec: BuildSpec) -> Path:
    if not spec.context.is_dir():
        raise BuildError(f"build context {spec.context} is not a directory")
    dockerfile = (
        spec.dockerfile if spec.dockerfile.is_absolute() else spec.context / spec.dockerfile
    )
    if not dockerfile.is_file():
        raise DockerfileMissing(
            f"no Dockerfile at {dockerfile} (set [build].dockerfile in gonogo.toml)"
        )
    # `oci:<dir>:<ref>` and buildx's `dest=<dir>,...` would split such a path in the wrong place.
    if any(c in str(spec.layout) for c in ":,"):
        raise BuildError(f"OCI layout path {spec.layout} must not contain ':' or ','")
    if not _REF.match(spec.ref):
        raise BuildError(f"layout ref {spec.ref!r} must be letters, digits, '.', '_' or '-'")
    return dockerfile


def _read_id(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def local_name(spec: BuildSpec) -> str:
    """The local name of the result: the image, or for buildah multi-platform the list.

    The list gets its own name because an image built earlier under `spec.tag` would hold
    it, and `manifest create` refuses a name in use.
    """
    if spec.builder.name == "buildah" and len(spec.platforms) > 1:
        return platform_tag(spec.tag, "index")
    return spec.tag


def _buildah_single(spec: BuildSpec, dockerfile: Path, work: Path, log: CommandLog) -> list[str]:
    prefix = spec.builder.prefix
    iidfile = work / "iid"
    platform = spec.platforms[0] if spec.platforms else None
    log.must(
        buildah_build_argv(
            context=spec.context, dockerfile=dockerfile, tag=spec.tag, iidfile=iidfile,
            build_args=spec.build_args, labels=spec.labels, platform=platform,
            isolation=spec.isolation, prefix=prefix,
        ),
        spec.timeout,
        "image build",
        build=True,
    )  # fmt: skip
    image_id = _read_id(iidfile)
    log.must(
        buildah_push_argv(image=image_id.removeprefix("sha256:"), layout=spec.layout,
                          ref=spec.ref, digestfile=work / "digest", prefix=prefix),
        QUICK_TIMEOUT,
        f"exporting the image to {spec.layout}",
    )  # fmt: skip
    return [image_id]


def _buildah_multi(spec: BuildSpec, dockerfile: Path, work: Path, log: CommandLog) -> list[str]:
    prefix = spec.builder.prefix
    ids = []
    for i, platform in enumerate(spec.platforms):
        iidfile = work / f"iid-{i}"
        log.must(
            buildah_build_argv(
                context=spec.context, dockerfile=dockerfile,
                tag=platform_tag(spec.tag, platform), iidfile=iidfile,
                build_args=spec.build_args, labels=spec.labels, platform=platform,
                isolation=spec.isolation, prefix=prefix,
            ),
            spec.timeout,
            "image build",
            build=True,
        )  # fmt: skip
        ids.append(_read_id(iidfile))
    # A list left by an earlier build under this name would make `manifest create` fail;
    # `manifest rm` drops only the list, never the images in it. Absent is fine.
    log.run(buildah_manifest_rm_argv(local_name(spec), prefix), QUICK_TIMEOUT)
    for argv in buildah_manifest_argvs(
        name=local_name(spec), images=[i.removeprefix("sha256:") for i in ids], layout=spec.layout,
        ref=spec.ref, digestfile=work / "digest", prefix=prefix,
    ):  # fmt: skip
        log.must(argv, QUICK_TIMEOUT, f"writing the image index to {spec.layout}")
    return ids


def _docker(spec: BuildSpec, dockerfile: Path, work: Path, log: CommandLog) -> list[str]:
    docker = spec.builder.executable
    if len(spec.platforms) > 1:
        log.must(
            docker_buildx_argv(
                context=spec.context, dockerfile=dockerfile, tag=spec.tag, layout=spec.layout,
                platforms=spec.platforms, build_args=spec.build_args, labels=spec.labels,
                docker=docker,
            ),
            spec.timeout,
            "image build",
            build=True,
        )  # fmt: skip
        return []
    iidfile = work / "iid"
    log.must(
        docker_build_argv(
            context=spec.context, dockerfile=dockerfile, tag=spec.tag, iidfile=iidfile,
            build_args=spec.build_args, labels=spec.labels,
            platform=spec.platforms[0] if spec.platforms else None, docker=docker,
        ),
        spec.timeout,
        "image build",
        build=True,
    )  # fmt: skip
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise NoBuilder("exporting a Docker-built image needs skopeo: apt-get install skopeo")
    log.must(
        docker_export_argv(image=spec.tag, layout=spec.layout, ref=spec.ref,
                           digestfile=work / "digest", skopeo=skopeo),
        QUICK_TIMEOUT,
        f"exporting the image to {spec.layout}",
    )  # fmt: skip
    return [_read_id(iidfile)]


def _result(spec: BuildSpec, entry: LayoutEntry, built_ids: list[str], digest: str) -> BuiltImage:
    images = tuple(PlatformImage(m.platform, m.config_digest, m.digest) for m in entry.manifests)
    # The layout must hold what was just built; anything else means a stale or shared layout.
    if built_ids and sorted(built_ids) != sorted(i.image_id for i in images):
        raise BuildError(f"{spec.layout}: {spec.ref} does not hold the image just built")
    if digest and digest != entry.digest:
        raise BuildError(f"{spec.layout}: {spec.ref} is {entry.digest}, the builder wrote {digest}")
    return BuiltImage(
        builder=spec.builder.name,
        builder_reason=spec.builder.reason,
        tag=local_name(spec),
        layout=spec.layout,
        ref=entry.ref or spec.ref,
        digest=entry.digest,
        index_digest=entry.digest if entry.is_index else None,
        images=images,
        log_path=spec.log_path,
    )


def build_image(spec: BuildSpec) -> BuiltImage:
    """Build, export to `spec.layout` under `spec.ref`, and report what is there."""
    dockerfile = _check_inputs(spec)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    spec.layout.parent.mkdir(parents=True, exist_ok=True)
    log = CommandLog(spec.log_path, spec.redact)
    with tempfile.TemporaryDirectory(prefix="gonogo-build-") as tmp:
        work = Path(tmp)
        if spec.builder.name == "docker":
            built = _docker(spec, dockerfile, work, log)
        elif len(spec.platforms) > 1:
            built = _buildah_multi(spec, dockerfile, work, log)
        else:
            built = _buildah_single(spec, dockerfile, work, log)
        digest = _read_id(work / "digest")
    # buildx names the layout entry itself, so only our own exports are looked up by ref.
    ref = spec.ref if built else None
    return _result(spec, read_layout(spec.layout, ref), built, digest)
