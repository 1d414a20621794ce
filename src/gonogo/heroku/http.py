"""Plumbing shared by every Heroku Platform API call.

- Every API request carries `Authorization: Bearer <key>` and
  `Accept: application/vnd.heroku+json; version=3` (or a variant such as
  `version=3.docker-releases`), and goes through `gonogo.retry.call_with_retry`: 429 (its
  Retry-After honoured), 5xx and connection errors are retried with jittered backoff within
  `deadline_s`; any other 4xx is raised at once as `HerokuError` with Heroku's error id and
  message: `heroku API 404 not_found: Couldn't find that app. (GET /apps/nope)`.
- `RateLimit-Remaining` is read from every answer; below `rate_limit_floor` each further
  request first waits `refill_s` (Heroku refills about one token per 0.8 s), so a long
  deploy slows down before the account's pool runs dry instead of hitting a 429 storm.
- A mutation that is not idempotent (a container release, a rollback, a one-off dyno) is
  sent again only when the API certainly did not act on it: the connection was never made
  (refused, connect timeout, no free connection), or the API answered 429 or 503 (refused
  before processing). After any other failure (a read timeout, a connection dropped after
  the request went out, another 5xx) the request may still be running on Heroku's side, so
  it is never sent again: a bounded `Reconcile` look (`reconcile_checks` looks within
  `reconcile_s`) adopts what it made if that appears, and otherwise the call fails with
  `HerokuOutcomeUnknown`, saying what to check (see releases.py, dynos.py).
- List endpoints are read with the `Range` header, following `Next-Range` on 206 answers,
  for a bounded number of pages.
- Streams (release output, log sessions) are read within a deadline, never with the API
  key (their URLs are capabilities of their own), and never named in messages.

The API key never appears in a message: every message is passed through `_clean`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from gonogo.closing import OwnsHttpClient
from gonogo.heroku.models import (
    HerokuError,
    HerokuOutcomeUnknown,
    HerokuUnavailable,
    StreamResult,
)
from gonogo.retry import RemoteError, call_with_retry

__all__ = [
    "API_ACCEPT",
    "DEFAULT_BASE_URL",
    "DOCKER_RELEASES_ACCEPT",
    "Applied",
    "HerokuHttp",
    "Reconcile",
]

DEFAULT_BASE_URL = "https://api.heroku.com"
API_ACCEPT = "application/vnd.heroku+json; version=3"
DOCKER_RELEASES_ACCEPT = "application/vnd.heroku+json; version=3.docker-releases"
MAX_PAGE = 1000  # the API's largest page (its default is 200)
_MESSAGE_LIMIT = 300
_LINE_LIMIT = 64 * 1024  # a stream "line" longer than this is cut: a bounded buffer

# Transport failures raised before any byte of the request reached the server: the only
# ones after which a mutation may be sent again.
_NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)
# Answers meaning the API turned the request away before acting on it (rate limited, or
# the service not taking requests). A 500, 502 or 504 may come after the work was done.
_NOT_PROCESSED = frozenset({429, 503})
_CAUSE_LIMIT = 60
_UNKNOWN_LIMIT = 500  # what to check must survive: a longer cut than other messages


@dataclass(frozen=True)
class Reconcile:
    """How to tell whether a mutation whose answer was lost took effect.

    `find` looks once: what the mutation made, or None when that is not (yet) there; it may
    raise HerokuError or an httpx error when the look itself fails. `effect` names what is
    looked for ("a release of web (0123456789ab)"), `check` where a person looks
    ("`heroku releases -a acme`"); both go into the message when nothing is found.
    """

    find: Callable[[], object | None]
    effect: str
    check: str


class Applied(Exception):  # a signal for the caller, not an error to report
    """Raised by `_request`: the mutation took effect although its answer was lost."""

    def __init__(self, value: object) -> None:
        super().__init__("applied")
        self.value = value


class _Unanswered(Exception):
    """A mutation was sent and may have been acted on, but no usable answer came back."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _cause(exc: httpx.TransportError) -> str:
    detail = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {detail[0]}" if detail and detail[0] else type(exc).__name__
    return text if len(text) <= _CAUSE_LIMIT else text[: _CAUSE_LIMIT - 1] + "…"


def _loopback(url: httpx.URL) -> bool:
    return url.host in ("127.0.0.1", "localhost", "::1")


def segment(value: str | int) -> str:
    """One path segment, quoted: an app or dyno name can never add a path of its own."""
    return quote(str(value), safe="")


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    paced: int = 0  # requests delayed because RateLimit-Remaining was low
    reconciled: int = 0  # mutations whose lost answer was replaced by finding their effect


class HerokuHttp(OwnsHttpClient):
    """Transport, errors, retries, pacing, paging and streams; the operations are mixins."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        deadline_s: float = 30.0,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        rate_limit_floor: int = 20,
        refill_s: float = 0.8,
        stream_idle_s: float = 30.0,
        poll_s: float = 1.0,
        max_pages: int = 50,
        reconcile_s: float | None = None,
        reconcile_checks: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key = api_key.strip()  # a key pasted with its trailing newline still works
        if not key or not all(33 <= ord(c) < 127 for c in key):
            # httpx would refuse it in a header, and its error would quote the header.
            raise HerokuError(
                "the Heroku API key is empty or contains spaces or control characters"
            )
        self._key = key
        try:
            self._base = httpx.URL(base_url.rstrip("/") + "/")
        except (httpx.InvalidURL, TypeError) as exc:
            raise HerokuError(f"Heroku API URL {base_url!r} is not a URL") from exc
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise HerokuError(f"Heroku API URL {base_url!r} is not an http(s) URL")
        if self._base.scheme == "http" and not _loopback(self._base):
            raise HerokuError(
                f"Heroku API URL {base_url!r} is plain http; the key goes only over https"
            )
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.rate_limit_floor = rate_limit_floor
        self.refill_s = refill_s
        self.stream_idle_s = stream_idle_s
        self.poll_s = poll_s
        self.max_pages = max_pages
        # A request cut off by our timeout may still be running on Heroku's side; its effect
        # is looked for about as long again as it was given, twice over.
        self.reconcile_s = 2 * timeout_s if reconcile_s is None else reconcile_s
        self.reconcile_checks = max(1, reconcile_checks)
        self._sleep = sleep
        self._clock = clock
        self.rate_limit_remaining: int | None = None
        self.counters = Counters()
        self._own_client = client is None
        # A proxy from the environment is honoured for the real API, never for a loopback one.
        self._client = client or httpx.Client(
            follow_redirects=False, trust_env=not _loopback(self._base)
        )

    # -- lifecycle --------------------------------------------------------------------

    # -- messages ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._base.host

    def _clean(self, text: str, limit: int = _MESSAGE_LIMIT) -> str:
        """One line, bounded, the key blanked (a server or a proxy may echo a request)."""
        text = " ".join(text.replace(self._key, "<redacted>").split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def _error(
        self, text: str, *, status: int | None = None, error_id: str | None = None
    ) -> HerokuError:
        return HerokuError(self._clean(text), status=status, error_id=error_id)

    def _api_error(self, response: httpx.Response, what: str) -> HerokuError:
        error_id: str | None = None
        message = response.reason_phrase or "error"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            if isinstance(body.get("id"), str):
                error_id = body["id"]
            if isinstance(body.get("message"), str):
                message = body["message"]
        label = f"{response.status_code} {error_id}" if error_id else str(response.status_code)
        return self._error(
            f"heroku API {label}: {message} ({what})",
            status=response.status_code,
            error_id=error_id,
        )

    # -- requests ---------------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        return self._base.join(path.lstrip("/"))

    def _headers(self, accept: str, range_: str | None) -> dict[str, str]:
        headers = {
            "Accept": accept,
            "Authorization": f"Bearer {self._key}",
            "User-Agent": "gonogo",
        }
        if range_ is not None:
            headers["Range"] = range_
        return headers

    def _note_rate_limit(self, response: httpx.Response) -> None:
        if response.status_code == 429 and response.headers.get("Retry-After"):
            # The retry policy waits exactly as asked; pacing on top would wait twice.
            self.rate_limit_remaining = None
            return
        raw = response.headers.get("RateLimit-Remaining")
        try:
            self.rate_limit_remaining = int(raw) if raw is not None else None
        except ValueError:
            self.rate_limit_remaining = None

    def _pace(self, deadline: float) -> None:
        """Below the floor, wait for the pool to refill a little before asking again."""
        left = self.rate_limit_remaining
        if left is None or left >= self.rate_limit_floor:
            return
        pause = min(self.refill_s, deadline - self._clock())
        if pause > 0:
            self.counters.paced += 1
            self._sleep(pause)

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        accept: str = API_ACCEPT,
        range_: str | None = None,
        deadline: float,
    ) -> httpx.Response:
        """One request, paced, with a timeout that never runs past `deadline`."""
        self._pace(deadline)
        self.counters.requests += 1
        left = max(0.05, min(self.timeout_s, deadline - self._clock()))
        response = self._client.request(
            method,
            self._url(path),
            json=body,
            headers=self._headers(accept, range_),
            timeout=left,
        )
        self._note_rate_limit(response)
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        accept: str = API_ACCEPT,
        range_: str | None = None,
        reconcile: Reconcile | None = None,
        deadline_s: float | None = None,
    ) -> httpx.Response:
        """`method path` under the retry policy; HerokuError for any answer >= 400.

        With `reconcile` (a mutation that is not idempotent), only failures that prove the
        request was not acted on are retried. After any other failure it is never sent
        again: `Applied` is raised when its effect is found, `HerokuOutcomeUnknown` when not.
        """
        what = f"{method} {path}"
        budget = self.deadline_s if deadline_s is None else deadline_s
        deadline = self._clock() + budget
        made = 0

        def once() -> httpx.Response:
            nonlocal made
            made += 1
            try:
                response = self._send_once(
                    method, path, body=body, accept=accept, range_=range_, deadline=deadline
                )
            except httpx.TransportError as exc:
                if reconcile is not None and not isinstance(exc, _NOT_SENT):
                    raise _Unanswered(f"no answer ({_cause(exc)})") from None
                raise
            status = response.status_code
            if reconcile is not None and status >= 500 and status not in _NOT_PROCESSED:
                raise _Unanswered(f"answer {status}, which does not say whether it was done")
            return response

        try:
            response = call_with_retry(
                once,
                deadline_s=budget,
                attempts=self.attempts,
                base_delay=self.base_delay,
                max_delay=self.max_delay,
                sleep=self._sleep,
                clock=self._clock,
                host=self.host,
            )
        except _Unanswered as lost:
            assert reconcile is not None
            self._reconcile(what, reconcile, lost.cause)
        except RemoteError as exc:
            raise HerokuUnavailable(
                self._clean(f"heroku API unavailable ({what}): {exc.message}"), status=exc.status
            ) from None
        except httpx.HTTPError as exc:  # not a transport error: a bad URL or header
            raise self._error(f"heroku API ({what}): {type(exc).__name__}: {exc}") from None
        finally:
            self.counters.retries += max(0, made - 1)
        if response.status_code >= 400:
            raise self._api_error(response, what)
        return response

    def _reconcile(self, what: str, reconcile: Reconcile, cause: str) -> NoReturn:
        """Look for the effect of a mutation whose answer was lost, a bounded number of
        times within `reconcile_s`: `Applied` when found, else `HerokuOutcomeUnknown`.

        Never sends the mutation again: an attempt cut off by our timeout may still be
        running on Heroku's side, and a second one would then be applied as well.
        """
        window = self.reconcile_s
        until = self._clock() + window
        pause = window / max(1, self.reconcile_checks - 1)
        looked = 0
        trouble = ""
        for _ in range(self.reconcile_checks):
            looked += 1
            try:
                found = reconcile.find()
            except (HerokuError, httpx.HTTPError) as exc:  # this look failed; the next may not
                found = None
                trouble = f"; the last look failed: {str(exc)[:_CAUSE_LIMIT]}"
            if found is not None:
                raise Applied(found)
            if looked >= self.reconcile_checks or self._clock() >= until:
                break
            self._pause_until(pause, until)
        raise HerokuOutcomeUnknown(
            self._clean(
                # The trouble goes last: a message cut to length keeps what to check.
                f"heroku API ({what}): {cause}; {reconcile.effect} did not appear within "
                f"{window:g}s ({looked} looks), so whether it was done is unknown; it was not "
                f"sent again. Check {reconcile.check}{trouble}",
                _UNKNOWN_LIMIT,
            )
        )

    def _probe(self, path: str, *, range_: str | None = None) -> Any:
        """One GET for a reconcile look, outside the retry policy (the look is repeated by
        `_reconcile`). HerokuError for any answer >= 400; httpx errors are not caught."""
        what = f"GET {path}"
        deadline = self._clock() + self.timeout_s
        response = self._send_once("GET", path, range_=range_, deadline=deadline)
        if response.status_code >= 400:
            raise self._api_error(response, what)
        return self._json(response, what)

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self._error(f"heroku API ({what}): the answer is not JSON") from None

    def _get(self, path: str) -> Any:
        return self._json(self._request("GET", path), f"GET {path}")

    def _list(
        self,
        path: str,
        *,
        attribute: str = "id",
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Any]:
        """Every item of a list endpoint, page by page (`Range`, 206, `Next-Range`)."""
        size = MAX_PAGE if limit is None else max(1, min(limit, MAX_PAGE))
        range_ = f"{attribute} ..; max={size}" + (", order=desc" if descending else "")
        items: list[Any] = []
        for _ in range(self.max_pages):
            response = self._request("GET", path, range_=range_)
            page = self._json(response, f"GET {path}")
            if not isinstance(page, list):
                raise self._error(f"heroku API (GET {path}): the answer is not a JSON list")
            items.extend(page)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            next_range = response.headers.get("Next-Range")
            if response.status_code != 206 or not next_range:
                return items
            range_ = next_range
        raise self._error(f"heroku API (GET {path}): more than {self.max_pages} pages; gave up")

    # -- streams ----------------------------------------------------------------------

    def _check_stream_url(self, url: str, label: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise self._error(
                f"heroku {label}: the API gave a stream URL that is not a URL"
            ) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise self._error(f"heroku {label}: the stream URL is not http(s)")
        if parsed.scheme == "http" and not _loopback(parsed):
            raise self._error(f"heroku {label}: the stream URL on {parsed.host} is plain http")
        return parsed

    def _stream_lines(
        self,
        url: str,
        *,
        deadline: float,
        on_line: Callable[[str], bool | None],
        label: str,
        start_byte: int = 0,
    ) -> StreamResult:
        """Read a text stream line by line until it ends, `on_line` returns True, or time
        runs out. Never sends the API key. A read waits at most `stream_idle_s` (and never
        past the deadline by more than that); an idle or broken stream is reported, not
        raised, so callers can resume (`start_byte`, from `bytes_read`) or reconnect.
        """
        target = self._check_stream_url(url, label)
        remaining = deadline - self._clock()
        if remaining <= 0:
            return StreamResult(0, "deadline", start_byte)
        timeout = httpx.Timeout(
            self.timeout_s,
            connect=min(self.timeout_s, remaining),
            read=max(0.05, min(self.stream_idle_s, remaining)),
        )
        # identity: byte offsets for a resumed stream must be those of the text itself.
        headers = {"Accept": "text/plain", "Accept-Encoding": "identity", "User-Agent": "gonogo"}
        if start_byte:
            headers["Range"] = f"bytes={start_byte}-"
        lines = 0
        delivered = start_byte
        try:
            with self._client.stream("GET", target, headers=headers, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise self._error(
                        f"heroku {label}: the stream on {target.host} answered "
                        f"HTTP {response.status_code}",
                        status=response.status_code,
                    )
                # A server that ignores Range starts again from byte 0: skip what we have.
                offset = start_byte if response.status_code == 206 else 0
                buffer = b""
                for chunk in response.iter_bytes():
                    if offset < start_byte:
                        take = min(len(chunk), start_byte - offset)
                        offset += take
                        chunk = chunk[take:]
                    buffer += chunk
                    while b"\n" in buffer or len(buffer) > _LINE_LIMIT:
                        raw, sep, buffer = _split_line(buffer)
                        offset += len(raw) + len(sep)
                        delivered = offset
                        lines += 1
                        if on_line(raw.decode("utf-8", "replace").rstrip("\r")) is True:
                            return StreamResult(lines, "stopped", delivered)
                    if self._clock() >= deadline:
                        return StreamResult(lines, "deadline", delivered)
                if buffer:
                    lines += 1
                    delivered = offset + len(buffer)
                    if on_line(buffer.decode("utf-8", "replace").rstrip("\r")) is True:
                        return StreamResult(lines, "stopped", delivered)
                return StreamResult(lines, "closed", delivered)
        except httpx.TimeoutException:
            if self._clock() >= deadline:
                return StreamResult(lines, "deadline", delivered)
            return StreamResult(lines, "idle", delivered)
        except httpx.TransportError:
            return StreamResult(lines, "dropped", delivered)

    def _pause_until(self, seconds: float, deadline: float) -> None:
        wait = min(seconds, deadline - self._clock())
        if wait > 0:
            self._sleep(wait)


def _split_line(buffer: bytes) -> tuple[bytes, bytes, bytes]:
    index = buffer.find(b"\n")
    if index < 0 or index > _LINE_LIMIT:
        return buffer[:_LINE_LIMIT], b"", buffer[_LINE_LIMIT:]
    return buffer[:index], b"\n", buffer[index + 1 :]
