"""gonogo build [ENV]: build the configured Dockerfile at a commit into an OCI layout artifact.

The build context is the commit itself (`git archive`), never the working tree, so the
image is exactly what the SHA says and an uncommitted edit cannot slip into it. The result
lives in `.gonogo/images/<sha>/<inputs>-<builder>/` (an OCI image layout), is recorded in
the ledger as an artifact (digest = the manifest or index digest) with an `image.built`
event, and is reused, not rebuilt, while the same inputs (SHA, Dockerfile, context, build
arguments, platforms) are asked for again and its layout is intact.

The structure checks (non-root user, directories, ports, entrypoint, no secrets) run on the
result every time; for a protected environment a failing check is NO-GO (exit 2).
`gonogo publish` shares everything here: it finds or builds the same artifact.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gonogo import gitrepo
from gonogo.errors import GonogoError, NoGo
from gonogo.gates.engine import GateReport
from gonogo.gates.model import GateResult
from gonogo.output import mark, short
from gonogo.plan import Plan, Step
from gonogo.result import Result

if TYPE_CHECKING:
    from gonogo.context import Context
    from gonogo.executor import Run
    from gonogo.images.build import Builder

IMAGES_DIR = "images"
EXPORT_TIMEOUT_S = 300.0
KIND_IMAGE = "oci-image"
KIND_INDEX = "oci-index"
_URL_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^@/]*@", re.IGNORECASE)
_NAME_CHARS = re.compile(r"[^a-z0-9._-]+")


# -- what is built ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildInputs:
    """Everything that decides the image: two builds with equal inputs are the same artifact."""

    sha: str
    env: str | None
    dockerfile: str
    context: str
    build_args: dict[str, str]
    platforms: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        doc = {
            "sha": self.sha,
            "dockerfile": self.dockerfile,
            "context": self.context,
            "args": dict(sorted(self.build_args.items())),
            "platforms": list(self.platforms),
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PlatformDigests:
    platform: str
    image_id: str
    manifest_digest: str

    def to_dict(self) -> dict[str, str]:
        return {
            "platform": self.platform,
            "image_id": self.image_id,
            "manifest_digest": self.manifest_digest,
        }


@dataclass(frozen=True)
class ImageArtifact:
    """A built image (or multi-platform index) in an OCI layout under .gonogo/images/."""

    digest: str
    kind: str
    sha: str
    env: str | None
    layout: Path
    ref: str
    builder: str
    builder_reason: str
    platforms: tuple[PlatformDigests, ...]
    fingerprint: str
    build_args: dict[str, str] = field(default_factory=dict)
    size: int = 0
    built_by_run: str | None = None
    built_at: str | None = None
    # built (in this run), reused (an earlier build of the same inputs), or promoted (the
    # artifact of `promote_from`, reused as is).
    source: str = "built"
    from_env: str | None = None

    @property
    def image_id(self) -> str | None:
        return self.platforms[0].image_id if len(self.platforms) == 1 else None

    def location(self, root: Path) -> str:
        try:
            return str(self.layout.relative_to(root))
        except ValueError:
            return str(self.layout)

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "kind": self.kind,
            "sha": self.sha,
            "env": self.env,
            "layout": self.location(root),
            "ref": self.ref,
            "image_id": self.image_id,
            "builder": self.builder,
            "builder_reason": self.builder_reason,
            "platforms": [p.to_dict() for p in self.platforms],
            "build_args": dict(self.build_args),
            "fingerprint": self.fingerprint,
            "size": self.size,
            "built_by_run": self.built_by_run,
            "built_at": self.built_at,
            "source": self.source,
            "from_env": self.from_env,
        }


def build_inputs(
    ctx: Context, env: str | None, sha: str, platforms: Sequence[str] = ()
) -> BuildInputs:
    """The inputs for `env` at `sha`: `[build].args` rendered with the environment's vars;
    platforms from the command line, else `[publish].platforms`, else the builder's own."""
    from gonogo.images.publish import render_build_args

    cfg = ctx.config.build
    env_vars = dict(ctx.env(env).vars) if env is not None else {}
    args = render_build_args(cfg.args, env=env, env_vars=env_vars, sha=sha)
    chosen = tuple(platforms)
    if not chosen and ctx.config.publish is not None:
        chosen = tuple(ctx.config.publish.platforms)
    for p in chosen:
        parts = p.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise GonogoError(f"--platform {p!r} is not a platform (os/arch or os/arch/variant)")
    return BuildInputs(
        sha=sha,
        env=env,
        dockerfile=cfg.dockerfile,
        context=cfg.context,
        build_args=args,
        platforms=tuple(dict.fromkeys(chosen)),
    )


def layout_dir(ctx: Context, inputs: BuildInputs, builder: str) -> Path:
    """Where the artifact of these inputs lives; a forced other builder gets its own, so a
    rebuild never removes an artifact that may have been verified or published."""
    return ctx.state_dir / IMAGES_DIR / inputs.sha / f"{inputs.fingerprint[:16]}-{builder}"


# -- finding an earlier build ----------------------------------------------------------------


def layout_problem(layout: Path, ref: str, digest: str) -> str | None:
    """Why the layout no longer holds `digest` intact (every blob hashed), or None."""
    from gonogo.images.oci_layout import ImageIndex, OciLayout

    try:
        oci = OciLayout.open(layout)
        entry = oci.find(ref)
        if entry.digest != digest:
            return f"{layout} names {entry.digest}, not {digest}"
        top = oci.load_manifest(digest)
        manifests = [top]
        if isinstance(top, ImageIndex):
            manifests = [oci.load_descriptor(d) for d in top.manifests]
        for manifest in manifests:
            if isinstance(manifest, ImageIndex):
                return f"{layout}: nested index"
            for blob in manifest.blobs:
                oci.verify_blob(blob.digest, blob.size)
    except GonogoError as exc:
        return exc.message
    return None


def _artifact_from_event(
    ctx: Context, row: dict[str, Any], payload: dict[str, Any]
) -> ImageArtifact | None:
    try:
        layout = Path(str(payload["layout"]))
        return ImageArtifact(
            digest=str(payload["digest"]),
            kind=str(payload["kind"]),
            sha=str(payload["sha"]),
            env=payload.get("env"),
            layout=layout if layout.is_absolute() else ctx.root / layout,
            ref=str(payload["ref"]),
            builder=str(payload["builder"]),
            builder_reason=str(payload.get("builder_reason", "")),
            platforms=tuple(
                PlatformDigests(str(p["platform"]), str(p["image_id"]), str(p["manifest_digest"]))
                for p in payload.get("platforms", [])
            ),
            fingerprint=str(payload["fingerprint"]),
            build_args=dict(payload.get("build_args") or {}),
            size=int(payload.get("size") or 0),
            built_by_run=row.get("run_id"),
            built_at=row.get("ts"),
            source="reused",
        )
    except (KeyError, TypeError, ValueError):
        return None  # an event written by another version: not something to reuse


def find_built(
    ctx: Context,
    *,
    fingerprint: str | None = None,
    env: str | None = None,
    sha: str | None = None,
    platforms: Sequence[str] | None = None,
    builder: str | None = None,
) -> tuple[ImageArtifact | None, list[str]]:
    """The newest intact artifact matching the filters, and why newer matches were passed over."""
    from gonogo.images.publish import image_events

    passed_over: list[str] = []
    for row, payload in reversed(image_events(ctx.ledger, "image.built")):
        if fingerprint is not None and payload.get("fingerprint") != fingerprint:
            continue
        if sha is not None and payload.get("sha") != sha:
            continue
        if env is not None and payload.get("env") != env:
            continue
        if builder is not None and payload.get("builder") != builder:
            continue
        artifact = _artifact_from_event(ctx, row, payload)
        if artifact is None:
            continue
        # Without explicit platforms the builder picked its own; compare only when asked.
        if platforms and [p.platform for p in artifact.platforms] != list(platforms):
            continue
        problem = layout_problem(artifact.layout, artifact.ref, artifact.digest)
        if problem is not None:
            passed_over.append(f"{artifact.digest[:19]}: {problem}")
            continue
        return artifact, passed_over
    return None, passed_over


def find_promoted(ctx: Context, env: str, sha: str) -> ImageArtifact | None:
    """The image of the upstream (`promote_from`) environment's verified release of `sha`,
    to publish as is; None when there is no such release or its artifact is not an image.

    "Verified upstream" is the ledger's rule that deploy and the promoted-from gate use, so
    what publish promotes is what a production deploy would release.
    """
    from gonogo.images.publish import verified_image

    upstream = ctx.env(env).promote_from
    if upstream is None:
        return None
    release, event = verified_image(ctx.ledger, upstream, sha)
    if release is None or event is None:
        return None
    artifact = _artifact_from_event(ctx, *event)
    if artifact is None:
        return None
    problem = layout_problem(artifact.layout, artifact.ref, artifact.digest)
    if problem is not None:
        # Anything else in its place would not be the image that was verified.
        raise NoGo(
            f"image {artifact.digest[:19]} verified on {upstream} {release.label} is no longer "
            f"intact ({problem}); it is not the image that was verified, so nothing was "
            f"changed. Fix: deploy {sha[:12]} to {upstream} again and let it verify"
        )
    return replace(artifact, source="promoted", from_env=upstream)


# -- building --------------------------------------------------------------------------------


def choose_builder(ctx: Context, forced: str | None) -> Builder:
    from gonogo.images.build import detect_builder

    configured = ctx.config.build.builder
    if forced is None and configured != "auto":
        chosen = detect_builder(configured)
        return replace(chosen, reason=f'forced ([build].builder = "{configured}")')
    return detect_builder(forced)


def forced_builder(ctx: Context, forced: str | None) -> str | None:
    configured = ctx.config.build.builder
    return forced or (None if configured == "auto" else configured)


def _source_url(ctx: Context) -> str:
    url = gitrepo.config_value(ctx.root, "remote.origin.url") or ""
    return _URL_USERINFO.sub(r"\g<scheme>", url)  # never a token from an https remote


def _version_label(ctx: Context, sha: str) -> str:
    from gonogo.images.publish import resolve_version

    source = ctx.config.publish.version if ctx.config.publish is not None else "git-tag"
    try:
        return resolve_version(ctx.root, sha, source)
    except GonogoError:
        return ""  # the label is optional; publish insists on a version when a tag needs one


def _export_commit(ctx: Context, sha: str, dest: Path) -> None:
    """The tracked files of `sha` into `dest` (what `git archive` gives)."""
    tar_path = dest.parent / "source.tar"
    gitrepo.archive(ctx.root, sha, tar_path)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path) as tar:
            if hasattr(tarfile, "tar_filter"):  # Python 3.11.4+: no absolute or ../ paths
                tar.extractall(dest, filter="tar")
            else:  # pragma: no cover - git archive writes neither
                tar.extractall(dest)  # noqa: S202
    except (tarfile.TarError, OSError) as exc:
        raise GonogoError(f"cannot unpack commit {short(sha)} for the build: {exc}") from None
    finally:
        tar_path.unlink(missing_ok=True)


def _dockerfile_missing(ctx: Context, inputs: BuildInputs) -> GonogoError:
    from gonogo.images.build import DockerfileMissing

    rel = inputs.dockerfile
    local = ctx.root / rel
    hint = " (it exists in the working tree: commit it)" if local.is_file() else ""
    return DockerfileMissing(
        f"no Dockerfile at {rel} in commit {short(inputs.sha)}{hint}; "
        "set [build].dockerfile in gonogo.toml"
    )


def _local_tag(ctx: Context, inputs: BuildInputs) -> str:
    name = _NAME_CHARS.sub("-", ctx.config.project.name.lower()).strip("-._") or "app"
    return f"localhost/gonogo/{name}:{inputs.sha[:12]}-{inputs.fingerprint[:8]}"


def _layout_size(layout: Path, digest: str) -> int:
    from gonogo.images.oci_layout import ImageIndex, OciLayout

    oci = OciLayout.open(layout)
    top = oci.load_manifest(digest)
    total, seen = len(top.raw), set()
    children = (
        [oci.load_descriptor(d) for d in top.manifests] if isinstance(top, ImageIndex) else [top]
    )
    for child in children:
        if isinstance(child, ImageIndex):
            continue
        if child is not top:
            total += len(child.raw)
        for blob in child.blobs:
            if blob.digest not in seen:
                seen.add(blob.digest)
                total += blob.size
    return total


def build_artifact(ctx: Context, run: Run, inputs: BuildInputs, builder: Builder) -> ImageArtifact:
    """Build at `inputs.sha` into the artifact's layout, record it, and return it."""
    from gonogo.images.build import BuildSpec, build_image, oci_labels
    from gonogo.ledger.store import ArtifactRow, now_iso

    final = layout_dir(ctx, inputs, builder.name)
    final.parent.mkdir(parents=True, exist_ok=True)
    labels = oci_labels(
        revision=inputs.sha,
        source=_source_url(ctx),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        version=_version_label(ctx, inputs.sha),
    )
    with tempfile.TemporaryDirectory(prefix="gonogo-src-") as tmp:
        source = Path(tmp) / "src"
        _export_commit(ctx, inputs.sha, source)
        dockerfile = source / inputs.dockerfile
        if not dockerfile.is_file():
            raise _dockerfile_missing(ctx, inputs)
        context = source / inputs.context
        if not context.is_dir():
            raise GonogoError(
                f"build context {inputs.context} is not a folder in commit {short(inputs.sha)}; "
                "set [build].context in gonogo.toml"
            )
        # Built beside its final place and moved in whole: an interrupted build never
        # leaves a layout that looks like an artifact.
        staging = final.parent / f".build-{run.id}"
        spec = BuildSpec(
            context=context,
            dockerfile=dockerfile,
            tag=_local_tag(ctx, inputs),
            layout=staging,
            log_path=run.evidence.folder / "build.log",
            builder=builder,
            ref=inputs.sha[:12],
            platforms=inputs.platforms,
            build_args=inputs.build_args,
            labels=labels,
            timeout=ctx.config.build.timeout,
            redact=run.evidence.redactor.text,
        )
        try:
            built = build_image(spec)
            if final.exists():
                shutil.rmtree(final)  # not intact, or it would have been reused
            staging.replace(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    kind = KIND_INDEX if built.index_digest else KIND_IMAGE
    artifact = ImageArtifact(
        digest=built.digest,
        kind=kind,
        sha=inputs.sha,
        env=inputs.env,
        layout=final,
        ref=built.ref,
        builder=built.builder,
        builder_reason=built.builder_reason,
        platforms=tuple(
            PlatformDigests(i.platform, i.image_id, i.manifest_digest) for i in built.images
        ),
        fingerprint=inputs.fingerprint,
        build_args=dict(inputs.build_args),
        size=_layout_size(final, built.digest),
        built_by_run=run.id,
        built_at=now_iso(),
        source="built",
    )
    ctx.ledger.add_artifact(
        ArtifactRow(
            digest=artifact.digest,
            sha=artifact.sha,
            kind=kind,
            location=artifact.location(ctx.root),
            size=artifact.size,
            created_at=now_iso(),
        ),
        actor=ctx.actor,
        run_id=run.id,
    )
    payload = {
        **artifact.to_dict(ctx.root),
        "labels": labels,
        "forced": builder.forced,
    }
    for key in ("built_by_run", "built_at", "source", "from_env"):
        payload.pop(key, None)
    ctx.ledger.record(
        "image.built",
        actor=ctx.actor,
        env=inputs.env,
        run_id=run.id,
        payload=run.evidence.redactor.data(payload),
    )
    run.artifact = artifact.digest
    return artifact


def build_recorded(ctx: Context, inputs: BuildInputs, builder: Builder) -> ImageArtifact:
    """Build in a `build` run of its own, recorded like `gonogo build ENV`: later commands
    reuse the artifact instead of building again."""
    from gonogo.executor import Run

    where = ", ".join(inputs.platforms) or "the builder's platform"
    step = Step(
        "build",
        f"build {inputs.dockerfile} at {short(inputs.sha)} with {builder.name} for {where}",
        {"fingerprint": inputs.fingerprint, "builder": builder.name},
    )
    plan = Plan("build", inputs.env or "-", (step,))
    with Run(ctx, "build", inputs.env, sha=inputs.sha, plan=plan) as run:
        with run.step(step.action, step.description) as handle:
            artifact = build_artifact(ctx, run, inputs, builder)
            handle.detail.update(digest=artifact.digest, source=artifact.source)
        run.record["artifact"] = artifact.to_dict(ctx.root)
        run.summary = (
            f"{artifact.kind} {artifact.digest} for {short(inputs.sha)} "
            f"(built with {artifact.builder})"
        )
    return artifact


# -- structure checks ------------------------------------------------------------------------


def _merge(results: list[list[GateResult]], platforms: list[str]) -> list[GateResult]:
    """One result per check over every platform: NO-GO if any platform fails it."""
    if len(results) == 1:
        return results[0]
    merged = []
    for i, first in enumerate(results[0]):
        per = [r[i] for r in results]
        bad = [r for r in per if not r.go]
        evidence = "\n\n".join(f"[{p}]\n{r.evidence}" for p, r in zip(platforms, per, strict=True))
        if bad:
            reason = "; ".join(r.reason for r in bad)
            merged.append(replace(bad[0], reason=reason, evidence=evidence))
        else:
            own = first.reason.removeprefix(f"{platforms[0]}: ")
            merged.append(
                replace(first, reason=f"{', '.join(platforms)}: {own}", evidence=evidence)
            )
    return merged


def structure_results(ctx: Context, run: Run | None, artifact: ImageArtifact) -> list[GateResult]:
    """The image-* gate results for every platform of the artifact (and its evidence file)."""
    from gonogo.evidence import Redactor
    from gonogo.images.inspect import iter_images, redacted_config, structure_checks

    checks = ctx.config.build.image
    per: list[list[GateResult]] = []
    platforms: list[str] = []
    configs: list[dict[str, Any]] = []
    for facts in iter_images(artifact.layout, artifact.ref):
        platforms.append(facts.platform)
        configs.append(redacted_config(facts, history=True))
        per.append(
            structure_checks(facts, checks, ports=checks.ports, entrypoint=checks.entrypoint)
        )
    if not per:
        raise GonogoError(f"{artifact.location(ctx.root)} holds no runnable image")
    redactor = run.evidence.redactor if run is not None else Redactor.from_environ(ctx.environ)
    if run is not None:
        run.evidence.write_json("image-config.json", configs if len(configs) > 1 else configs[0])
    return [r.redacted(redactor) for r in _merge(per, platforms)]


def evidence_label(ctx: Context, run: Run) -> str:
    try:
        return str(run.evidence.folder.relative_to(ctx.root))
    except ValueError:
        return str(run.evidence.folder)


def print_results(ctx: Context, results: Sequence[GateResult]) -> None:
    width = max((len(r.id) for r in results), default=10) + 1
    for r in results:
        ctx.out.line(f"  {mark(r.verdict)} {r.id:<{width}} {r.reason}")


def describe_artifact(ctx: Context, artifact: ImageArtifact) -> None:
    how = {
        "built": f"built with {artifact.builder}",
        "reused": f"reused (built by run {artifact.built_by_run} with {artifact.builder})",
        "promoted": f"promoted from {artifact.from_env} (built by run {artifact.built_by_run})",
    }[artifact.source]
    ctx.out.line(f"  image {artifact.digest} ({artifact.kind}, {how})")
    for p in artifact.platforms:
        ctx.out.line(f"    {p.platform:<14} manifest {p.manifest_digest}  image id {p.image_id}")


# -- the command -----------------------------------------------------------------------------


def build(
    ctx: Context,
    env: str | None,
    *,
    ref: str | None = None,
    builder: str | None = None,
    platforms: Sequence[str] = (),
    dry_run: bool = False,
) -> Result:
    ctx.dry_run = dry_run
    protected = False
    if env is not None:
        protected = ctx.env(env).protected
    gitrepo.require_repo(ctx.root)
    sha = gitrepo.resolve(ctx.root, ref or "HEAD")
    inputs = build_inputs(ctx, env, sha, platforms)
    forced = forced_builder(ctx, builder)
    ctx.out.line(
        f"gonogo build{' ' + env if env else ''} {short(sha)}{' (dry run)' if dry_run else ''}"
    )
    existing, passed_over = find_built(
        ctx, fingerprint=inputs.fingerprint, builder=forced, platforms=inputs.platforms
    )
    for note in passed_over:
        ctx.out.line(f"  ! not reusing {note}")
    chosen = None if existing is not None else choose_builder(ctx, builder)
    data: dict[str, Any] = {
        "command": "build",
        "env": env,
        "sha": sha,
        "build_args": inputs.build_args,
        "platforms": list(inputs.platforms),
        "fingerprint": inputs.fingerprint,
        "enforced": protected,
    }
    if chosen is not None:
        ctx.out.line(f"  builder: {chosen.name} ({chosen.reason})")
        data["builder"] = {"name": chosen.name, "reason": chosen.reason, "forced": chosen.forced}
        where = ", ".join(inputs.platforms) or "the builder's platform"
        step = Step(
            "build",
            f"build {inputs.dockerfile} at {short(sha)} with {chosen.name} for {where}",
            {"fingerprint": inputs.fingerprint, "builder": chosen.name},
        )
    else:
        assert existing is not None
        data["builder"] = {
            "name": existing.builder,
            "reason": existing.builder_reason,
            "forced": False,
        }
        step = Step(
            "reuse",
            f"reuse {existing.digest} (same inputs, built by run {existing.built_by_run})",
            {"digest": existing.digest},
        )
    inspect = Step("inspect", "structure checks: user, dirs, entrypoint, ports, secrets")
    plan = Plan("build", env or "-", (step, inspect))
    if dry_run:
        for line in plan.render():
            ctx.out.line(f"  {line}")
        if existing is not None:
            data["artifact"] = existing.to_dict(ctx.root)
        data.update(dry_run=True, reused=existing is not None, plan=plan.to_dict())
        return Result(0, "dry run: nothing was built or recorded", data)

    from gonogo.commands._common import record_gates
    from gonogo.executor import Run

    with Run(ctx, "build", env, sha=sha, plan=plan) as run:
        data.update(run_id=run.id, evidence=evidence_label(ctx, run))
        with run.step(step.action, step.description) as handle:
            if existing is not None:
                artifact = existing
                run.artifact = artifact.digest
            else:
                assert chosen is not None
                artifact = build_artifact(ctx, run, inputs, chosen)
            handle.detail.update(digest=artifact.digest, source=artifact.source)
        describe_artifact(ctx, artifact)
        with run.step(inspect.action, inspect.description) as handle:
            results = structure_results(ctx, run, artifact)
            report = GateReport(tuple(results))
            handle.detail.update(verdict=report.verdict)
        print_results(ctx, results)
        record_gates(ctx, run, report)
        data.update(
            artifact=artifact.to_dict(ctx.root),
            reused=artifact.source != "built",
            checks=report.to_dict(),
        )
        run.record["artifact"] = data["artifact"]
        what = "reused" if artifact.source != "built" else f"built with {artifact.builder}"
        summary = f"{artifact.kind} {artifact.digest} for {short(sha)} ({what})"
        if not report.go and protected:
            assert env is not None
            bad = report.refusals()
            fix = f" Fix: {bad[0].fix}." if bad[0].fix else ""
            raise NoGo(
                f"NO-GO ({', '.join(r.id for r in bad)}): {bad[0].reason}; image "
                f"{artifact.digest[:19]} must not go to protected {env}.{fix}",
                details={"gates": report.to_dict(), "artifact": data["artifact"]},
            )
        if not report.go:
            ctx.out.line(
                "  ! structure checks failed: not enforced for "
                f"{env or 'a build without an environment'}, but publish and protected "
                "environments refuse this image"
            )
        run.summary = summary
    return Result(0, f"{summary}. Evidence: {data['evidence']}", data)
