"""One Heroku environment as the heroku provider sees it: app, settings, key, clients.

Also the mapping between Heroku's releases and the ledger's. The ledger numbers releases
per environment itself (v1, v2, ...); a Heroku environment's ledger release records the
Heroku release it made in its description (`heroku v57: deploy 1a2b3c4 (image
0123456789ab)`), and a Heroku release is traced back to a ledger release through that
version, a "Rollback to vN" chain, or the image it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gonogo.errors import DeployFailed, GonogoError

if TYPE_CHECKING:
    from gonogo.config.schema import HerokuSettings
    from gonogo.context import Context
    from gonogo.executor import Run
    from gonogo.heroku import App, HerokuClient, Release
    from gonogo.images.registry import RegistryClient
    from gonogo.ledger.store import ReleaseRow

_HEROKU_VERSION = re.compile(r"^heroku v(\d+)\b")
_IMAGE = re.compile(r"\(image ([0-9a-f]{12})\)")
_MAX_CHAIN = 50  # "Rollback to vN" links followed before giving up
POLL_S = 1.0  # how often a pending release is read again while nothing streams
# Requests per API call at most, all within `api_timeout`: a 429 storm is waited out as
# long as the time allows (the answers say how long), not cut short by a count.
ATTEMPTS = 12


@dataclass(frozen=True)
class Site:
    """`env` of `ctx`, a Heroku app."""

    ctx: Context
    env: str

    @property
    def settings(self) -> HerokuSettings:
        return self.ctx.env(self.env).heroku_settings

    @property
    def app(self) -> str:
        app = self.ctx.env(self.env).app
        assert app is not None  # the schema insists on it for provider = "heroku"
        return app

    @property
    def key_name(self) -> str:
        return self.settings.api_key_env

    def api_key(self) -> str:
        """The API key, or a one-line error naming the variable to set."""
        key = self.ctx.environ.get(self.key_name, "").strip()
        if not key:
            raise GonogoError(
                f"{self.key_name} is not set: environment {self.env} (Heroku app {self.app}) "
                f"needs a Heroku API key there; export {self.key_name}=$(heroku auth:token)"
            )
        return key

    def api(self) -> HerokuClient:
        """A Platform API client; use it as a context manager."""
        from gonogo.heroku import HerokuClient

        timeout = self.settings.api_timeout
        return HerokuClient(
            self.api_key(),
            base_url=self.settings.api_url,
            deadline_s=timeout,
            timeout_s=max(0.5, min(10.0, timeout / 3)),
            attempts=ATTEMPTS,
            poll_s=POLL_S,
        )

    def preflight(self) -> App | None:
        """GET the app once, before a command builds, pushes or changes anything.

        A refused key (401), an app that does not exist or that the key cannot see (404),
        a key without access to it (403) and an app not on the container stack are each a
        one-line GonogoError naming the app and what to do (never the key). None when the
        API gave no verdict (unreachable, rate limited, an odd answer): the calls that
        follow meet and report that themselves.
        """
        from gonogo.heroku import HerokuError, HerokuUnavailable

        with self.api() as api:
            try:
                app = api.app(self.app)
            except HerokuUnavailable:
                return None
            except HerokuError as exc:
                problem = self._refusal(exc.status)
                if problem is None:
                    return None
                raise GonogoError(problem) from None
        if app.runs_images is False:
            raise GonogoError(
                f"heroku: app {self.app} (environment {self.env}) is on stack "
                f"{app.stack or app.build_stack}, not container, so it cannot run gonogo's "
                f"images: `heroku stack:set container -a {self.app}`"
            )
        return app

    def _refusal(self, status: int | None) -> str | None:
        app, env, key = self.app, self.env, self.key_name
        if status == 401:
            return (
                f"heroku: the API key in {key} was refused for app {app} (environment {env}; "
                f"401 unauthorized): set a valid key in {key}, e.g. from `heroku auth:token`"
            )
        if status == 403:
            return (
                f"heroku: the API key in {key} has no access to app {app} (environment "
                f"{env}; 403 forbidden): use the key of an account with access to {app} "
                f"(`heroku access -a {app}` lists who has it)"
            )
        if status == 404:
            return (
                f"heroku: app {app} (environment {env}) does not exist or the API key in "
                f"{key} cannot see it (404 not_found): check environments.{env}.app in "
                f"{self.ctx.config_path.name}; `heroku apps` lists the apps the key can see"
            )
        return None

    def registry(self) -> RegistryClient:
        """A client for the container registry: user `_`, password the API key."""
        from gonogo.images.credentials import Credentials
        from gonogo.images.registry import RegistryClient

        credentials = Credentials("_", self.api_key(), source=f"environment {self.key_name}")
        deadline = max(120.0, self.settings.api_timeout)
        return RegistryClient(self.settings.registry, credentials=credentials, deadline_s=deadline)

    def repository(self, process_type: str) -> str:
        return f"{self.app}/{process_type}"

    def protect(self, run: Run, *secrets: str) -> None:
        """Make the run's evidence redact the API key (whatever its variable is called) and
        the given values, on top of what it already redacts."""
        from gonogo.evidence import Redactor

        extra = [s for s in (self.ctx.environ.get(self.key_name, "").strip(), *secrets) if s]
        run.evidence.redactor = Redactor.from_environ(self.ctx.environ, extra)


def step_failed(site: Site, what: str, exc: GonogoError, state: str) -> DeployFailed:
    """A remote failure during a step, as exit 3 saying what state it left."""
    return DeployFailed(f"{site.env}: {what} failed: {exc.message}. {state}")


# -- ledger <-> Heroku ----------------------------------------------------------------------


def describe(heroku_version: int, sha: str, image_id: str) -> str:
    """A Heroku environment's ledger release description."""
    return f"heroku v{heroku_version}: deploy {sha[:7]} (image {short_image(image_id)})"


def short_image(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def heroku_version_of(row: ReleaseRow) -> int | None:
    """The Heroku release a ledger release made, from its description."""
    match = _HEROKU_VERSION.match(row.description)
    return int(match.group(1)) if match else None


def image_of(row: ReleaseRow) -> str | None:
    """The short image id a ledger release released, from its description."""
    match = _IMAGE.search(row.description)
    return match.group(1) if match else None


def image_at(releases: Sequence[Release], version: int) -> str | None:
    """The (short) web image Heroku release `version` runs: its own ("Deployed web (...)"),
    its rollback target's, or for a config or add-on change, the newest earlier image."""
    by_version = {r.version: r for r in releases}
    for _ in range(_MAX_CHAIN):
        rel = by_version.get(version)
        if rel is None:
            return None
        if rel.image_id is not None:
            return rel.image_id
        if rel.rollback_of is not None:
            version = rel.rollback_of
            continue
        earlier = [r for r in releases if r.version < version and r.status == "succeeded"]
        if not earlier:
            return None
        version = max(earlier, key=lambda r: r.version).version
    return None


def ledger_release_for(
    rows: Iterable[ReleaseRow], releases: Sequence[Release], version: int
) -> ReleaseRow | None:
    """The ledger release that Heroku release `version` runs: the one that made it, the
    one a rollback chain leads to, else the newest good one with the same image."""
    rows = list(rows)
    by_version = {r.version: r for r in releases}
    seen: set[int] = set()
    current: int | None = version
    while current is not None and current not in seen and len(seen) < _MAX_CHAIN:
        seen.add(current)
        made = [r for r in rows if heroku_version_of(r) == current]
        if made:
            return max(made, key=lambda r: r.version)
        rel = by_version.get(current)
        current = rel.rollback_of if rel is not None else None
    image = image_at(releases, version)
    if image is None:
        return None
    same = [r for r in rows if image_of(r) == image and r.state != "failed"]
    if not same:
        return None
    verified = [r for r in same if r.verified_at]
    return max(verified or same, key=lambda r: r.version)


def parse_version(text: str) -> int:
    raw = text[1:] if text[:1] in ("v", "V") else text
    if not raw.isdigit():
        raise GonogoError(f"--to {text!r}: give a Heroku release version such as v123")
    return int(raw)
