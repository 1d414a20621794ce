"""`HerokuClient`: the Heroku Platform API as the heroku provider needs it, without the CLI.

Reading: `app`, `features` / `preboot_enabled`, `formation`, `releases` (Range paging),
`release`, `current_release`, `config_vars`, `release_config_vars`,
`config_var_name_diff` (names only), `dynos`, `dyno`, `recent_logs`.
Changing: `create_container_release` and `rollback` (never two releases for one retried
call), `run_detached` (never two dynos for one retried call).
Following: `follow_release` (release phase output and outcome), `dyno_exit_status` (a
one-off dyno's output and real exit status), `log_session` / `stream_log`.

Every call goes through one retry policy (`gonogo.retry.call_with_retry`) within
`deadline_s`; see http.py. Errors are `HerokuError` (a 4xx, with Heroku's id and message),
`HerokuUnavailable` (no answer, or 429/5xx until the deadline) or `HerokuOutcomeUnknown` (a
change whose answer was lost and whose effect did not show: made or not, it was not sent
again), one line, never with the API key.
"""

from __future__ import annotations

from collections.abc import Mapping

from gonogo.heroku.dynos import DynoOps
from gonogo.heroku.http import segment
from gonogo.heroku.models import App, Feature, FormationEntry
from gonogo.heroku.releases import ReleaseOps

__all__ = ["HerokuClient"]


class HerokuClient(ReleaseOps, DynoOps):
    """Use as a context manager, or call close(). See HerokuHttp for the options."""

    def app(self, name: str) -> App:
        return App.from_api(self._get(f"/apps/{segment(name)}"))

    def features(self, app: str) -> list[Feature]:
        return [Feature.from_api(f) for f in self._list(f"/apps/{segment(app)}/features")]

    def preboot_enabled(self, app: str) -> bool:
        """Preboot starts the new release's dynos before moving traffic, so for a while
        old and new both answer: a version probe must check which one it reached."""
        return any(f.name == "preboot" and f.enabled for f in self.features(app))

    def formation(self, app: str) -> list[FormationEntry]:
        return [FormationEntry.from_api(f) for f in self._list(f"/apps/{segment(app)}/formation")]

    def scale(self, app: str, quantities: Mapping[str, int]) -> list[FormationEntry]:
        """Set process type quantities (`PATCH /apps/{app}/formation`); idempotent, so a
        retried request changes nothing twice."""
        path = f"/apps/{segment(app)}/formation"
        updates = [{"type": t, "quantity": q} for t, q in sorted(quantities.items())]
        raw = self._json(self._request("PATCH", path, body={"updates": updates}), f"PATCH {path}")
        if not isinstance(raw, list):
            raise self._error(f"heroku API (PATCH {path}): the answer is not a JSON list")
        return [FormationEntry.from_api(f) for f in raw]
