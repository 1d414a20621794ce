"""gonogo publish [ENV]: push the commit's image to `[publish].repository` with its tags.

Order: gates for `publish` (ci-passed, promoted-from, prod-guard, custom gates) → the
artifact → structure checks on every platform → immutable tags (a tag naming a version or a
SHA never moves to another digest) → push: missing blobs, manifests by digest, then each
tag, read back and compared → ledger event `image.published` with per-platform digests and
the bytes that moved.

The artifact of an environment with `promote_from` is exactly the image of the upstream
environment's verified release of the SHA, by digest; it is never built. Without one the
promoted-from gate is NO-GO and nothing is built or pushed. Other environments reuse their
earlier build of the same inputs, else build now.

`latest` moves only when `[publish].latest_requires` holds (by default: the SHA has a
verified release on a protected environment); otherwise it is skipped with the reason, which
is not a failure. `--dry-run` prints every tag and digest and pushes nothing; when the image
is not built yet it is built locally first (recorded as a build artifact, which the publish
then reuses), so the digest is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from gonogo import gitrepo
from gonogo.commands._common import (
    dry_run_result,
    evaluate_gates,
    make_overrides,
    record_gates,
    refuse,
)
from gonogo.commands.build import (
    BuildInputs,
    ImageArtifact,
    build_artifact,
    build_inputs,
    build_recorded,
    choose_builder,
    describe_artifact,
    evidence_label,
    find_built,
    find_promoted,
    forced_builder,
    print_results,
    structure_results,
)
from gonogo.context import Context
from gonogo.errors import GonogoError, NoGo
from gonogo.gates.engine import GateReport
from gonogo.gates.model import GateResult
from gonogo.images.publish import (
    TagPlan,
    TemplateError,
    check_tag_template,
    digest_history,
    latest_allowed,
    needs_version,
    render_tags,
    resolve_version,
    tag_values,
)
from gonogo.output import short
from gonogo.plan import Plan, Step
from gonogo.result import Result

if TYPE_CHECKING:
    from gonogo.executor import Run
    from gonogo.images.build import Builder
    from gonogo.images.registry import PushResult, RegistryClient

IMMUTABLE_GATE = "tags-immutable"
PROMOTED_GATE = "promoted-from"


def choose_env(ctx: Context, env: str | None) -> str:
    """The environment whose image and gates apply: as given, the only one, or the one
    protected environment (the one whose releases `latest` follows by default)."""
    if env is not None:
        ctx.env(env)
        return env
    names = list(ctx.config.environments)
    if len(names) == 1:
        return names[0]
    protected = [n for n in names if ctx.config.environments[n].protected]
    if len(protected) == 1:
        return protected[0]
    raise GonogoError(
        f"name the environment whose image to publish: gonogo publish ENV "
        f"(one of: {', '.join(sorted(names))})"
    )


def _templates(ctx: Context, tags: Sequence[str]) -> list[str]:
    assert ctx.config.publish is not None
    if not tags:
        return list(ctx.config.publish.tags)
    for tag in tags:
        try:
            check_tag_template(tag)
        except ValueError as exc:
            raise TemplateError(f"--tag {tag!r}: {exc}") from None
    return list(tags)


def _immutable_check(
    client: RegistryClient, repo: str, digest: str, plans: Sequence[TagPlan]
) -> GateResult:
    """NO-GO if a version or SHA tag already names another digest in the registry."""
    moved = []
    checked = []
    for plan in plans:
        if plan.action != "push" or not plan.immutable:
            continue
        current = client.manifest_digest(repo, plan.tag)
        checked.append(f"{repo}:{plan.tag} -> {current or 'absent'}")
        if current is not None and current != digest:
            moved.append(f"{plan.tag} (names {current[:19]})")
    evidence = "HEAD manifests: " + ("; ".join(checked) or "no immutable tags")
    if moved:
        return GateResult(
            IMMUTABLE_GATE,
            "NO-GO",
            f"{', '.join(moved)} already in {repo}; a version or SHA tag is never moved "
            f"to {digest[:19]}",
            evidence,
            fix="tag a new version (git tag vX.Y.Z) or publish with --tag NAME",
        )
    return GateResult(IMMUTABLE_GATE, "GO", "no version or SHA tag names another image", evidence)


def _platform_digests(artifact: ImageArtifact, pushed: PushResult | None) -> list[dict[str, Any]]:
    if pushed is not None and pushed.platforms:
        return [{"platform": p.platform, "digest": p.digest} for p in pushed.platforms]
    return [{"platform": p.platform, "digest": p.manifest_digest} for p in artifact.platforms]


def _promoted(
    ctx: Context, env: str, sha: str, report: GateReport
) -> tuple[ImageArtifact | None, GateResult | None]:
    """For a `promote_from` environment: the upstream's verified image of `sha`, or the
    promoted-from NO-GO that stands (no override), in which case nothing may be built.

    An override, or an environment whose `gates` list leaves promoted-from out, is a
    person's recorded decision to publish without that proof: the environment then gets its
    own build, as one without `promote_from` does.
    """
    upstream = ctx.env(env).promote_from
    if upstream is None:
        return None, None
    gate = next((r for r in report.results if r.id == PROMOTED_GATE), None)
    if gate is not None and not gate.passes:
        return None, gate
    artifact = find_promoted(ctx, env, sha)
    if artifact is None and gate is not None and gate.go:
        raise NoGo(
            f"NO-GO ({PROMOTED_GATE}): the ledger's record of the image verified on {upstream} "
            f"for {short(sha)} cannot be read back; nothing was changed. Fix: deploy "
            f"{short(sha)} to {upstream} again and let it verify"
        )
    return artifact, None


def _unverified_platforms(
    ctx: Context, artifact: ImageArtifact | None, wanted: Sequence[str]
) -> list[str]:
    """Platforms `[publish].platforms` asks for that the promoted image does not have.

    They are left out and said so: building them would publish an image nobody verified.
    """
    if artifact is None or artifact.source != "promoted":
        return []
    have = [p.platform for p in artifact.platforms]
    missing = [p for p in wanted if p not in have]
    if missing:
        ctx.out.line(
            f"  ! not published for {', '.join(missing)}: the image verified on "
            f"{artifact.from_env} has {', '.join(have) or 'no platform list'} only"
        )
    return missing


def _build_for_dry_run(ctx: Context, inputs: BuildInputs, chosen: Builder) -> ImageArtifact:
    """Build locally so the dry run can name the digest every tag would get.

    Only local state changes: the image lands in .gonogo/images and the ledger records a
    `build` run, as `gonogo build ENV` would, and the real publish reuses it. Nothing goes
    to a registry.
    """
    ctx.out.line(
        "  building locally to know the digest (recorded as a build artifact that publishing "
        "reuses; nothing is pushed)"
    )
    # The build belongs in the real ledger, not a dry run's in-memory stand-in.
    ctx.dry_run = False
    try:
        return build_recorded(ctx, inputs, chosen)
    finally:
        ctx.dry_run = True


def publish(
    ctx: Context,
    env: str | None = None,
    *,
    ref: str | None = None,
    tags: Sequence[str] = (),
    builder: str | None = None,
    dry_run: bool = False,
    confirm: str | None = None,
    override: Sequence[str] = (),
    reason: str | None = None,
) -> Result:
    from gonogo.images.registry import parse_reference

    ctx.dry_run = dry_run
    cfg = ctx.config.publish
    if cfg is None:
        raise GonogoError(
            f"{ctx.config_path.name} has no [publish] table: add one with "
            'repository = "registry/name" (and tags, platforms)'
        )
    env = choose_env(ctx, env)
    gitrepo.require_repo(ctx.root)
    sha = gitrepo.resolve(ctx.root, ref or "HEAD")
    target = parse_reference(cfg.repository)
    repo_name = f"{target.registry}/{target.repository}"
    templates = _templates(ctx, tags)
    version = resolve_version(ctx.root, sha, cfg.version) if needs_version(templates) else None
    inputs = build_inputs(ctx, env, sha, cfg.platforms)
    forced = forced_builder(ctx, builder)
    ctx.out.line(
        f"gonogo publish {env} {short(sha)} to {repo_name}{' (dry run)' if dry_run else ''}"
    )
    overrides = make_overrides(ctx, override, reason)
    report = evaluate_gates(ctx, "publish", env, sha=sha, confirm=confirm, overrides=overrides)

    upstream = ctx.env(env).promote_from
    artifact, refused = _promoted(ctx, env, sha, report)
    if artifact is None and refused is None:
        artifact, _ = find_built(
            ctx, fingerprint=inputs.fingerprint, builder=forced, platforms=inputs.platforms
        )
    # A standing promoted-from refusal means there is nothing to publish: no builder at all.
    may_build = artifact is None and refused is None
    chosen = choose_builder(ctx, builder) if may_build else None
    engine = artifact.builder if artifact is not None else chosen.name if chosen else ""
    latest = latest_allowed(ctx.ledger, ctx.config, sha)
    plans = render_tags(
        templates, tag_values(sha=sha, version=version, engine=engine, env=env), latest
    )
    pushing = [p.tag for p in plans if p.action == "push"]
    if not pushing:
        # Only held-back tags (`--tag latest` before production verified it): not a failure.
        why = "; ".join(f"{p.tag} skipped: {p.reason}" for p in plans)
        return Result(
            0,
            f"nothing to publish: {why}",
            {"command": "publish", "env": env, "sha": sha, "repository": repo_name,
             "digest": None, "tags": [p.to_dict() for p in plans], "pushed": False},
        )  # fmt: skip
    if chosen is not None:
        ctx.out.line(f"  builder: {chosen.name} ({chosen.reason})")
    # Building only to show a digest is worth it when the publish itself would go ahead.
    if chosen is not None and dry_run and report.go:
        artifact = _build_for_dry_run(ctx, inputs, chosen)
    if artifact is not None:
        describe_artifact(ctx, artifact)
        get = Step(
            "reuse",
            f"use {artifact.digest} ({artifact.source}"
            f"{' from ' + artifact.from_env if artifact.from_env else ''})",
            {"digest": artifact.digest},
        )
    elif chosen is not None:
        get = Step(
            "build",
            f"build {inputs.dockerfile} at {short(sha)} with {chosen.name} for "
            f"{', '.join(inputs.platforms)}",
            {"fingerprint": inputs.fingerprint, "builder": chosen.name},
        )
    else:
        assert refused is not None and upstream is not None
        get = Step(
            "promote",
            f"use the image verified on {upstream}: there is none for {short(sha)} "
            f"({refused.id} NO-GO); nothing is built",
        )
    digest = artifact.digest if artifact is not None else None
    if digest is not None:
        shown = digest
    elif chosen is not None and dry_run:
        shown = "(not built: the gates say NO-GO, so the dry run builds nothing)"
    elif chosen is not None:
        shown = "(digest known after the build, before anything is pushed)"
    else:
        shown = f"(no image verified on {upstream})"
    for p in plans:
        if p.action == "push":
            ctx.out.line(f"  → {repo_name}:{p.tag}  {shown}")
        else:
            ctx.out.line(f"  - {repo_name}:{p.tag} skipped: {p.reason}")
    unverified = _unverified_platforms(ctx, artifact, inputs.platforms)
    steps = (
        get,
        Step("inspect", "structure checks on every platform: user, dirs, entrypoint, ports, "
             "secrets"),
        Step("check-tags", f"{IMMUTABLE_GATE}: version and SHA tags must not name another image"),
        Step("push", f"push to {repo_name}: blobs it lacks, manifests by digest, then "
             f"{', '.join(pushing)} (each read back)", {"tags": pushing}),
    )  # fmt: skip
    plan = Plan("publish", env, steps)
    data: dict[str, Any] = {
        "command": "publish",
        "env": env,
        "sha": sha,
        "version": version,
        "registry": target.registry,
        "repository": repo_name,
        "digest": digest,
        "tags": [{**p.to_dict(), "digest": digest if p.action == "push" else None} for p in plans],
        "latest": {"allowed": latest[0], "reason": latest[1]},
        "gates": report.to_dict(),
        "plan": plan.to_dict(),
    }
    if artifact is not None:
        data["artifact"] = artifact.to_dict(ctx.root)
        data["platforms"] = _platform_digests(artifact, None)
        data["platforms_not_verified"] = unverified

    if dry_run:
        if artifact is not None:
            results = structure_results(ctx, None, artifact)
            print_results(ctx, results)
            report = GateReport((*report.results, *results))
            data["gates"] = report.to_dict()
            data["environments"] = digest_history(
                ctx.ledger, artifact.digest, ctx.config.environments
            )
        result = dry_run_result(ctx, plan, report, data)
        if artifact is not None and artifact.source == "built":
            result.message = (
                f"dry run: {report.verdict}; built {artifact.digest} locally to name its digest "
                f"(build run {artifact.built_by_run}; publishing reuses it); nothing was pushed"
            )
        return result

    from gonogo.executor import Run

    with Run(ctx, "publish", env, sha=sha, plan=plan) as run:
        data.update(run_id=run.id, evidence=evidence_label(ctx, run))
        if not report.go:
            raise refuse(ctx, run, report)
        with run.step(get.action, get.description) as handle:
            if artifact is None:
                assert chosen is not None
                artifact = build_artifact(ctx, run, inputs, chosen)
                describe_artifact(ctx, artifact)
            run.artifact = artifact.digest
            handle.detail.update(digest=artifact.digest, source=artifact.source)
        digest = artifact.digest
        data.update(
            digest=digest,
            artifact=artifact.to_dict(ctx.root),
            platforms=_platform_digests(artifact, None),
            platforms_not_verified=unverified,
        )
        for entry in data["tags"]:
            if entry["action"] == "push":
                entry["digest"] = digest
        with run.step("inspect", steps[1].description) as handle:
            results = structure_results(ctx, run, artifact)
            handle.detail.update(verdict=GateReport(tuple(results)).verdict)
        print_results(ctx, results)
        pushed = _push(ctx, run, target.registry, target.repository, artifact, plans, report,
                       results, data)  # fmt: skip
        data["platforms"] = _platform_digests(artifact, pushed)
        data["confirmed"] = {tag: pushed.digest for tag in pushed.tags}
        payload = {
            "sha": sha,
            "env": env,
            "registry": target.registry,
            "repository": repo_name,
            "digest": pushed.digest,
            "media_type": pushed.media_type,
            "kind": artifact.kind,
            "tags": list(pushed.tags),
            "skipped": [{"tag": p.tag, "reason": p.reason} for p in plans if p.action == "skip"],
            "platforms": data["platforms"],
            "counters": data["counters"],
            "source": artifact.source,
            "from_env": artifact.from_env,
            "built_by_run": artifact.built_by_run,
            "platforms_not_verified": unverified,
            "version": version,
        }
        ctx.ledger.record(
            "image.published",
            actor=ctx.actor,
            env=env,
            run_id=run.id,
            payload=run.evidence.redactor.data(payload),
        )
        data["environments"] = digest_history(ctx.ledger, pushed.digest, ctx.config.environments)
        run.evidence.write_json("publish.json", data)
        run.record["publish"] = payload
        moved = data["counters"]
        summary = (
            f"published {artifact.kind} {pushed.digest} as {', '.join(pushed.tags)} to "
            f"{repo_name} ({moved['blob_uploads']} blob(s), {moved['blob_bytes']} bytes of "
            f"layers, {moved['manifest_puts']} manifest(s) uploaded)"
        )
        if unverified:
            summary += f"; not for {', '.join(unverified)} (not in the verified image)"
        skipped = [p for p in plans if p.action == "skip"]
        if skipped:
            summary += "; " + "; ".join(f"{p.tag} skipped: {p.reason}" for p in skipped)
        run.summary = summary
    return Result(0, f"{summary}. Evidence: {data['evidence']}", data)


def _push(
    ctx: Context,
    run: Run,
    registry: str,
    repository: str,
    artifact: ImageArtifact,
    plans: Sequence[TagPlan],
    report: GateReport,
    results: Sequence[GateResult],
    data: dict[str, Any],
) -> PushResult:
    """Check the tags, refuse on any NO-GO, then push; nothing is sent before the verdict."""
    from gonogo.images.oci_layout import OciLayout
    from gonogo.images.registry import RegistryClient

    assert ctx.config.publish is not None
    tags = [p.tag for p in plans if p.action == "push"]
    checked = GateReport((*report.results, *results))
    if not checked.go:
        # The image itself is refused: the registry is not even asked.
        data["gates"] = checked.to_dict()
        raise refuse(ctx, run, checked)
    client = RegistryClient.from_environment(
        registry, environ=ctx.environ, deadline_s=ctx.config.publish.timeout
    )
    with client:
        with run.step("check-tags", f"{IMMUTABLE_GATE}: {', '.join(tags)}") as handle:
            immutable = _immutable_check(client, repository, artifact.digest, plans)
            handle.detail.update(verdict=immutable.verdict)
        combined = GateReport(
            (*report.results, *results, immutable.redacted(run.evidence.redactor))
        )
        data["gates"] = combined.to_dict()
        if not combined.go:
            raise refuse(ctx, run, combined)
        record_gates(ctx, run, combined)
        with run.step("push", f"push {artifact.digest[:19]} as {', '.join(tags)}") as handle:
            pushed = client.push_image(
                OciLayout.open(artifact.layout), artifact.digest, repository, tags
            )
            handle.detail.update(digest=pushed.digest, tags=list(pushed.tags))
        data["counters"] = asdict(client.counters)
        data["push_counters"] = asdict(pushed.counters)
    if pushed.digest != artifact.digest:
        raise GonogoError(
            f"the registry named the pushed image {pushed.digest}, not {artifact.digest}"
        )
    return pushed


__all__ = ["choose_env", "publish"]
