"""The heroku provider: Heroku's Platform API and container registry, no `heroku` CLI.

```toml
[environments.staging]
provider = "heroku"
app = "autorisen"
url = "https://dev.cape-control.com"     # default: the app's web_url
heroku = { process_types = ["web"], release_timeout = "10m" }   # all optional
```

A deploy is image (built for linux/amd64 from the commit, or the promote_from
environment's verified image reused as is) → push to `<registry>/<app>/<type>` → release
(the formation names the image id) → follow the release phase → gonogo's own verify step,
whose version probe (`{sha}`) is what makes preboot safe: old dynos answer the old SHA.

Release numbers: the ledger numbers an environment's releases itself (v1, v2, ...), decided
before anything runs; the Heroku release each one made is in its description
(`heroku v57: deploy 1a2b3c4 (image 0123456789ab)`). `resolve_release` maps a Heroku
version (`gonogo rollback production --to v57`, as in the dashboard) to the ledger release
it runs. A rollback is a new Heroku release copying the target's image and config vars;
the config var names that differ are shown and recorded first (never their values).

Migrations run in detached one-off dynos (heroku_db.py); plans are data built from the
ledger and the configuration (heroku_release.py performs them).

Every entry point that talks to the API first runs `preflight(env)`: one GET of the app per
command, so a refused key, a missing or forbidden app, or an app not on the container stack
is a one-line usage error (exit 1) before anything is built, pushed or released, instead of
surfacing later as a gate refusal or a failed push. Gates that swallow errors (the release
phase, the database revision) see the same message; planning then raises it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError, NoGo
from gonogo.output import short
from gonogo.plan import Plan, Step
from gonogo.providers import heroku_db, heroku_observe, heroku_release, heroku_rollback
from gonogo.providers.base import ActivateIntent, DeployIntent, EnvStatus, RecentLogs
from gonogo.providers.heroku_observe import ReleasePhase
from gonogo.providers.heroku_site import (
    Site,
    heroku_version_of,
    image_at,
    image_of,
    ledger_release_for,
    parse_version,
)

if TYPE_CHECKING:
    from gonogo.context import Context
    from gonogo.executor import Run
    from gonogo.heroku import App
    from gonogo.ledger.store import ReleaseRow
    from gonogo.migrations.pending import MigrationTarget

__all__ = ["HerokuProvider", "ReleasePhase"]


class HerokuProvider:
    name = "heroku"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._session = heroku_release.Session()
        self._database_urls: dict[str, str] = {}
        self._web_urls: dict[str, str] = {}
        # (env, ledger version) -> the Heroku version `--to` asked for (resolve_release).
        self._pinned: dict[tuple[str, int], int] = {}
        # env -> the preflight's verdict: the app, None (no verdict), or the error to repeat.
        self._preflight: dict[str, App | GonogoError | None] = {}

    def site(self, env: str) -> Site:
        return Site(self.ctx, env)

    def preflight(self, env: str) -> Site:
        """The environment's Site once its app passed the preflight (heroku_site.Site.
        preflight), asked once per command; the same one-line GonogoError every time if not."""
        site = self.site(env)
        if env not in self._preflight:
            try:
                self._preflight[env] = site.preflight()
            except GonogoError as exc:
                self._preflight[env] = exc
        verdict = self._preflight[env]
        if isinstance(verdict, GonogoError):
            raise GonogoError(verdict.message)
        return site

    # -- planning ------------------------------------------------------------------------

    def plan_deploy(self, intent: DeployIntent) -> Plan:
        site = self.preflight(intent.env)  # before any image is built or pushed
        settings = site.settings
        types = list(settings.process_types)
        where = ", ".join(f"{settings.registry}/{site.repository(t)}" for t in types)
        steps: list[Step] = []
        if intent.reuse_artifact:
            # Refused before anything runs when that image is gone or altered here.
            heroku_release.promoted(site, intent.reuse_artifact, intent.reuse_from, intent.sha)
            steps.append(
                Step(
                    "image",
                    f"reuse image {intent.reuse_artifact[:19]}… verified on {intent.reuse_from} "
                    f"(the same image id goes to {site.app})",
                    {
                        "env": intent.env,
                        "sha": intent.sha,
                        "reuse": intent.reuse_artifact,
                        "from": intent.reuse_from,
                    },
                )
            )
        else:
            steps.append(
                Step(
                    "image",
                    f"build the image of {short(intent.sha)} for {heroku_release.PLATFORM} "
                    "(or reuse the build of the same inputs)",
                    {"env": intent.env, "sha": intent.sha},
                )
            )
        common = {"env": intent.env, "app": site.app, "process_types": types}
        steps += [
            Step("push", f"push it to {where} (user _, {site.key_name})", dict(common)),
            Step(
                "release",
                f"release it on Heroku app {site.app} as {intent.env} v{intent.version}: "
                f"formation {', '.join(types)} → its image id",
                {**common, "version": intent.version, "sha": intent.sha, "vars": intent.vars},
            ),
            Step(
                "follow",
                f"follow the Heroku release until it succeeds or fails (release phase output "
                f"into the evidence; at most {settings.release_timeout:g}s)",
                {
                    "env": intent.env,
                    "version": intent.version,
                    "previous": intent.previous.version if intent.previous else None,
                },
            ),
        ]
        notes = [
            f"config vars stay as they are on {site.app}; gonogo.toml vars are recorded, not set"
        ]
        if "release" in types:
            notes.append("the image is also released as the release process type")
        return Plan("deploy", intent.env, tuple(steps), tuple(notes))

    def plan_activate(self, intent: ActivateIntent) -> Plan:
        """A rollback: a new Heroku release copying the target's image and config vars.

        Reads the API to say which config var names change (names only)."""
        env, target = intent.env, intent.target
        site = self.preflight(env)
        version = self._pinned.get((env, target.version)) or heroku_version_of(target)
        if version is None:
            raise GonogoError(
                f"{env} {target.label} has no Heroku release recorded ({target.description!r}); "
                "name the Heroku release with --to vNNN"
            )
        try:
            with site.api() as api:
                text = heroku_rollback.diff_text(
                    heroku_rollback.config_diff(api, site.app, version)
                )
        except GonogoError as exc:
            raise GonogoError(
                f"{env}: cannot read Heroku release v{version} of {site.app}: {exc.message}"
            ) from None
        note = f"external configuration changes with this rollback: {text}"
        steps = (
            Step(
                "heroku-rollback",
                f"roll {site.app} back to Heroku release v{version} ({target.label}, "
                f"{short(target.sha)}): a new release with its image and config vars; {note}",
                {"env": env, "version": target.version, "heroku_version": version},
            ),
            Step(
                "follow",
                f"follow the rollback release until it succeeds or fails (at most "
                f"{site.settings.release_timeout:g}s)",
                {"env": env, "version": target.version, "activate": True},
            ),
        )
        return Plan("rollback", env, steps, (note,))

    def resolve_release(self, env: str, text: str) -> ReleaseRow:
        """`--to vNNN` for a Heroku environment: Heroku's release NNN, as the ledger
        release it runs. Rolling back then copies exactly Heroku's release NNN."""
        wanted = parse_version(text)
        site = self.preflight(env)
        with site.api() as api:
            releases = api.releases(site.app, limit=1000)
        found = next((r for r in releases if r.version == wanted), None)
        if found is None:
            newest = ", ".join(f"v{r.version}" for r in releases[:5])
            raise GonogoError(
                f"--to {text}: Heroku app {site.app} has no release v{wanted} (newest: {newest})"
            )
        if found.status != "succeeded":
            raise GonogoError(f"--to {text}: Heroku release v{wanted} {found.status}")
        row = ledger_release_for(self.ctx.ledger.releases(env), releases, wanted)
        if row is None:
            image = image_at(releases, wanted)
            raise GonogoError(
                f"--to {text}: Heroku release v{wanted} ({found.description[:60]!r}, image "
                f"{image or 'unknown'}) was not released by gonogo to {env}, so its commit is "
                "unknown; roll back to a release gonogo made (gonogo history " + env + ")"
            )
        self._pinned[(env, row.version)] = wanted
        return row

    def migration_target(self, env: str, release: ReleaseRow) -> MigrationTarget:
        site = self.preflight(env)
        return heroku_db.migration_target(site, release, self.database_url(env))

    def plan_migrate(self, env: str, release: ReleaseRow) -> Plan:
        """One one-off dyno per pending revision, so a failure stops at a known revision."""
        from gonogo.migrations.history import load_history, pending

        site = self.site(env)
        target = self.migration_target(env, release)
        self._check_live(site, release)
        todo = pending(load_history(target.cwd / target.ini), self.database_revisions(env))
        template = site.settings.migrate_command
        steps = tuple(
            Step(
                "migrate",
                f"run `{heroku_db.command_for(site, template, rev)}` in a one-off dyno of "
                f"{site.app} ({i}/{len(todo)}): {release.label}'s migrations",
                {
                    "env": env,
                    "version": release.version,
                    "revision": rev,
                    "command": heroku_db.command_for(site, template, rev),
                },
            )
            for i, rev in enumerate(todo, 1)
        )
        return Plan("migrate", env, steps)

    def plan_downgrade(
        self, env: str, release: ReleaseRow, undo: Sequence[tuple[str, str]]
    ) -> Plan:
        """One one-off dyno per revision to undo, running the live release's code."""
        site = self.site(env)
        self._check_live(site, release)
        template = site.settings.downgrade_command
        steps = tuple(
            Step(
                "downgrade",
                f"run `{heroku_db.command_for(site, template, to)}` in a one-off dyno of "
                f"{site.app} (undo {rev}, {i}/{len(undo)})",
                {
                    "env": env,
                    "version": release.version,
                    "revision": to,
                    "undo": rev,
                    "command": heroku_db.command_for(site, template, to),
                },
            )
            for i, (rev, to) in enumerate(undo, 1)
        )
        return Plan("rollback", env, steps)

    def _check_live(self, site: Site, release: ReleaseRow) -> None:
        """A one-off dyno runs Heroku's current release: it must be `release`'s image."""
        self.preflight(site.env)
        with site.api() as api:
            current = api.current_release(site.app)
            releases = api.releases(site.app, limit=200) if current is not None else []
        runs = ledger_release_for(
            self.ctx.ledger.releases(site.env), releases, current.version if current else 0
        )
        if current is None or runs is None or image_of(runs) != image_of(release):
            what = f"Heroku release v{current.version}" if current else "no release"
            raise NoGo(
                f"{site.app} runs {what}, not {site.env} {release.label}'s image, so a one-off "
                f"dyno would run other code; nothing was changed. Check `gonogo status "
                f"{site.env}`"
            )

    # -- performing ----------------------------------------------------------------------

    def perform(self, step: Step, run: Run) -> dict[str, Any]:
        site = self.site(step.params["env"])
        site.protect(run)
        if step.action in ("migrate", "downgrade"):
            url = self.database_url(site.env)
            return heroku_db.run_in_dyno(site, step.params, run, url)
        return heroku_release.ACTIONS[step.action](site, self._session, step.params, run)

    # -- observing -----------------------------------------------------------------------

    def database_url(self, env: str) -> str:
        if env not in self._database_urls:
            self._database_urls[env] = heroku_db.fetch_database_url(self.preflight(env))
        return self._database_urls[env]

    def database_revisions(self, env: str) -> list[str]:
        from gonogo.migrations.alembic import current_revisions

        return current_revisions(self.database_url(env))

    def base_url(self, env: str) -> str:
        configured = self.ctx.env(env).url
        if configured:
            return configured.rstrip("/")
        if env not in self._web_urls:
            site = self.site(env)
            checked = self._preflight.get(env)
            try:
                if checked is not None and not isinstance(checked, GonogoError):
                    web_url = checked.web_url  # the preflight read the app already
                else:
                    with site.api() as api:
                        web_url = api.app(site.app).web_url
            except GonogoError:
                web_url = None
            self._web_urls[env] = (web_url or f"https://{site.app}.herokuapp.com").rstrip("/")
        return self._web_urls[env]

    def alive_check(self, env: str) -> Callable[[], bool | str] | None:
        return None  # dynos restart on their own; the probes tell whether they answer

    def recent_logs(self, env: str, lines: int) -> RecentLogs:
        return heroku_observe.recent_logs(self.preflight(env), lines)

    def release_phase(self, env: str) -> ReleasePhase:
        """What the app's release phase runs (the migrations-explicit gate's Heroku half)."""
        return heroku_observe.release_phase(self.preflight(env))

    def verify_context(
        self, env: str, release: ReleaseRow, var_names: Collection[str] = ()
    ) -> dict[str, str]:
        """What probes and certify may read about the live Heroku release; of its config
        vars, only `var_names` (those the probes name)."""
        return heroku_observe.verify_context(self.site(env), release, var_names)

    def status(self, env: str) -> EnvStatus:
        try:
            site = self.preflight(env)
        except GonogoError as exc:  # status reports every environment; one bad key is a line
            url = self.ctx.env(env).url
            return EnvStatus(env, running=False, url=url, detail={"error": exc.message})
        return heroku_observe.status(site, self.base_url(env))

    def platform_releases(self, env: str, limit: int) -> list[dict[str, Any]] | None:
        return self.heroku_releases(env, limit)

    def heroku_releases(self, env: str, limit: int = 20) -> list[dict[str, Any]]:
        """Heroku's releases, newest first, each with the ledger release it runs."""
        return heroku_observe.heroku_releases(self.preflight(env), limit)

    def stop(self, env: str) -> str:
        return heroku_observe.stop(self.site(env))
