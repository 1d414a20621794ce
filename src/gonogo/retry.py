"""The one retry policy for remote calls (DESIGN.md, "Architecture"; playbook §9).

`call_with_retry` repeats an HTTP request that failed in a way that may pass on its own:
a connection error or timeout, a 5xx, or a rate limit (429, or GitHub's 403 with
`X-RateLimit-Remaining: 0`). Everything else, a 404 or a 401 for example, is returned to
the caller at once: asking again would get the same answer.

The policy is bounded twice: at most `attempts` requests, and never past `deadline_s`
seconds after the first one started. Between attempts it waits an exponential backoff with
full jitter (a random fraction of `base_delay * 2**n`, capped at `max_delay`), or exactly as
long as the server asked (`Retry-After`, or the rate-limit reset time). When the wait the
server asks for would end past the deadline it gives up at once instead of sleeping
uselessly. Giving up raises `RemoteError`, whose one-line message names the host and the
last status or error.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RemoteError", "call_with_retry", "is_rate_limited", "requested_wait"]


class RemoteError(Exception):
    """A remote service could not give an answer. The message is one line and safe to show."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


def _header(response: httpx.Response, *names: str) -> str | None:
    for name in names:
        value: str | None = response.headers.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def is_rate_limited(response: httpx.Response) -> bool:
    """429, or a 403 whose rate-limit headers say the quota is spent (GitHub's primary limit)."""
    if response.status_code == 429:
        return True
    if response.status_code == 403:
        remaining = _header(response, "X-RateLimit-Remaining", "RateLimit-Remaining")
        return remaining == "0"
    return False


def _retryable(response: httpx.Response) -> bool:
    return response.status_code >= 500 or is_rate_limited(response)


def requested_wait(response: httpx.Response, *, wall: Callable[[], float]) -> float | None:
    """Seconds the server asks the client to wait before asking again, if it says.

    `Retry-After` wins (delta seconds or an HTTP-date). Otherwise, when the remaining quota
    is 0, the reset time: `X-RateLimit-Reset` is an epoch time (GitHub); the IETF draft's
    `RateLimit-Reset` is delta seconds (a value that looks like an epoch is read as one).
    """
    retry_after = _header(response, "Retry-After")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(retry_after)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - wall())
    remaining = _header(response, "X-RateLimit-Remaining", "RateLimit-Remaining")
    if remaining == "0":
        for name in ("X-RateLimit-Reset", "RateLimit-Reset"):
            raw = _header(response, name)
            if raw is None:
                continue
            try:
                value = float(raw)
            except ValueError:
                continue
            if not math.isfinite(value):
                continue
            if name == "X-RateLimit-Reset" or value > 1_000_000_000:
                return max(0.0, value - wall())
            return max(0.0, value)
    return None


def _host(response: httpx.Response | None, exc: Exception | None, fallback: str) -> str:
    try:
        if response is not None:
            return response.request.url.host or fallback
        if isinstance(exc, httpx.RequestError):
            return exc.request.url.host or fallback
    except RuntimeError:  # httpx raises this when no request is attached
        pass
    return fallback


def _describe(exc: httpx.TransportError) -> str:
    detail = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {detail[0]}" if detail and detail[0] else name


def call_with_retry(
    fn: Callable[[], httpx.Response],
    *,
    deadline_s: float,
    attempts: int = 5,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    wall: Callable[[], float] = time.time,
    host: str = "remote service",
) -> httpx.Response:
    """Call `fn` until it gives a final answer; see the module docstring for the policy.

    Returns the first response that is not retryable (2xx, 3xx, or a 4xx other than a rate
    limit). Raises RemoteError when attempts or time run out, or when the server asks for a
    wait that would end past the deadline. `host` names the service when no request is known.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    started = clock()
    deadline = started + max(0.0, deadline_s)
    last = "no attempt made"
    last_status: int | None = None
    where = host
    made = 0
    for attempt in range(1, attempts + 1):
        made = attempt
        response: httpx.Response | None = None
        try:
            response = fn()
        except httpx.TransportError as exc:
            where = _host(None, exc, where)
            last, last_status = _describe(exc), None
            asked: float | None = None
        else:
            where = _host(response, None, where)
            if not _retryable(response):
                return response
            last_status = response.status_code
            limited = is_rate_limited(response)
            last = f"HTTP {response.status_code}" + (" (rate limited)" if limited else "")
            asked = requested_wait(response, wall=wall)
        if attempt == attempts:
            break
        left = deadline - clock()
        if asked is not None:
            if asked > left:
                raise RemoteError(
                    f"{where}: {last}; the server asks to wait {asked:.0f}s, which is past "
                    f"the {deadline_s:g}s deadline",
                    status=last_status,
                )
            wait = asked
        else:
            wait = rng() * min(max_delay, base_delay * (2 ** (attempt - 1)))
        if left <= 0 or wait >= left:
            break
        sleep(wait)
        if clock() >= deadline:
            break
    spent = clock() - started
    raise RemoteError(
        f"{where}: gave up after {made} attempt(s) in {spent:.1f}s; last: {last}",
        status=last_status,
    )
