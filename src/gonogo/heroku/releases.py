"""Releases: list, read, make a container release, follow it, roll back, config var names.

- A container release is a formation batch update naming each process type's image id
  (`PATCH /apps/{app}/formation`, `Accept: ...; version=3.docker-releases`,
  `{"updates": [{"type": "web", "docker_image": "sha256:..."}]}`). The answer is the
  formation, not the release: the release it made is found in the release list, as the
  newest release above the version that was newest before, whose description names the
  images ("Deployed web (0123456789ab)").
- Neither that PATCH nor a rollback (`POST /apps/{app}/releases {"release": id}`) is
  idempotent. Each is sent again only when the API certainly did not act on it (see
  http.py); when its answer is lost, the release list is looked at instead (a bounded
  number of times): the release it made is adopted, or the call fails with
  `HerokuOutcomeUnknown` naming `heroku releases -a APP`. A deploy never makes two releases.
- Following a release reads its `output_stream_url` (release phase output, text/plain,
  resumable with `Range: bytes=N-` after a disconnect) and polls the release until its
  status is no longer `pending`, within a deadline.
- Config vars are read per release (`GET /apps/{app}/releases/{id}/config-vars`); the diff
  between two releases gives names only, never values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from gonogo.heroku.http import DOCKER_RELEASES_ACCEPT, Applied, HerokuHttp, Reconcile, segment
from gonogo.heroku.models import (
    ConfigVarDiff,
    HerokuError,
    HerokuOutcomeUnknown,
    Release,
    short_image_id,
)

__all__ = ["ReleaseOps"]

_PROCESS_TYPE = re.compile(r"^[-\w]{1,128}$")
_RECENT = 50  # releases looked at when finding the one an update made
_STREAM_RECONNECTS = 5


class ReleaseOps(HerokuHttp):
    # -- reading ----------------------------------------------------------------------

    def releases(
        self, app: str, *, newest_first: bool = True, limit: int | None = None
    ) -> list[Release]:
        """The app's releases by version, paged with `Range: version ..`."""
        raw = self._list(
            f"/apps/{segment(app)}/releases",
            attribute="version",
            descending=newest_first,
            limit=limit,
        )
        return [Release.from_api(r) for r in raw]

    def release(
        self, app: str, id_or_version: str | int, *, deadline_s: float | None = None
    ) -> Release:
        path = f"/apps/{segment(app)}/releases/{segment(id_or_version)}"
        return Release.from_api(self._json(self._request("GET", path, deadline_s=deadline_s), path))

    def current_release(self, app: str) -> Release | None:
        """The release the app runs now (`current: true`), among the recent ones."""
        return next((r for r in self.releases(app, limit=_RECENT) if r.current), None)

    def _newest_version(self, app: str) -> int:
        newest = self.releases(app, limit=1)
        return newest[0].version if newest else 0

    # -- making releases --------------------------------------------------------------

    def create_container_release(
        self, app: str, process_type_to_image: Mapping[str, str]
    ) -> Release:
        """Release the pushed images (`sha256:` config digests) for the given process
        types; returns the release made (usually `pending` while release phase runs)."""
        images = dict(process_type_to_image)
        if not images:
            raise HerokuError("nothing to release: no process type and image given")
        for ptype, image in images.items():
            if not _PROCESS_TYPE.match(ptype):
                raise HerokuError(f"{ptype[:80]!r} is not a Heroku process type name")
            short_image_id(image)  # raises for anything but a config digest
        path = f"/apps/{segment(app)}/formation"
        before = self._newest_version(app)

        def ours(release: Release) -> bool:
            return release.has_images(images)

        updates = [{"type": t, "docker_image": i} for t, i in sorted(images.items())]
        shown = ", ".join(f"{t} ({short_image_id(i)})" for t, i in sorted(images.items()))
        try:
            self._request(
                "PATCH",
                path,
                body={"updates": updates},
                accept=DOCKER_RELEASES_ACCEPT,
                reconcile=self._find_release(app, before, ours, f"a release of {shown}"),
            )
        except Applied as applied:
            return self._adopted(applied)
        # The PATCH was accepted: from here on a failure leaves the release made but unknown.
        try:
            made = self._await_release(app, before, ours)
        except HerokuError as exc:
            raise self._unknown(
                app,
                f"PATCH {path}",
                f"the formation was updated, but reading the release failed: {exc}",
            ) from None
        if made is None:
            raise self._unknown(
                app,
                f"PATCH {path}",
                f"the formation was updated but no release of {shown} appeared within "
                f"{self.deadline_s:g}s",
            )
        return made

    def rollback(self, app: str, release_id: str | int) -> Release:
        """Make a new release that copies `release_id`'s artifact and config."""
        target = self.release(app, release_id)
        expected = f"Rollback to v{target.version}"
        path = f"/apps/{segment(app)}/releases"
        before = self._newest_version(app)

        def ours(release: Release) -> bool:
            return release.description == expected

        try:
            response = self._request(
                "POST",
                path,
                body={"release": target.id},
                reconcile=self._find_release(app, before, ours, f"a release {expected!r}"),
            )
        except Applied as applied:
            return self._adopted(applied)
        try:
            return Release.from_api(self._json(response, f"POST {path}"))
        except HerokuError as exc:  # it answered 2xx: the rollback release was made
            raise self._unknown(app, f"POST {path}", f"made, but {exc}") from None

    def _unknown(self, app: str, what: str, detail: str) -> HerokuOutcomeUnknown:
        return HerokuOutcomeUnknown(
            self._clean(
                f"heroku API ({what}): {detail}; check `heroku releases -a {app}` before "
                "trying again"
            )
        )

    def _adopted(self, applied: Applied) -> Release:
        if not isinstance(applied.value, Release):
            raise applied
        self.counters.reconciled += 1
        return applied.value

    def _find_release(
        self, app: str, before: int, ours: Callable[[Release], bool], effect: str
    ) -> Reconcile:
        """How to tell whether a release request whose answer was lost made its release."""
        path = f"/apps/{segment(app)}/releases"

        def find() -> Release | None:
            page = self._probe(path, range_=f"version ..; max={_RECENT}, order=desc")
            if not isinstance(page, list):
                raise self._error(f"heroku API (GET {path}): the answer is not a JSON list")
            return _made_since([Release.from_api(r) for r in page], before, ours)

        return Reconcile(find, effect, f"`heroku releases -a {app}`")

    def _await_release(
        self, app: str, before: int, ours: Callable[[Release], bool]
    ) -> Release | None:
        """The release an accepted update made; polled briefly, as it may lag the answer."""
        deadline = self._clock() + self.deadline_s
        for _ in range(max(1, int(self.deadline_s / max(self.poll_s, 0.01))) + 1):
            recent = self.releases(app, limit=_RECENT)
            made = _made_since(recent, before, ours)
            if made is not None or self._clock() >= deadline:
                return made
            self._pause_until(self.poll_s, deadline)
        return None

    # -- following --------------------------------------------------------------------

    def follow_release(
        self,
        app: str,
        release: Release | str | int,
        *,
        deadline_s: float,
        on_output: Callable[[str], None],
    ) -> Release:
        """Stream the release phase output to `on_output` and wait until the release has
        succeeded or failed. Returns the release as last read: still `pending` when the
        deadline passed first (the outcome is then unknown, not a success)."""
        deadline = self._clock() + deadline_s
        current = release if isinstance(release, Release) else self.release(app, release)
        offset = 0
        stream_done = False
        reconnects = 0

        def deliver(line: str) -> None:
            on_output(line)

        for _ in range(int(deadline_s / max(self.poll_s, 0.01)) + _STREAM_RECONNECTS + 2):
            url = current.output_stream_url
            # A release that ended before its output was read whole (followed late, or the
            # stream broke near the end) still has its output read to the end, once more.
            unread = bool(url) and not stream_done and reconnects <= _STREAM_RECONNECTS
            if (current.finished and not unread) or self._clock() >= deadline:
                return current
            if url and unread:
                try:
                    result = self._stream_lines(
                        url,
                        deadline=deadline,
                        on_line=deliver,
                        label="release output",
                        start_byte=offset,
                    )
                except HerokuError as exc:
                    if exc.status is None or exc.status < 404:
                        raise
                    if current.finished:
                        return current  # the output of a finished release is gone
                    # Not there yet (404) or failing: poll the release meanwhile.
                    reconnects += 1
                    self._pause_until(self.poll_s, deadline)
                else:
                    offset = result.bytes_read
                    if result.ended == "closed":
                        stream_done = True
                    elif result.ended in ("dropped", "idle"):
                        reconnects += 1
                        self._pause_until(min(self.poll_s, 0.2), deadline)
            else:
                self._pause_until(self.poll_s, deadline)
            left = deadline - self._clock()
            if left <= 0:
                return current
            if not current.finished:
                current = self.release(app, current.id, deadline_s=min(self.deadline_s, left))
        return current

    # -- config vars ------------------------------------------------------------------

    def config_vars(self, app: str) -> dict[str, str]:
        """The app's config vars now. Values are secrets: never log or record them."""
        return self._config(self._get(f"/apps/{segment(app)}/config-vars"))

    def release_config_vars(self, app: str, release: str | int) -> dict[str, str]:
        """The config vars as they were in one release (by id or version)."""
        path = f"/apps/{segment(app)}/releases/{segment(release)}/config-vars"
        return self._config(self._get(path))

    def config_var_name_diff(
        self, app: str, live: Release | str | int, target: Release | str | int
    ) -> ConfigVarDiff:
        """Which names the target release adds, removes or changes against the live one."""
        old = self.release_config_vars(app, live.id if isinstance(live, Release) else live)
        new = self.release_config_vars(app, target.id if isinstance(target, Release) else target)
        return ConfigVarDiff(
            added=tuple(sorted(set(new) - set(old))),
            removed=tuple(sorted(set(old) - set(new))),
            changed=tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k])),
        )

    def _config(self, raw: object) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise self._error("heroku API: malformed config vars: not a JSON object")
        # The schema allows null values; the API uses null only to mean "not set".
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def _made_since(
    releases: list[Release], before: int, ours: Callable[[Release], bool]
) -> Release | None:
    """The first release above version `before` that `ours` recognises."""
    found = [r for r in releases if r.version > before and ours(r)]
    return min(found, key=lambda r: r.version) if found else None
