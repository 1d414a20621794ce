"""Post-deploy probes: evaluate responses, poll with backoff until a deadline, keep transcripts.

Three layers, each usable on its own:

- ``evaluate`` is pure: a ``Probe`` (from gonogo.toml) and a ``ProbeResponse`` give the list of
  reasons the probe failed (empty = pass). No HTTP involved, so it is table-testable.
- ``redact_headers`` / ``redact_json`` / ``redact_body`` / ``redact_url`` make what goes into a
  transcript safe to keep as evidence: cookie values, auth headers, CSRF tokens and any JSON
  value under a key that looks like a secret are replaced by ``<redacted>``.
- ``verify_probes`` polls: all probes must pass in the same round; rounds repeat with
  exponential backoff (jittered, capped) until they do, the deadline passes, or the process
  being verified is reported dead by ``alive()``.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from gonogo import __version__
from gonogo.config.schema import Probe, Verify

__all__ = [
    "MAX_ROUNDS",
    "REDACTED",
    "Attempt",
    "ProbeOutcome",
    "ProbeResponse",
    "RequestRecord",
    "ResponseRecord",
    "VerifyResult",
    "evaluate",
    "redact_body",
    "redact_headers",
    "redact_json",
    "redact_url",
    "render",
    "verify_probes",
]

REDACTED = "<redacted>"

MAX_ROUNDS = 10_000
"""Hard cap on rounds per verify, whatever the deadline and backoff say."""

TRANSCRIPT_TAIL = 20
"""Attempts kept after the first round (the most recent ones)."""

BODY_LIMIT = 4096
"""Bytes of (redacted) response body kept per attempt in the transcript."""

READ_LIMIT = 1024 * 1024
"""Bytes of response body read per request; a probe endpoint has no business sending more."""

MIN_REQUEST_S = 0.05
"""After the first round, no request starts with less time than this left before the deadline."""

JITTER = 0.2
"""Backoff delays are multiplied by a uniform factor in [1 - JITTER, 1 + JITTER]."""

_USER_AGENT = f"gonogo/{__version__} (post-deploy probe)"

# --------------------------------------------------------------------------------------------
# Responses and evaluation (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResponse:
    """What a probe got back: enough to evaluate it, with no HTTP library attached."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    elapsed_ms: float = 0.0

    def __post_init__(self) -> None:
        # Stored as a tuple so the dataclass really is immutable (and hashable).
        object.__setattr__(self, "headers", tuple((str(k), str(v)) for k, v in self.headers))

    def header_values(self, name: str) -> list[str]:
        """All values of a header, in order (case-insensitive name)."""
        wanted = name.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        values = self.header_values(name)
        return values[0] if values else None


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def render(template: str, context: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders from context; ``{{`` / ``}}`` are literal braces.

    Raises KeyError naming the placeholder when the context does not know it.
    """

    def sub(m: re.Match[str]) -> str:
        matched = m.group(0)
        if matched == "{{":
            return "{"
        if matched == "}}":
            return "}"
        key = m.group(1)
        if key not in context:
            raise KeyError(key)
        return str(context[key])

    return _PLACEHOLDER.sub(sub, template)


def _uses_secret_var(template: str) -> bool:
    from gonogo.evidence import looks_secret

    return any(
        m.group(1) and m.group(1).startswith("vars.") and looks_secret(m.group(1)[5:])
        for m in _PLACEHOLDER.finditer(template)
    )


def config_var_names(verify: Verify) -> set[str]:
    """The NAMEs of `{vars.NAME}` placeholders in the probes' expected values: the config
    vars verification must read, and the only ones it reads."""
    names: set[str] = set()
    for probe in verify.probes:
        for expected in probe.json_fields.values():
            if isinstance(expected, str):
                for m in _PLACEHOLDER.finditer(expected):
                    if m.group(1) and m.group(1).startswith("vars."):
                        names.add(m.group(1).removeprefix("vars."))
    return names


_MISSING = object()


def _lookup(value: Any, parts: Sequence[str]) -> Any:
    """Follow a dotted path; a key that itself contains dots is matched too. _MISSING if absent."""
    if not parts:
        return value
    if isinstance(value, dict):
        # Longest key first, so {"a.b": 1} answers "a.b" before {"a": {"b": ...}} is tried.
        for k in range(len(parts), 0, -1):
            key = ".".join(parts[:k])
            if key in value:
                found = _lookup(value[key], parts[k:])
                if found is not _MISSING:
                    return found
        return _MISSING
    if isinstance(value, list) and re.fullmatch(r"-?\d+", parts[0]):
        index = int(parts[0])
        if -len(value) <= index < len(value):
            return _lookup(value[index], parts[1:])
    return _MISSING


def _equal(actual: Any, expected: Any) -> bool:
    """JSON equality without Python's True == 1 and 1 == 1.0 being confused with booleans."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(_equal(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_equal(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def _show(value: Any, limit: int = 80) -> str:
    """A value for a one-line reason: strings quoted like Python, the rest as JSON."""
    if isinstance(value, str):
        text = repr(value if len(value) <= limit else value[:limit] + "…")
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
        if len(text) > limit:
            text = text[:limit] + "…"
    return text


def _parse_json(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return False, None


@dataclass(frozen=True)
class _SetCookie:
    name: str
    value: str
    attributes: dict[str, str]


def _parse_set_cookie(header: str) -> _SetCookie | None:
    first, _, rest = header.partition(";")
    name, eq, value = first.partition("=")
    if not eq or not name.strip():
        return None
    attrs: dict[str, str] = {}
    for part in rest.split(";"):
        key, _, val = part.partition("=")
        if key.strip():
            attrs[key.strip().lower()] = val.strip()
    return _SetCookie(name.strip(), value.strip().strip('"'), attrs)


def _cookie_cleared(cookie: _SetCookie) -> str | None:
    """Why a Set-Cookie deletes rather than sets the cookie, or None."""
    max_age = cookie.attributes.get("max-age")
    if max_age is not None:
        try:
            if int(max_age) <= 0:
                return f"Max-Age={max_age}"
        except ValueError:
            pass
        else:
            return None  # Max-Age wins over Expires (RFC 6265 §5.3)
    expires = cookie.attributes.get("expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when <= datetime.now(UTC):
            return f"Expires={expires}"
    return None


_SENSITIVE_KEY = re.compile(r"token|secret|password|passwd|key", re.IGNORECASE)


def _sensitive_path(path: str) -> bool:
    return bool(_SENSITIVE_KEY.search(path.rsplit(".", 1)[-1]))


def evaluate(probe: Probe, response: ProbeResponse, context: Mapping[str, str]) -> list[str]:
    """Why this response fails the probe; an empty list means it passes.

    Checks, in order: status code; each JSON field (dotted path, expected strings templated from
    context with ``{sha}`` / ``{name}``); the required cookie being set by a Set-Cookie header.
    """
    reasons: list[str] = []
    if response.status != probe.status:
        reason = f"status {response.status}, expected {probe.status}"
        location = response.header("location")
        if 300 <= response.status < 400 and location:
            reason += f" (redirect to {redact_url(location)})"
        reasons.append(reason)

    if probe.json_fields:
        parsed, document = _parse_json(response.body)
        if not parsed:
            ctype = response.header("content-type") or "no content-type"
            fields = ", ".join(probe.json_fields)
            reasons.append(
                f"body is not JSON ({ctype}, {len(response.body)} bytes): cannot check {fields}"
            )
        else:
            for path, expected in probe.json_fields.items():
                # The expected value is the config's own words unless it comes from a config
                # var whose name looks secret; then neither side is shown.
                secret_var = isinstance(expected, str) and _uses_secret_var(expected)
                if isinstance(expected, str):
                    try:
                        expected = render(expected, context)
                    except KeyError as exc:
                        reasons.append(
                            f"json {path}: expected value {expected!r} uses {{{exc.args[0]}}}, "
                            "which is not known here"
                        )
                        continue
                actual = _lookup(document, path.split("."))
                if actual is _MISSING:
                    reasons.append(f"json {path} missing")
                elif not _equal(actual, expected):
                    hidden = secret_var or _sensitive_path(path)
                    shown = repr(REDACTED) if hidden else _show(actual)
                    wanted = repr(REDACTED) if secret_var else _show(expected)
                    reasons.append(f"json {path} = {shown}, expected {wanted}")

    if probe.cookie:
        cookies = [c for h in response.header_values("set-cookie") if (c := _parse_set_cookie(h))]
        mine = [c for c in cookies if c.name == probe.cookie]
        if not mine:
            others = sorted({c.name for c in cookies})
            set_ = f"response set {', '.join(others)}" if others else "response set no cookies"
            reasons.append(f"cookie {probe.cookie} not set ({set_})")
        else:
            last = mine[-1]  # the last Set-Cookie for a name wins
            cleared = _cookie_cleared(last)
            if cleared:
                reasons.append(f"cookie {probe.cookie} cleared, not set ({cleared})")
            elif not last.value:
                reasons.append(f"cookie {probe.cookie} set with an empty value")
    return reasons


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------

_SENSITIVE_HEADERS = frozenset(
    {"cookie", "set-cookie", "authorization", "proxy-authorization", "x-csrf-token"}
)
_SENSITIVE_HEADER_WORDS = re.compile(r"token|secret|key|auth", re.IGNORECASE)
_MIN_SCRUB = 8  # secret values shorter than this are not scrubbed from free text


def _sensitive_header(name: str) -> bool:
    return name.lower() in _SENSITIVE_HEADERS or bool(_SENSITIVE_HEADER_WORDS.search(name))


def _redact_cookie_pairs(value: str) -> str:
    """'a=1; b=2' -> 'a=<redacted>; b=<redacted>' (Cookie request header)."""
    parts = []
    for pair in value.split(";"):
        name, eq, _ = pair.strip().partition("=")
        parts.append(f"{name}={REDACTED}" if eq else REDACTED)
    return "; ".join(parts)


def _redact_set_cookie(value: str) -> str:
    """'csrf_token=abc; Path=/; SameSite=lax' -> 'csrf_token=<redacted>; Path=/; SameSite=lax'."""
    first, sep, rest = value.partition(";")
    name, eq, _ = first.partition("=")
    if not eq:
        return REDACTED
    return f"{name.strip()}={REDACTED}{sep}{rest}"


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers safe for a transcript: secret-bearing values become ``<redacted>``.

    Cookie and Set-Cookie keep cookie names (and Set-Cookie its attributes); Authorization,
    Proxy-Authorization, X-CSRF-Token and any header whose name contains token, secret, key or
    auth (case-insensitive) lose their whole value. Location-like headers keep their URL with
    any password and secret-looking query values redacted.
    """
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie":
            out.append((name, _redact_set_cookie(value)))
        elif lower == "cookie":
            out.append((name, _redact_cookie_pairs(value)))
        elif _sensitive_header(name):
            out.append((name, REDACTED))
        elif lower in ("location", "content-location", "refresh"):
            out.append((name, _TEXT_PAIR.sub(_redact_pair, redact_url(value))))
        else:
            out.append((name, value))
    return out


def _redact_json(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and _SENSITIVE_KEY.search(k):
                _collect_scalars(v, secrets)
                out[k] = REDACTED
            else:
                out[k] = _redact_json(v, secrets)
        return out
    if isinstance(value, list):
        return [_redact_json(v, secrets) for v in value]
    return value


def _collect_scalars(value: Any, secrets: set[str]) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _collect_scalars(v, secrets)
    elif isinstance(value, list):
        for v in value:
            _collect_scalars(v, secrets)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        secrets.add(str(value))


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with every value under a key containing token, secret, password or
    key (case-insensitive, at any depth) replaced by ``"<redacted>"``."""
    return _redact_json(value, set())


# key=value, "key": "value", key: value (non-JSON text bodies). Linear time: a key starts only
# where a word starts and is matched possessively, so a large body cannot make the regex crawl.
_TEXT_PAIR = re.compile(
    r"""(?x)
    (?<![\w.-]) ([\w.-]++)            # a whole key
    ( ["']?[ \t]*[:=][ \t]*["']? )     # separator, maybe quoted
    ( [^"'\s&;,<>]++ )                # the value
    """
)
# <input name="csrf_token" value="..."> and <meta name="csrf-token" content="...">
_TAG = re.compile(r"<[a-z][^<>]{0,2000}>", re.IGNORECASE)
_ATTR_NAME = re.compile(r"""\bname\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_ATTR_VALUE = re.compile(r"""(\b(?:value|content)\s*=\s*["'])([^"']*)""", re.IGNORECASE)


def _redact_pair(m: re.Match[str]) -> str:
    if not _SENSITIVE_KEY.search(m.group(1)):
        return m.group(0)
    return m.group(1) + m.group(2) + REDACTED


def _redact_text(text: str, secrets: set[str]) -> str:
    """Redact secret-looking key=value pairs and HTML form/meta values in free text."""

    def pair(m: re.Match[str]) -> str:
        if not _SENSITIVE_KEY.search(m.group(1)):
            return m.group(0)
        secrets.add(m.group(3))
        return m.group(1) + m.group(2) + REDACTED

    def value(m: re.Match[str]) -> str:
        secrets.add(m.group(2))
        return m.group(1) + REDACTED

    def tag(m: re.Match[str]) -> str:
        name = _ATTR_NAME.search(m.group(0))
        if not name or not _SENSITIVE_KEY.search(name.group(1)):
            return m.group(0)
        return _ATTR_VALUE.sub(value, m.group(0))

    return _TEXT_PAIR.sub(pair, _TAG.sub(tag, text))


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SCRUB}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", errors="ignore"), True


def _redact_body_text(body: bytes, secrets: set[str], limit: int) -> tuple[str, bool]:
    """A body as redacted transcript text of at most ``limit`` UTF-8 bytes, and whether it was
    cut. Secret values found on the way are added to ``secrets`` and scrubbed everywhere."""
    parsed, document = _parse_json(body)
    if parsed:
        text = body.decode("utf-8", errors="replace")
        found: set[str] = set()
        redacted = _redact_json(document, found)
        secrets |= found
        if redacted != document:
            text = json.dumps(redacted, ensure_ascii=False)
        window_cut = False
    else:
        # Only the start is kept, so only the start (with a margin) is looked at.
        window = 2 * limit + 256
        text = _redact_text(body[:window].decode("utf-8", errors="replace"), secrets)
        window_cut = len(body) > window
    text, cut = _truncate(_scrub(text, secrets), limit)
    return text, cut or window_cut


def redact_body(
    body: bytes, *, limit: int = BODY_LIMIT, secrets: Iterable[str] = ()
) -> tuple[str, bool]:
    """A response body as transcript text: secrets redacted, then cut to ``limit`` bytes.

    JSON bodies have values under secret-looking keys replaced (recursively); other text has
    ``key=value`` / ``"key": "value"`` pairs and HTML ``name=... value|content=...`` secrets
    replaced. Any of the extra ``secrets`` (e.g. cookie values seen in headers), and any value
    redacted above, are scrubbed wherever else they appear. Returns ``(text, truncated)``.
    """
    return _redact_body_text(body, set(secrets), limit)


def _sensitive_query_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key)) or "auth" in key.lower()


def redact_url(url: str) -> str:
    """A URL with any password in its userinfo and secret-looking query values redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_sensitive_query_key(k) for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if _sensitive_query_key(k) else v) for k, v in pairs], safe="<>"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _header_secrets(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Raw secret values carried by headers, so they can be scrubbed from bodies too."""
    found: set[str] = set()
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie":
            cookie = _parse_set_cookie(value)
            if cookie:
                found.add(cookie.value)
        elif lower == "cookie":
            for pair in value.split(";"):
                found.add(pair.partition("=")[2].strip().strip('"'))
        elif _sensitive_header(name):
            found.add(value)
            # "Bearer abc…" -> also "abc…" (long parts only, not the scheme word)
            found.update(part for part in value.split() if len(part) >= 16)
    return found


# --------------------------------------------------------------------------------------------
# Transcript records
# --------------------------------------------------------------------------------------------


def _pairs(headers: Sequence[tuple[str, str]]) -> list[list[str]]:
    return [[k, v] for k, v in headers]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RequestRecord:
    method: str
    url: str  # redacted
    headers: tuple[tuple[str, str], ...]  # redacted

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "headers": _pairs(self.headers)}


@dataclass(frozen=True)
class ResponseRecord:
    status: int
    headers: tuple[tuple[str, str], ...]  # redacted
    body: str  # redacted, at most BODY_LIMIT bytes of UTF-8
    body_bytes: int  # size of the body as received (after the READ_LIMIT cap)
    body_truncated: bool
    elapsed_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": _pairs(self.headers),
            "body": self.body,
            "body_bytes": self.body_bytes,
            "body_truncated": self.body_truncated,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


@dataclass(frozen=True)
class Attempt:
    """One request of one probe in one round, as kept in the transcript (already redacted)."""

    probe: str
    round: int
    at: datetime  # UTC, when the request was sent
    request: RequestRecord
    response: ResponseRecord | None
    error: str | None  # set when no response came back (refused, timed out, reset…)
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "round": self.round,
            "at": _iso(self.at),
            "ok": self.ok,
            "request": self.request.to_dict(),
            "response": None if self.response is None else self.response.to_dict(),
            "error": self.error,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class ProbeOutcome:
    """The last result of one probe."""

    name: str
    ok: bool
    reasons: tuple[str, ...]
    status: int | None  # None when no response came back
    url: str  # redacted
    round: int  # the round this result is from (0: never attempted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "reasons": list(self.reasons),
            "status": self.status,
            "url": self.url,
            "round": self.round,
        }


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rounds: int
    elapsed_s: float
    reason: str  # one line
    probes: list[ProbeOutcome] = field(default_factory=list)
    transcript: list[Attempt] = field(default_factory=list)
    omitted_attempts: int = 0  # attempts dropped between the first round and the last ones

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rounds": self.rounds,
            "elapsed_s": round(self.elapsed_s, 3),
            "reason": self.reason,
            "probes": [p.to_dict() for p in self.probes],
            "transcript": [a.to_dict() for a in self.transcript],
            "omitted_attempts": self.omitted_attempts,
        }


# --------------------------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------------------------


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def _check_base_url(base_url: str) -> None:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"base URL {redact_url(base_url)!r} is not a valid URL ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base URL {redact_url(base_url)!r} must look like http(s)://host[:port][/prefix]"
        )


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds >= 0.1 else f"{seconds * 1000:.0f}ms"


def _describe_error(exc: Exception, timeout: float) -> str:
    """A short, stable reason for a request that produced no response."""
    detail = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {_secs(timeout)}"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no response within {_secs(timeout)} (read timed out)"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {_secs(timeout)} ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        lowered = detail.lower()
        if "refused" in lowered:
            return "connection refused"
        if "name or service not known" in lowered or "nodename nor servname" in lowered:
            return f"host not found ({detail})"
        return f"connection failed ({detail})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection closed without a valid response ({detail})"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"connection error ({detail})"
    return f"{type(exc).__name__}: {detail}"


class _BodyTimeout(Exception):
    pass


def _fetch(
    client: httpx.Client,
    url: str,
    timeout: float,
    clock: Callable[[], float],
) -> tuple[httpx.Request, ProbeResponse | None, str | None, bool]:
    """GET url once. Returns (request, response or None, error or None, body cut at READ_LIMIT)."""
    request = client.build_request(
        "GET",
        url,
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        timeout=httpx.Timeout(timeout),
    )
    # Every probe request starts cookieless: a cookie set by an earlier round must not be sent
    # back (an app may then skip setting it, and the probe would test the jar, not the app).
    if "cookie" in request.headers:
        del request.headers["cookie"]
    started = clock()
    try:
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            cut = False
            late = False
            for chunk in response.iter_bytes():
                if late:  # more body still coming after the time budget was spent
                    raise _BodyTimeout
                chunks.append(chunk)
                size += len(chunk)
                if size >= READ_LIMIT:
                    cut = True
                    break
                late = clock() - started > timeout
            body = b"".join(chunks)[:READ_LIMIT]
        finally:
            response.close()
    except _BodyTimeout:
        return request, None, f"response body not complete within {_secs(timeout)}", False
    except httpx.HTTPError as exc:
        return request, None, _describe_error(exc, timeout), False
    except OSError as exc:  # anything the transport did not wrap
        return request, None, f"connection error ({_one_line(str(exc))})", False
    elapsed_ms = (clock() - started) * 1000.0
    headers = [(k, v) for k, v in response.headers.multi_items()]
    return request, ProbeResponse(response.status_code, headers, body, elapsed_ms), None, cut


def _exit_reason(value: bool | str, elapsed: float) -> str:
    if value is False or not str(value).strip():
        text = "process exited"
    else:
        text = _one_line(str(value))
        if "exit" not in text.lower():
            text = f"process exited: {text}"
        elif not text.lower().startswith("process"):
            text = f"process {text}"
    return f"{text} after {elapsed:.1f}s"


def _dead(alive: Callable[[], bool | str] | None) -> bool | str | None:
    """None if alive (or unknown); otherwise what alive() said."""
    if alive is None:
        return None
    status = alive()
    if status is True:
        return None
    return status


def _failing_summary(outcomes: Sequence[ProbeOutcome]) -> str:
    failing = [o for o in outcomes if not o.ok]
    if not failing:
        return "probes never all passed in the same round"
    return "; ".join(f"{o.name}: {', '.join(o.reasons)}" for o in failing)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def verify_probes(
    base_url: str,
    verify: Verify,
    context: Mapping[str, str],
    *,
    alive: Callable[[], bool | str] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
) -> VerifyResult:
    """Probe ``base_url`` until every probe passes in one round, or the deadline passes.

    - A round runs each probe once, in order. Between failed rounds the wait starts at
      ``verify.backoff_start``, doubles up to ``verify.backoff_max``, with ±20% jitter.
    - ``verify.deadline`` counts from this call; each request's timeout is
      ``min(probe.timeout, time left)``. Rounds are also capped at ``MAX_ROUNDS``.
    - Refused connections, timeouts and resets are failed attempts, never exceptions.
    - ``alive()`` (if given) is asked before each round; ``False`` or a string (e.g.
      ``"exited (code 1)"``) ends the verify at once with a failed result.
    - ``on_attempt`` sees every attempt as it happens; the returned transcript keeps the first
      round, the last ``TRANSCRIPT_TAIL`` attempts and the count of those in between.

    Raises ValueError only for a base URL that can never work (not http(s)://host).
    """
    _check_base_url(base_url)
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    start = clock()
    deadline_at = start + verify.deadline
    probes = list(verify.probes)
    urls = {p.name: _join(base_url, p.path) for p in probes}
    outcomes: dict[str, ProbeOutcome] = {
        p.name: ProbeOutcome(p.name, False, ("not attempted",), None, redact_url(urls[p.name]), 0)
        for p in probes
    }
    first_round: list[Attempt] = []
    tail: deque[Attempt] = deque(maxlen=TRANSCRIPT_TAIL)
    later_total = 0
    rounds = 0

    def finish(ok: bool, reason: str) -> VerifyResult:
        return VerifyResult(
            ok=ok,
            rounds=rounds,
            elapsed_s=max(0.0, clock() - start),
            reason=_one_line(reason, 1000),
            probes=[outcomes[p.name] for p in probes],
            transcript=first_round + list(tail),
            omitted_attempts=later_total - len(tail),
        )

    def deadline_reason() -> str:
        dead = _dead(alive)
        if dead is not None:
            return _exit_reason(dead, clock() - start)
        failing = _failing_summary(list(outcomes.values()))
        if all(o.ok for o in outcomes.values()) and last_failure:
            # The latest round passed, but not `passes` in a row: say what failed in between.
            failing = (
                f"passed {streak} round(s) in a row, {verify.passes} needed; "
                f"it last failed with {last_failure}"
            )
        return f"deadline {verify.deadline:g}s passed after {_plural(rounds, 'round')}: {failing}"

    if not probes:
        return finish(False, "no probes configured: nothing to verify")

    # After the first round, a request is not started with less than this left: it could only
    # time out, and its "no response within 3ms" would hide the last real failure reason.
    floor = min(MIN_REQUEST_S, *(p.timeout for p in probes))

    def too_late(remaining: float) -> bool:
        return remaining <= 0 or (rounds > 1 and remaining < floor)

    own_client = client is None
    http = client or httpx.Client(follow_redirects=False, trust_env=False)
    delay = verify.backoff_start
    streak = 0
    last_failure = ""
    try:
        while True:
            dead = _dead(alive)
            if dead is not None:
                return finish(False, _exit_reason(dead, clock() - start))
            if too_late(deadline_at - clock()):
                return finish(False, deadline_reason())
            if rounds >= MAX_ROUNDS:
                return finish(
                    False,
                    f"gave up after {MAX_ROUNDS} rounds (the round limit): "
                    f"{_failing_summary(list(outcomes.values()))}",
                )
            rounds += 1
            round_ok = True
            for probe in probes:
                remaining = deadline_at - clock()
                if too_late(remaining):
                    round_ok = False
                    break
                attempt = _attempt(http, probe, urls[probe.name], rounds, remaining, context, clock)
                outcomes[probe.name] = ProbeOutcome(
                    probe.name,
                    attempt.ok,
                    attempt.reasons,
                    None if attempt.response is None else attempt.response.status,
                    attempt.request.url,
                    rounds,
                )
                if rounds == 1:
                    first_round.append(attempt)
                else:
                    later_total += 1
                    tail.append(attempt)
                if on_attempt is not None:
                    on_attempt(attempt)
                round_ok = round_ok and attempt.ok
            # A flapping app passes one round by luck; it must pass `passes` rounds in a row.
            streak = streak + 1 if round_ok else 0
            if not round_ok:
                last_failure = _failing_summary(list(outcomes.values()))
            if streak >= verify.passes:
                elapsed = clock() - start
                in_a_row = f" ({verify.passes} rounds in a row)" if verify.passes > 1 else ""
                return finish(
                    True,
                    f"all {_plural(len(probes), 'probe')} passed{in_a_row} after "
                    f"{_plural(rounds, 'round')} in {elapsed:.1f}s",
                )
            remaining = deadline_at - clock()
            if too_late(remaining):
                return finish(False, deadline_reason())
            if round_ok:
                # Confirming a pass: ask again soon, without growing the backoff.
                sleep(max(0.0, min(verify.backoff_start, remaining)))
                continue
            wait = delay * rng.uniform(1.0 - JITTER, 1.0 + JITTER)
            sleep(max(0.0, min(wait, remaining)))
            delay = min(delay * 2.0, verify.backoff_max)
    finally:
        if own_client:
            http.close()


def _attempt(
    client: httpx.Client,
    probe: Probe,
    url: str,
    round_no: int,
    remaining: float,
    context: Mapping[str, str],
    clock: Callable[[], float],
) -> Attempt:
    """One request, evaluated and redacted. Secrets seen in this exchange's headers and body are
    scrubbed from everything this attempt records."""
    timeout = max(0.001, min(probe.timeout, remaining))
    at = datetime.now(UTC)
    request, response, error, cut = _fetch(client, url, timeout, clock)
    request_headers = list(request.headers.multi_items())
    secrets = _header_secrets(request_headers)
    record = RequestRecord(
        request.method, redact_url(str(request.url)), tuple(redact_headers(request_headers))
    )
    if response is None:
        assert error is not None
        return Attempt(probe.name, round_no, at, record, None, error, (error,))
    reasons = evaluate(probe, response, context)
    if cut and probe.json_fields:
        reasons.append(f"body larger than {READ_LIMIT} bytes: only the start was read")
    secrets |= _header_secrets(response.headers)
    body, truncated = _redact_body_text(response.body, secrets, BODY_LIMIT)
    reasons = [_scrub(_one_line(r), secrets) for r in reasons]
    response_record = ResponseRecord(
        status=response.status,
        headers=tuple((k, _scrub(v, secrets)) for k, v in redact_headers(response.headers)),
        body=body,
        body_bytes=len(response.body),
        body_truncated=truncated or cut,
        elapsed_ms=response.elapsed_ms,
    )
    return Attempt(probe.name, round_no, at, record, response_record, None, tuple(reasons))
