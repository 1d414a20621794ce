"""Log sessions: `POST /apps/{app}/log-sessions` gives a `logplex_url` to read the app's log.

A session created with `tail: true` streams history (up to `lines`, at most 1500) and then
new lines as they come, and does not end on its own; one with `tail: false` sends the
history and closes. A session can be limited to one dyno (`dyno_name`, e.g. `run.1234`) or
one source (`app`, `heroku`). Lines look like
`2026-11-26T10:00:00.000000+00:00 app[run.1234]: some output`.

Reading is always bounded in time; see `HerokuHttp._stream_lines`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gonogo.heroku.http import HerokuHttp, segment
from gonogo.heroku.models import HerokuUnavailable, StreamResult

__all__ = ["MAX_LOG_LINES", "LogOps"]

MAX_LOG_LINES = 1500  # the most history a log session gives
_SESSION_TRIES = 3


class LogOps(HerokuHttp):
    def log_session(
        self,
        app: str,
        *,
        dyno: str | None = None,
        lines: int | None = None,
        tail: bool = False,
        source: str | None = None,
    ) -> str:
        """A new log session's `logplex_url`. Treat it as a secret: it needs no key."""
        if lines is not None and not 1 <= lines <= MAX_LOG_LINES:
            raise ValueError(f"lines must be between 1 and {MAX_LOG_LINES}")
        body: dict[str, Any] = {"tail": tail}
        if dyno is not None:
            body["dyno_name"] = dyno
        if lines is not None:
            body["lines"] = lines
        if source is not None:
            body["source"] = source
        path = f"/apps/{segment(app)}/log-sessions"
        # Creating a session changes nothing: a retried POST at worst leaves an unused one.
        obj = self._json(self._request("POST", path, body=body), f"POST {path}")
        url = obj.get("logplex_url") if isinstance(obj, dict) else None
        if not isinstance(url, str) or not url:
            raise self._error(f"heroku API (POST {path}): the answer has no logplex_url")
        return url

    def stream_log(
        self,
        url: str,
        *,
        deadline_s: float,
        on_line: Callable[[str], bool | None],
    ) -> StreamResult:
        """Read a log session's stream for at most `deadline_s` seconds (give or take
        `stream_idle_s`); `on_line` gets each line and may return True to stop."""
        return self._stream_lines(
            url, deadline=self._clock() + deadline_s, on_line=on_line, label="log stream"
        )

    def recent_logs(self, app: str, lines: int = MAX_LOG_LINES) -> list[str]:
        """The app's last `lines` log lines (a session without tail), oldest first."""
        deadline = self._clock() + self.deadline_s
        for _ in range(_SESSION_TRIES):
            url = self.log_session(app, lines=lines, tail=False)
            got: list[str] = []
            result = self._stream_lines(
                url, deadline=deadline, on_line=got.append, label="log stream"
            )
            if result.ended == "closed":
                return got
            if result.ended == "deadline":
                break
            # dropped or idle: the history is short, so a fresh session is the cheap fix.
        raise HerokuUnavailable(
            self._clean(f"heroku log stream for {app}: did not finish within {self.deadline_s:g}s")
        )
