"""gonogo publish [ENV]: push the commit's image to `[publish].repository` with its tags.

Order: gates for `publish` (prod-guard, ci-passed, custom gates) → the artifact (the
promote_from environment's image of this SHA, reused by digest; else this environment's
earlier build of the same inputs; else built now) → structure checks on every platform →
immutable tags (a tag naming a version or a SHA never moves to another digest) → push:
missing blobs, manifests by digest, then each tag, read back and compared → ledger event
`image.published` with per-platform digests and the bytes that moved.

`latest` moves only when `[publish].latest_requires` holds (by default: the SHA has a
verified release on a protected environment); otherwise it is skipped with the reason, which
is not a failure. `--dry-run` prints every tag and digest and pushes nothing.
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
    ImageArtifact,
    build_artifact,
    build_inputs,
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
from gonogo.errors import GonogoError
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
    from gonogo.images.registry import PushResult, RegistryClient

IMMUTABLE_GATE = "tags-immutable"


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

    artifact = find_promoted(ctx, env, inputs)
    if artifact is None:
        artifact, _ = find_built(
            ctx, fingerprint=inputs.fingerprint, builder=forced, platforms=inputs.platforms
        )
    chosen = None if artifact is not None else choose_builder(ctx, builder)
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
    if artifact is not None:
        describe_artifact(ctx, artifact)
        get = Step(
            "reuse",
            f"use {artifact.digest} ({artifact.source}"
            f"{' from ' + artifact.from_env if artifact.from_env else ''})",
            {"digest": artifact.digest},
        )
    else:
        assert chosen is not None
        ctx.out.line(f"  builder: {chosen.name} ({chosen.reason})")
        get = Step(
            "build",
            f"build {inputs.dockerfile} at {short(sha)} with {chosen.name} for "
            f"{', '.join(inputs.platforms)}",
            {"fingerprint": inputs.fingerprint, "builder": chosen.name},
        )
    digest = artifact.digest if artifact is not None else None
    shown = digest or "(digest known after the build)"
    for p in plans:
        if p.action == "push":
            ctx.out.line(f"  → {repo_name}:{p.tag}  {shown}")
        else:
            ctx.out.line(f"  - {repo_name}:{p.tag} skipped: {p.reason}")
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

    if dry_run:
        if artifact is not None:
            results = structure_results(ctx, None, artifact)
            print_results(ctx, results)
            report = GateReport((*report.results, *results))
            data["gates"] = report.to_dict()
        return dry_run_result(ctx, plan, report, data)

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
