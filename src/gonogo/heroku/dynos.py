"""One-off dynos: start a command detached, follow its output, learn its real exit status.

`POST /apps/{app}/dynos` with `{"command": ..., "attach": false, "type": "run"}` starts a
detached one-off dyno (`run.1234`). Its output and its end are only in the app's log: the
dyno manager writes `heroku[run.1234]: Process exited with status N`. So the exit status
is read from a log session limited to that dyno (`tail: true`, with history so lines
written before the session connected are not missed). No such line by the deadline means
the status is unknown (None): a caller must treat that as a failure, never as success.

Starting a dyno is not idempotent: a POST whose answer was lost may have started it, or may
still be starting it. It is sent again only when the API certainly did not act on it (see
http.py); otherwise the client lists the app's dynos (a bounded number of times) and adopts
a `run` dyno with the same command that was not there before, or fails with
`HerokuOutcomeUnknown` naming `heroku ps -a APP`: never a second copy of a migration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gonogo.heroku.http import Applied, Reconcile, segment
from gonogo.heroku.logs import MAX_LOG_LINES, LogOps
from gonogo.heroku.models import Dyno, HerokuError, HerokuOutcomeUnknown

__all__ = ["DynoOps"]

_MAX_SESSIONS = 20  # reconnects while waiting for an exit line, on top of the deadline
_SEEN_LIMIT = 100_000  # lines remembered to drop the replayed history after a reconnect


class DynoOps(LogOps):
    def dynos(self, app: str) -> list[Dyno]:
        return [Dyno.from_api(d) for d in self._list(f"/apps/{segment(app)}/dynos")]

    def dyno(self, app: str, name: str) -> Dyno | None:
        """The dyno, or None when it no longer exists (one-off dynos go when they end)."""
        try:
            return Dyno.from_api(self._get(f"/apps/{segment(app)}/dynos/{segment(name)}"))
        except HerokuError as exc:
            if exc.status == 404:
                return None
            raise

    def run_detached(
        self,
        app: str,
        command: str,
        *,
        size: str | None = None,
        env: Mapping[str, str] | None = None,
        time_to_live: int | None = None,
    ) -> Dyno:
        """Start `command` in a detached one-off dyno; returns it (state `starting`)."""
        if not command.strip():
            raise ValueError("command is empty")
        path = f"/apps/{segment(app)}/dynos"
        existing = {d.name for d in self.dynos(app)}
        body: dict[str, Any] = {"command": command, "attach": False, "type": "run"}
        if size is not None:
            body["size"] = size
        if env:
            body["env"] = dict(env)
        if time_to_live is not None:
            body["time_to_live"] = time_to_live
        try:
            response = self._request(
                "POST", path, body=body, reconcile=self._find_started(app, command, existing)
            )
        except Applied as applied:
            if not isinstance(applied.value, Dyno):
                raise
            self.counters.reconciled += 1
            return applied.value
        try:
            return Dyno.from_api(self._json(response, f"POST {path}"))
        except HerokuError as exc:  # it answered 2xx: the dyno was started
            raise HerokuOutcomeUnknown(
                self._clean(
                    f"heroku API (POST {path}): started, but {exc}; check `heroku ps -a {app}`"
                )
            ) from None

    def _find_started(self, app: str, command: str, existing: set[str]) -> Reconcile:
        """How to tell whether a start request whose answer was lost started the dyno."""

        def find() -> Dyno | None:
            page = self._probe(f"/apps/{segment(app)}/dynos", range_="id ..; max=1000")
            for raw in page if isinstance(page, list) else []:
                dyno = Dyno.from_api(raw)
                if dyno.type == "run" and dyno.command == command and dyno.name not in existing:
                    return dyno
            return None

        # A one-off dyno that already ended may be gone from the list: say where else to look.
        where = f"`heroku ps -a {app}` and `heroku logs -a {app}`"
        return Reconcile(find, f"a one-off dyno running {command[:60]!r}", where)

    def dyno_exit_status(
        self,
        app: str,
        dyno_name: str,
        *,
        deadline_s: float,
        on_line: Callable[[str], None],
    ) -> int | None:
        """Stream the dyno's log lines to `on_line` until it exits; its exit status, or
        None when no `Process exited with status N` line came by the deadline."""
        deadline = self._clock() + deadline_s
        exited = re.compile(
            rf"\bheroku\[{re.escape(dyno_name)}\]: Process exited with status (\d+)\b"
        )
        seen: set[str] = set()
        status: int | None = None

        def handle(line: str) -> bool | None:
            nonlocal status
            if line in seen:  # history replayed by a new session after a reconnect
                return None
            if len(seen) < _SEEN_LIMIT:
                seen.add(line)
            on_line(line)
            match = exited.search(line)
            if match is None:
                return None
            status = int(match.group(1))
            return True

        gone = 0
        for _ in range(_MAX_SESSIONS):
            if self._clock() >= deadline:
                break
            url = self.log_session(app, dyno=dyno_name, lines=MAX_LOG_LINES, tail=True)
            result = self._stream_lines(url, deadline=deadline, on_line=handle, label="log stream")
            if status is not None:
                return status
            if result.ended == "deadline":
                break
            # The stream ended without an exit line. A dyno that is gone had its last chance
            # in the history of the next session; after that the status is unknown.
            if self.dyno(app, dyno_name) is None:
                gone += 1
                if gone > 1:
                    break
            self._pause_until(self.poll_s, deadline)
        return None
