"""The heroku provider's deploy and rollback steps (the I/O half; plans are in heroku.py).

Deploy: `image` (build the SHA's linux/amd64 image, or reuse the same inputs' build, or the
promote_from environment's verified image as is) → `push` (to <registry>/<app>/<type> for
each process type, user `_`, password the API key) → `release` (the formation names the
image id, the config digest, for each process type; one Heroku release, however often the
request is retried) → `follow` (release phase output into the evidence until the release
succeeded or failed). Rollback: `heroku-rollback` (a new release copying the target's image
and config vars, after writing which config var names that changes) → `follow`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gonogo.errors import DeployFailed, GonogoError, NoGo
from gonogo.ledger.store import ReleaseRow, now_iso
from gonogo.providers import heroku_rollback
from gonogo.providers.heroku_rollback import after_failure
from gonogo.providers.heroku_site import Site, describe, short_image, step_failed

if TYPE_CHECKING:
    from gonogo.commands.build import ImageArtifact, PlatformDigests
    from gonogo.executor import Run
    from gonogo.heroku import HerokuClient, Release

PLATFORM = "linux/amd64"  # what Heroku runs
_TAIL = 10  # release output lines quoted in a message


@dataclass
class Session:
    """What one step hands the next within this process: the image, the release made."""

    artifacts: dict[str, ImageArtifact] = field(default_factory=dict)
    made: dict[str, Release] = field(default_factory=dict)


# -- image ------------------------------------------------------------------------------


def image(site: Site, session: Session, params: dict[str, Any], run: Run) -> dict[str, Any]:
    """Build (or reuse) the image of the SHA for linux/amd64; check its structure."""
    from gonogo.commands.build import (
        build_artifact,
        build_inputs,
        choose_builder,
        find_built,
        structure_results,
    )
    from gonogo.gates.engine import GateReport

    ctx, env, sha = site.ctx, site.env, params["sha"]
    if params.get("reuse"):
        artifact = promoted(site, params["reuse"], params.get("from"), sha)
    else:
        inputs = build_inputs(ctx, env, sha, (PLATFORM,))
        found, _ = find_built(ctx, fingerprint=inputs.fingerprint, platforms=inputs.platforms)
        artifact = found or build_artifact(ctx, run, inputs, choose_builder(ctx, None))
    platform = _amd64(artifact)
    report = GateReport(tuple(structure_results(ctx, run, artifact)))
    if not report.go and ctx.env(env).protected:
        bad = report.refusals()
        raise NoGo(
            f"NO-GO ({', '.join(r.id for r in bad)}): {bad[0].reason}; image "
            f"{artifact.digest[:19]} must not go to protected {env}; nothing was released"
        )
    for r in report.refusals():
        run.log(f"image check {r.id}: NO-GO (not enforced for {env}): {r.reason}")
    run.artifact = artifact.digest
    session.artifacts[env] = artifact
    return {
        "digest": artifact.digest,
        "image_id": platform.image_id,
        "manifest": platform.manifest_digest,
        "source": artifact.source,
        "checks": report.verdict,
    }


def _amd64(artifact: ImageArtifact) -> PlatformDigests:
    for p in artifact.platforms:
        if p.platform == PLATFORM:
            return p
    if len(artifact.platforms) == 1 and not artifact.platforms[0].platform:
        return artifact.platforms[0]
    have = ", ".join(p.platform for p in artifact.platforms) or "none"
    raise NoGo(
        f"image {artifact.digest[:19]} has no {PLATFORM} image (platforms: {have}); Heroku "
        "runs linux/amd64 only; nothing was released"
    )


def promoted(site: Site, digest: str, upstream: str | None, sha: str) -> ImageArtifact:
    """The upstream environment's verified image, exactly as it was released there."""
    from dataclasses import replace

    from gonogo.commands.build import _artifact_from_event, layout_problem
    from gonogo.images.publish import image_events

    ctx = site.ctx
    for row, payload in reversed(image_events(ctx.ledger, "image.built")):
        if payload.get("digest") != digest or payload.get("sha") != sha:
            continue
        artifact = _artifact_from_event(ctx, row, payload)
        if artifact is None:
            continue
        problem = layout_problem(artifact.layout, artifact.ref, artifact.digest)
        if problem is not None:
            raise NoGo(
                f"image {digest[:19]} verified on {upstream} is no longer intact ({problem}); "
                "it is not the image that was verified, so nothing was changed"
            )
        return replace(artifact, source="promoted", from_env=upstream)
    raise NoGo(
        f"image {digest[:19]} verified on {upstream} is not in this machine's image store "
        f"(.gonogo/images); deploy {upstream} from here first or build it with "
        f"`gonogo build {upstream} --ref {sha[:12]}`; nothing was changed"
    )


# -- push -------------------------------------------------------------------------------


def push(site: Site, session: Session, params: dict[str, Any], run: Run) -> dict[str, Any]:
    from gonogo.images.oci_layout import OciLayout

    artifact = session.artifacts[site.env]
    platform = _amd64(artifact)
    pushed: dict[str, str] = {}
    try:
        with site.registry() as registry:
            layout = OciLayout.open(artifact.layout)
            for ptype in params["process_types"]:
                repo = site.repository(ptype)
                result = registry.push_image(layout, platform.manifest_digest, repo, ["latest"])
                pushed[ptype] = f"{site.settings.registry}/{repo}@{result.digest}"
                run.log(f"pushed {platform.image_id} to {site.settings.registry}/{repo}:latest")
            counters = registry.counters
    except GonogoError as exc:
        raise step_failed(site, "the image push", exc, "Nothing was released.") from None
    return {
        "pushed": pushed,
        "image_id": platform.image_id,
        "blob_uploads": counters.blob_uploads,
        "blob_bytes": counters.blob_bytes,
    }


# -- release and follow -----------------------------------------------------------------


def release(site: Site, session: Session, params: dict[str, Any], run: Run) -> dict[str, Any]:
    """Make the Heroku release and record it in the ledger as pending."""
    from gonogo.heroku import HerokuOutcomeUnknown

    artifact = session.artifacts[site.env]
    image_id = _amd64(artifact).image_id
    images = dict.fromkeys(params["process_types"], image_id)
    try:
        with site.api() as api:
            made = api.create_container_release(site.app, images)
            counters = api.counters
    except GonogoError as exc:
        # The client sends the release again only when Heroku certainly did not act on it,
        # and says so (HerokuOutcomeUnknown) whenever it may have: anything else made none.
        state = (
            "Whether Heroku made a release is unknown (it was not requested twice): check "
            f"`gonogo status {site.env}` before deploying again."
            if isinstance(exc, HerokuOutcomeUnknown)
            else "No release was made; the app runs what it ran before."
        )
        raise step_failed(
            site, f"the release of image {short_image(image_id)}", exc, state
        ) from None
    sha = params["sha"]
    site.ctx.ledger.add_release(
        ReleaseRow(
            env=site.env,
            version=params["version"],
            run_id=run.id,
            sha=sha,
            artifact=artifact.digest,
            vars=params["vars"],
            state="pending",
            description=describe(made.version, sha, image_id),
            created_at=now_iso(),
            verified_at=None,
            live_since=None,
        ),
        actor=site.ctx.actor,
    )
    session.made[site.env] = made
    run.log(f"heroku release v{made.version} ({made.id}) made for {site.app}: {made.status}")
    return {
        "heroku_version": made.version,
        "release_id": made.id,
        "status": made.status,
        "image_id": image_id,
        "retries": counters.retries,
        "reconciled": counters.reconciled,
    }


def follow(site: Site, session: Session, params: dict[str, Any], run: Run) -> dict[str, Any]:
    """Stream the release phase into the evidence until the release ends; on success the
    ledger release goes live, on failure the message carries its output."""
    made = session.made[site.env]
    version = params["version"]
    log_name = f"release-v{made.version}.log"
    output: list[str] = []
    with (run.evidence.folder / log_name).open("a", encoding="utf-8") as fh:

        def on_output(line: str) -> None:
            output.append(line)
            fh.write(run.evidence.redactor.text(line) + "\n")
            fh.flush()
            run.log(f"release v{made.version}: {line}")

        try:
            with site.api() as api:
                final = api.follow_release(
                    site.app, made, deadline_s=site.settings.release_timeout, on_output=on_output
                )
                preboot = _preboot(api, site.app) if final.status == "succeeded" else None
        except GonogoError as exc:
            raise step_failed(
                site,
                f"following Heroku release v{made.version}",
                exc,
                f"Its outcome is unknown: check `gonogo status {site.env}`.",
            ) from None
    detail: dict[str, Any] = {
        "heroku_version": final.version,
        "status": final.status,
        "output_lines": len(output),
        "output_tail": [run.evidence.redactor.text(line) for line in output[-5:]],
        "log": log_name,
    }
    ledger, actor = site.ctx.ledger, site.ctx.actor
    if final.status == "succeeded":
        ledger.set_live(site.env, version, actor=actor, run_id=run.id)
        detail["preboot"] = preboot
        if preboot:
            _preboot_note(site, run)
        return detail
    tail = run.evidence.redactor.text(" | ".join(output[-_TAIL:])) or "no release phase output"
    label = f"Heroku release v{final.version}"
    if params.get("activate"):
        raise DeployFailed(
            f"{site.env}: the rollback release ({label}) {final.status}: {tail}. Heroku keeps "
            f"the release it ran before; check `gonogo status {site.env}`. Output: "
            f"{run.evidence.folder / log_name}",
            details={"status": "failed", **detail},
        )
    if final.status == "pending":
        raise DeployFailed(
            f"{site.env}: {label} was still pending after {site.settings.release_timeout:g}s; "
            f"its outcome is unknown (ledger v{version} stays pending). Check "
            f"`gonogo status {site.env}` before deploying again. Output so far: "
            f"{run.evidence.folder / log_name}",
            details={"status": "halted", **detail},
        )
    ledger.set_release_state(
        site.env, version, "failed", actor=actor, run_id=run.id, reason=f"{label} {final.status}"
    )
    state = after_failure(site, run, params.get("previous"))
    raise DeployFailed(
        f"{site.env}: {label} {final.status} in its release phase: {tail}. {state} "
        f"Release output: {run.evidence.folder / log_name}",
        details={"status": "failed", **detail, "state": state},
    )


def _preboot_note(site: Site, run: Run) -> None:
    """With preboot the old dynos answer for a while: only a `{sha}` probe tells them apart."""
    probes = site.ctx.config.verify_for(site.env).probes
    if any("{sha}" in str(p.json_fields) for p in probes):
        run.log(
            f"preboot is on for {site.app}: old dynos answer until the new ones are up; "
            "verification waits for the version probe to report this release's SHA"
        )
        return
    warning = (
        f"preboot is on for {site.app} but no probe checks {{sha}}: verification may pass "
        'against the old dynos; add a version probe (json = { gitSha = "{sha}" })'
    )
    run.log(warning)
    site.ctx.out.line(f"  ! {warning}")


def _preboot(api: HerokuClient, app: str) -> bool | None:
    """Whether preboot is on; None when that cannot be read (the release stands anyway)."""
    try:
        return api.preboot_enabled(app)
    except GonogoError:
        return None


Action = Callable[[Site, Session, dict[str, Any], "Run"], dict[str, Any]]
ACTIONS: dict[str, Action] = {
    "image": image,
    "push": push,
    "release": release,
    "follow": follow,
    "heroku-rollback": heroku_rollback.rollback,
}
