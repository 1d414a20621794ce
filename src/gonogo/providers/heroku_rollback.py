"""The heroku provider's rollbacks: a new Heroku release copying an earlier one.

`heroku-rollback` writes which config var names the rollback changes (names only, never
values: a Heroku rollback also restores the target's config vars) into the evidence and the
output, then POSTs the rollback release; `follow` (heroku_release.py) follows it. A release
whose release phase failed leaves Heroku on what it ran before: `after_failure` checks that
this is the last good ledger release, and puts that one back through the API if not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError
from gonogo.output import short
from gonogo.providers.heroku_site import (
    Site,
    heroku_version_of,
    ledger_release_for,
    step_failed,
)

if TYPE_CHECKING:
    from gonogo.executor import Run
    from gonogo.heroku import ConfigVarDiff, HerokuClient
    from gonogo.providers.heroku_release import Session


def after_failure(site: Site, run: Run, previous_version: int | None) -> str:
    """A failed release leaves Heroku on the release it ran before. If that is not the
    last good ledger release (or cannot be read), put that one back through the API."""
    ledger = site.ctx.ledger
    previous = ledger.release(site.env, previous_version) if previous_version else None
    if previous is None:
        return "There is no earlier good release; Heroku keeps whatever it ran before."
    target_version = heroku_version_of(previous)
    if target_version is None:
        return f"{previous.label} has no Heroku release recorded, so it was not put back."
    try:
        with site.api() as api:
            current = api.current_release(site.app)
            releases = api.releases(site.app, limit=200)
            live = (
                ledger_release_for(ledger.releases(site.env), releases, current.version)
                if current is not None
                else None
            )
            if live is not None and live.version == previous.version:
                return (
                    f"Heroku kept v{current.version if current else '?'} live, which is "
                    f"{previous.label} ({short(previous.sha)}): nothing to roll back."
                )
            changes = diff_text(config_diff(api, site.app, target_version))
            line = f"external configuration changes with this rollback: {changes}"
            run.log(f"heroku runs {live.label if live else 'an unknown release'}: rolling back")
            run.log(line)
            site.ctx.out.line(f"  ↺ rolling back {site.env} to {previous.label}; {line}")
            back = api.rollback(site.app, target_version)
            final = api.follow_release(
                site.app, back, deadline_s=site.settings.release_timeout, on_output=run.log
            )
    except GonogoError as exc:
        return (
            f"Putting {previous.label} back failed ({exc.message}); check "
            f"`gonogo status {site.env}`."
        )
    if final.status != "succeeded":
        return f"Rolling back to {previous.label} made Heroku release v{final.version}, " + (
            f"which {final.status}; check `gonogo status {site.env}`."
        )
    ledger.set_live(site.env, previous.version, actor=site.ctx.actor, run_id=run.id)
    ledger.record(
        "rollback.automatic",
        actor=site.ctx.actor,
        env=site.env,
        run_id=run.id,
        payload={"to": previous.label, "heroku_release": f"v{final.version}", "ok": True},
    )
    return (
        f"Rolled back through the API: Heroku release v{final.version} runs "
        f"{previous.label} ({short(previous.sha)}) again, with its config vars ({line}; "
        f"not re-verified: run `gonogo verify {site.env}`)."
    )


def diff_text(diff: ConfigVarDiff | None) -> str:
    """Names only, never values."""
    if diff is None:
        return "unknown (Heroku has no current release)"
    if diff.empty:
        return "none (the config var names and values are the same)"
    parts = [
        f"{what}: {', '.join(names)}"
        for what, names in (
            ("added", diff.added),
            ("removed", diff.removed),
            ("changed", diff.changed),
        )
        if names
    ]
    return "; ".join(parts)


def config_diff(api: HerokuClient, app: str, target_version: int) -> ConfigVarDiff | None:
    current = api.current_release(app)
    if current is None:
        return None
    return api.config_var_name_diff(app, current, target_version)


def rollback(site: Site, session: Session, params: dict[str, Any], run: Run) -> dict[str, Any]:
    """POST a rollback release to the target's Heroku release, after recording which
    config var names that changes (names only)."""
    target = params["heroku_version"]
    try:
        with site.api() as api:
            diff = config_diff(api, site.app, target)
            text = diff_text(diff)
            ctx_line = f"external configuration changes with this rollback: {text}"
            site.ctx.out.line(f"    {ctx_line}")
            run.log(ctx_line)
            run.evidence.write_json(
                f"config-diff-v{target}.json",
                {
                    "app": site.app,
                    "to": f"v{target}",
                    "values": "never recorded",
                    "added": list(diff.added) if diff else None,
                    "removed": list(diff.removed) if diff else None,
                    "changed": list(diff.changed) if diff else None,
                },
            )
            made = api.rollback(site.app, target)
    except GonogoError as exc:
        from gonogo.heroku import HerokuOutcomeUnknown

        state = (
            "Whether Heroku made the rollback release is unknown (it was not requested "
            f"twice): check `gonogo status {site.env}` before trying again."
            if isinstance(exc, HerokuOutcomeUnknown)
            else "No rollback release was made; the app runs what it ran before."
        )
        raise step_failed(site, f"the rollback to Heroku release v{target}", exc, state) from None
    session.made[site.env] = made
    return {
        "heroku_version": made.version,
        "rollback_of": target,
        "config_added": list(diff.added) if diff else None,
        "config_removed": list(diff.removed) if diff else None,
        "config_changed": list(diff.changed) if diff else None,
    }
