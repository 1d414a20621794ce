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
- A mutation whose answer may have been lost (a dropped connection, a timeout, a 5xx) is
  not blindly sent again: before every retry a `reconcile` check asks the API whether the
  earlier attempt took effect, and if so returns what it made (see releases.py, dynos.py).
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
from typing import Any
from urllib.parse import quote

import httpx

from gonogo.closing import OwnsHttpClient
from gonogo.heroku.models import HerokuError, HerokuUnavailable, StreamResult
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

# Called before each retry of a mutation: None = the earlier attempt did not take effect
# (send again); a Response = the check itself failed and that answer stands for the attempt
# (the retry policy decides); raising `Applied` = it did take effect, here is the result.
Reconcile = Callable[[], httpx.Response | None]


class Applied(Exception):  # a signal for the caller, not an error to report
    """Raised by a reconcile check: an earlier attempt of the mutation took effect."""

    def __init__(self, value: object) -> None:
        super().__init__("applied")
        self.value = value


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
    reconciled: int = 0  # mutations found already applied instead of being sent again


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

    def _clean(self, text: str) -> str:
        """One line, bounded, the key blanked (a server or a proxy may echo a request)."""
        text = " ".join(text.replace(self._key, "<redacted>").split())
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"

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

        Raises `Applied` (from `reconcile`) when a retried mutation turns out to have
        taken effect already.
        """
        what = f"{method} {path}"
        budget = self.deadline_s if deadline_s is None else deadline_s
        deadline = self._clock() + budget
        made = 0

        def once() -> httpx.Response:
            nonlocal made
            made += 1
            if made > 1 and reconcile is not None:
                checked = reconcile()
                if checked is not None:
                    return checked
            return self._send_once(
                method, path, body=body, accept=accept, range_=range_, deadline=deadline
            )

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

    def _probe(self, path: str, *, range_: str | None = None) -> tuple[httpx.Response | None, Any]:
        """One GET for a reconcile check, outside the retry policy (it runs inside it).

        Returns (the answer, None) when the answer is retryable (429, 5xx): the policy
        decides what to do with it; (None, JSON) otherwise. Other 4xx raise HerokuError.
        """
        what = f"GET {path}"
        deadline = self._clock() + self.timeout_s
        response = self._send_once("GET", path, range_=range_, deadline=deadline)
        if response.status_code == 429 or response.status_code >= 500:
            return response, None
        if response.status_code >= 400:
            raise self._api_error(response, what)
        return None, self._json(response, what)

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
