"""A fake Heroku Platform API (an ASGI app), held to the public JSON hyper-schema.

The route table is derived from the schema's `links` (method + href; the `{(#/...)}`
placeholders become path parameters validated against the identity they point to). Every
request body is validated against its link's `schema` and every answer against its
`targetSchema` before it is sent. Strictness the schema leaves implicit is made explicit:
`strictProperties: true` means no other properties and all of them present, and an object
schema that is silent about `additionalProperties` allows none. So:

- a request with an unknown field → 400 `invalid_params`; a wrong type or a missing
  required field → 422 `invalid_params`; a body that is not a JSON object → 400;
- an answer the fake builds wrongly is a fake bug: it is recorded in `violations`, raised
  in the server (500 `fake_schema_violation`), and the fixtures fail the test on teardown.

Also like the real API: `Authorization: Bearer <key>` (401 `unauthorized`), an
`Accept: application/vnd.heroku+json; version=3` header (400 `missing_version`), whose
`version=3.docker-releases` variant is what adds `docker_image` to formation updates
(HEROKU_NOTES.md); `Range` paging (`max`, `order`, 206 + `Next-Range`, `Accept-Ranges`;
without a Range, lists are ordered by id, so a client that wants versions must ask);
`RateLimit-Remaining` on every answer (429 `rate_limit` when the pool is empty); error
bodies `{"id", "message"}`; an app the key may not use (`add_app(forbidden=True)`) answers
403 `forbidden`, and an app's stack (`add_app(stack="heroku-22")`) is its `stack` and
`build_stack`.

Served outside the schema, as Heroku serves them from other hosts: release phase output
(`output_stream_url`, text/plain, resumable with `Range: bytes=N-`) and log sessions
(`logplex_url`, lines like `2026-11-26T10:00:00.000000+00:00 app[run.1234]: ...`).

Time is lazy: a release's phase, a dyno's run and their log lines each have times computed
when made, and every request first settles what is due. Faults are injected with
`fail_next` (next N matching requests → 429, 503, an error, a slow answer, a dropped
connection before or after the change was applied), `drop_release_stream` (an output
stream broken after N lines), and scripts for the next release (`ReleaseScript`: outcome,
output, duration) and dyno (`DynoScript`: output, exit status or None for no exit line).

Run it with `tests/fakes/heroku_server.py`.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import itertools
import json
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import referencing
import referencing.jsonschema

API_KEY = "HRKU-fake0123-4567-89ab-cdef-0123456789ab"
SCHEMA_URI = "urn:heroku-platform-api"
DOCKER_VARIANT = "3.docker-releases"
VARIANTS = ("3", DOCKER_VARIANT)
MAX_BODY = 1024 * 1024
DEFAULT_PAGE = 200
MAX_PAGE = 1000

# The schema is public reference material kept in shared/ (beside the repository, here and
# in CI); GONOGO_HEROKU_SCHEMA or a copy next to this file take precedence.
_HERE = Path(__file__).resolve().parent
_SCHEMA_CANDIDATES = (
    _HERE / "heroku-platform-api.schema.json",
    _HERE.parents[2] / "shared" / "reference" / "heroku-platform-api.schema.json",
    Path("/work/shared/reference/heroku-platform-api.schema.json"),
)

# What the fake implements, as (resource, link title) of the schema's links.
IMPLEMENTED: frozenset[tuple[str, str]] = frozenset(
    {
        ("app", "Info"),
        ("app-feature", "Info"),
        ("app-feature", "List"),
        ("app-feature", "Update"),
        ("config-var", "Info for App"),
        ("config-var", "Info for App Release"),
        ("config-var", "Update"),
        ("dyno", "Create"),
        ("dyno", "Info"),
        ("dyno", "List"),
        ("formation", "Batch Update"),
        ("formation", "Info"),
        ("formation", "List"),
        ("log-session", "Create"),
        ("release", "Create"),
        ("release", "Info"),
        ("release", "List"),
        ("release", "Rollback"),
    }
)
# The attributes each list endpoint can be ranged on (its Accept-Ranges).
RANGES: dict[str, tuple[str, ...]] = {
    "app-feature": ("id", "name"),
    "dyno": ("id", "name"),
    "formation": ("id", "type"),
    "release": ("id", "version"),
}

FEATURE_DESCRIPTIONS = {
    "preboot": "Start new dynos before stopping old ones, so traffic moves without a gap.",
    "runtime-dyno-metadata": "Expose release and dyno metadata as config vars in dynos.",
}

RATE_LIMITED = {
    "id": "rate_limit",
    "message": "Your account reached the API rate limit. Please wait a few minutes before "
    "making new requests.",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "message": {"type": "string"}},
    "required": ["id", "message"],
    "additionalProperties": False,
}


class SchemaViolation(AssertionError):
    """Something the fake (or a test) built does not match the schema: a bug to fix."""


# -- the schema ------------------------------------------------------------------------


def schema_path() -> Path:
    env = os.environ.get("GONOGO_HEROKU_SCHEMA")
    for candidate in ((Path(env),) if env else ()) + _SCHEMA_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "heroku-platform-api.schema.json not found; set GONOGO_HEROKU_SCHEMA or copy it to "
        f"{_SCHEMA_CANDIDATES[0]}"
    )


def _tighten(node: Any) -> None:
    """strictProperties → exactly these properties; silent objects → no unknown fields."""
    if isinstance(node, list):
        for item in node:
            _tighten(item)
        return
    if not isinstance(node, dict):
        return
    node.pop("$schema", None)
    props = node.get("properties")
    if isinstance(props, dict) and all(isinstance(v, dict) for v in props.values()):
        if node.get("strictProperties") is True:
            node["required"] = sorted(set(node.get("required", [])) | set(props))
        node.setdefault("additionalProperties", False)
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for sub in value.values():
                _tighten(sub)
        elif key not in ("example", "enum", "required", "default"):
            _tighten(value)


def _docker_variant(definitions: dict[str, Any]) -> None:
    """The `version=3.docker-releases` formation update: `docker_image` (HEROKU_NOTES)."""
    formation = definitions["formation"]["definitions"]
    update = copy.deepcopy(formation["update"])
    update["properties"]["docker_image"] = {
        "description": "image id (config digest) pushed to registry.heroku.com/<app>/<type>",
        "pattern": "^sha256:[0-9a-f]{64}$",
        "type": ["string"],
    }
    formation["fake-docker-releases-update"] = update
    formation["fake-docker-releases-batch-update"] = {
        "type": ["object"],
        "properties": {
            "updates": {
                "type": ["array"],
                "items": {
                    "$ref": "#/definitions/formation/definitions/fake-docker-releases-update"
                },
            }
        },
        "required": ["updates"],
        "additionalProperties": False,
    }


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value and parsed.tzinfo is not None


@_FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[^@\s]+@[^@\s]+", value) is not None


@dataclass(frozen=True)
class Link:
    resource: str
    index: int
    title: str
    method: str
    href: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]  # JSON pointers of the identities in the href, in order
    has_schema: bool
    has_target: bool

    @property
    def pointer(self) -> str:
        return f"/definitions/{self.resource}/links/{self.index}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource, self.title)


_PLACEHOLDER = re.compile(r"\{\(([^)]+)\)\}")


class Schema:
    """The tightened schema, its links as routes, and validation."""

    def __init__(self, path: Path | None = None) -> None:
        raw = json.loads((path or schema_path()).read_text())
        self.original = raw
        doc = copy.deepcopy(raw)
        doc.pop("id", None)
        _tighten(doc)
        _docker_variant(doc["definitions"])
        self.doc = doc
        resource = referencing.Resource.from_contents(
            doc, default_specification=referencing.jsonschema.DRAFT4
        )
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            SCHEMA_URI, resource
        )
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self.links = self._links(raw)

    @staticmethod
    def _links(raw: dict[str, Any]) -> list[Link]:
        links = []
        for resource, definition in raw["definitions"].items():
            for index, link in enumerate(definition.get("links", [])):
                href = link["href"]
                pointers = tuple(unquote(p).lstrip("#") for p in _PLACEHOLDER.findall(href))
                literals = _PLACEHOLDER.split(href)[::2]  # split() interleaves the groups
                regex = "^" + "([^/]+)".join(re.escape(part) for part in literals) + "$"
                links.append(
                    Link(
                        resource=resource,
                        index=index,
                        title=link.get("title", ""),
                        method=link.get("method", "GET"),
                        href=href,
                        pattern=re.compile(regex),
                        params=pointers,
                        has_schema="schema" in link,
                        has_target="targetSchema" in link,
                    )
                )
        return links

    def link(self, resource: str, title: str) -> Link:
        for link in self.links:
            if link.key == (resource, title):
                return link
        raise KeyError((resource, title))

    def validator(self, pointer: str) -> jsonschema.protocols.Validator:
        if pointer not in self._validators:
            self._validators[pointer] = jsonschema.Draft4Validator(
                {"$ref": f"{SCHEMA_URI}#{pointer}"},
                registry=self._registry,
                format_checker=_FORMATS,
            )
        return self._validators[pointer]

    def request_errors(self, pointer: str, body: Any) -> list[jsonschema.ValidationError]:
        return list(self.validator(pointer).iter_errors(body))

    def validate_response(self, link: Link, status: int, body: Any) -> None:
        """Raise SchemaViolation when `body` is not what `link` may answer with `status`."""
        if status >= 400:
            errors = list(jsonschema.Draft4Validator(ERROR_SCHEMA).iter_errors(body))
        elif link.has_target:
            errors = list(self.validator(f"{link.pointer}/targetSchema").iter_errors(body))
        else:
            errors = []
        if errors:
            first = jsonschema.exceptions.best_match(errors)
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            raise SchemaViolation(
                f"{link.method} {link.resource} {link.title!r} answer {status} breaks the "
                f"schema at {where}: {first.message}"
            )

    def identity_ok(self, pointer: str, value: str) -> bool:
        candidate: Any = int(value) if value.isdigit() else value
        if self.validator(pointer).is_valid(candidate):
            return True
        return candidate != value and self.validator(pointer).is_valid(value)


# -- state -----------------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class ReleaseScript:
    """What the release phase of the next release does (or of every one: `FakeApp.phase`)."""

    outcome: str = "succeeded"  # "succeeded" | "failed"
    output: list[str] = field(default_factory=list)
    duration_s: float = 0.3


@dataclass
class DynoScript:
    """What the next one-off dyno prints and how it ends; exit_code None = no exit line."""

    output: list[str] = field(default_factory=list)
    exit_code: int | None = 0
    start_s: float = 0.05
    line_s: float = 0.02
    linger_s: float = 1.0  # how long a finished one-off dyno stays listed


@dataclass
class FakeRelease:
    id: str
    version: int
    description: str
    created_at: str
    images: dict[str, str]  # process type → image id
    config: dict[str, str]
    status: str
    current: bool
    outcome: str
    settle_at: float
    output: list[tuple[float, str]]  # (available at, line) of the release phase
    has_phase: bool


@dataclass
class FakeDyno:
    id: str
    name: str
    command: str
    type: str
    size: str
    created_at: str
    release: FakeRelease
    start_at: float
    end_at: float
    exit_code: int | None
    linger_s: float

    def state(self, now: float) -> str:
        if now < self.start_at:
            return "starting"
        if self.exit_code is None or now < self.end_at:
            return "up"
        return "complete"

    def gone(self, now: float) -> bool:
        return self.exit_code is not None and now >= self.end_at + self.linger_s


@dataclass(order=True)
class LogLine:
    at: float
    seq: int
    source: str = field(compare=False)
    dyno: str = field(compare=False)
    text: str = field(compare=False)
    stamp: str = field(compare=False, default="")  # wall time it is logged at, fixed once


@dataclass
class LogSession:
    id: str
    app: str
    dyno: str | None
    source: str | None
    lines: int
    tail: bool


@dataclass
class FakeApp:
    id: str
    name: str
    created_at: str
    config: dict[str, str]
    features: dict[str, bool]
    formation: dict[str, dict[str, Any]]
    releases: list[FakeRelease] = field(default_factory=list)
    dynos: dict[str, FakeDyno] = field(default_factory=dict)
    log: list[LogLine] = field(default_factory=list)
    pushed: set[tuple[str, str]] = field(default_factory=set)  # (process type, image id)
    phase: ReleaseScript | None = None  # release phase for every release, if any
    next_releases: deque[ReleaseScript] = field(default_factory=deque)
    next_dynos: deque[DynoScript] = field(default_factory=deque)
    stack: str = "container"  # "heroku-22" etc.: a buildpack app, which cannot run images
    forbidden: bool = False  # the key is valid but has no access to this app: 403 on all


@dataclass
class Fault:
    kind: str  # "429" | "503" | "error" | "slow" | "slow-after" | "drop" | "drop-unapplied"
    method: str | None = None
    path: str | None = None  # a regex searched in the request path
    retry_after: float | None = 1.0
    delay: float = 1.0
    status: int = 500
    error_id: str = "internal_server_error"
    message: str = "Internal server error."

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None
        )


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Answer = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers


@dataclass
class Call:
    """What a handler gets: the app, the rest of the path parameters, the body, headers."""

    app: FakeApp
    params: list[str]
    payload: Any
    headers: dict[str, str]


class _Reply(Exception):  # control flow inside the fake: an error answer
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


# -- the fake --------------------------------------------------------------------------


class FakeHeroku:
    """In-memory Heroku apps behind the Platform API; an ASGI application."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        schema: Schema | None = None,
        page_size: int = DEFAULT_PAGE,
        max_page: int = MAX_PAGE,
        rate_limit: int = 4500,
        refill_per_s: float = 1.25,
        stream_tick_s: float = 0.02,
        stream_max_s: float = 3.0,
        dyno_counter_start: int = 4821,
    ) -> None:
        self.api_key = api_key
        self.schema = schema or default_schema()
        self.page_size = page_size
        self.max_page = max_page  # the largest `max` honoured (tests lower it to page)
        self.rate_limit = rate_limit
        self.rate_limit_remaining = float(rate_limit)
        self.refill_per_s = refill_per_s
        self.stream_tick_s = stream_tick_s
        self.stream_max_s = stream_max_s
        self.url = ""
        self.apps: dict[str, FakeApp] = {}
        self.sessions: dict[str, LogSession] = {}
        self.requests: list[Seen] = []
        self.stream_requests: list[Seen] = []
        self.violations: list[str] = []
        self.response_mutators: list[Callable[[Link, Any], Any]] = []
        self.lock = threading.RLock()
        self.closing = threading.Event()
        self._faults: list[Fault] = []
        self._stream_drops: deque[int] = deque()
        self._refilled_at = time.monotonic()
        self._seq = itertools.count(1)
        self._dyno_numbers = itertools.count(dyno_counter_start)
        self._routes = list(iter_routes(self.schema))
        self.owner = {"email": "ops@example.com", "id": _uuid()}

    # -- test set-up ----------------------------------------------------------------------

    def add_app(
        self,
        name: str,
        *,
        config: dict[str, str] | None = None,
        preboot: bool = False,
        formation: dict[str, int] | None = None,
        stack: str = "container",
        forbidden: bool = False,
    ) -> FakeApp:
        with self.lock:
            created = _now_iso()
            app = FakeApp(
                id=_uuid(),
                name=name,
                created_at=created,
                config=dict(config or {}),
                features={"preboot": preboot, "runtime-dyno-metadata": False},
                formation={},
                stack=stack,
                forbidden=forbidden,
            )
            for ptype, quantity in (formation or {"web": 1}).items():
                app.formation[ptype] = self._formation_entry(ptype, quantity, created)
            self.apps[name] = app
            self._new_release(app, "Initial release", {}, script=ReleaseScript(duration_s=0))
            return app

    def push_image(self, app: str, process_type: str, image_id: str) -> None:
        """What `docker push registry.heroku.com/<app>/<type>` does, as far as releases go."""
        with self.lock:
            self.apps[app].pushed.add((process_type, image_id))

    def add_release(
        self, app: str, images: dict[str, str], *, outcome: str = "succeeded"
    ) -> FakeRelease:
        """A past container release, settled at once (history for a test)."""
        with self.lock:
            fake_app = self.apps[app]
            for ptype, image in images.items():
                fake_app.pushed.add((ptype, image))
            return self._new_release(
                fake_app,
                _deployed(images),
                {**self._latest_images(fake_app), **images},
                script=ReleaseScript(outcome=outcome, duration_s=0),
            )

    def set_config(self, app: str, **values: str | None) -> FakeRelease:
        """A config change, as `PATCH /apps/{app}/config-vars` makes it (a new release)."""
        with self.lock:
            return self._change_config(self.apps[app], values)

    def script_next_release(self, app: str, script: ReleaseScript) -> None:
        with self.lock:
            self.apps[app].next_releases.append(script)

    def script_next_dyno(self, app: str, script: DynoScript) -> None:
        with self.lock:
            self.apps[app].next_dynos.append(script)

    def add_log(self, app: str, source: str, dyno: str, text: str, *, delay_s: float = 0) -> None:
        with self.lock:
            self._log(self.apps[app], source, dyno, text, time.monotonic() + delay_s)

    def fail_next(self, n: int, kind: str, **options: Any) -> None:
        """Act out `kind` on the next `n` requests matching `method` / `path` (a regex)."""
        with self.lock:
            self._faults.extend(Fault(kind, **options) for _ in range(n))

    def drop_release_stream(self, after_lines: int) -> None:
        """The next release output stream breaks after `after_lines` lines."""
        with self.lock:
            self._stream_drops.append(after_lines)

    def releases_of(self, app: str) -> list[FakeRelease]:
        with self.lock:
            self._settle(self.apps[app])
            return list(self.apps[app].releases)

    def seen(self, method: str | None = None, path: str = "") -> list[Seen]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and re.search(path, r.path)
            ]

    def close(self) -> None:
        self.closing.set()

    # -- state helpers ------------------------------------------------------------------

    def _formation_entry(self, ptype: str, quantity: int, created: str) -> dict[str, Any]:
        return {
            "id": _uuid(),
            "type": ptype,
            "quantity": quantity,
            "size": "Basic",
            "command": "",
            "created_at": created,
            "updated_at": created,
        }

    def _latest_images(self, app: FakeApp) -> dict[str, str]:
        done = [r for r in app.releases if r.current]
        return dict(done[-1].images) if done else {}

    def _new_release(
        self,
        app: FakeApp,
        description: str,
        images: dict[str, str],
        *,
        config: dict[str, str] | None = None,
        script: ReleaseScript | None = None,
    ) -> FakeRelease:
        now = time.monotonic()
        script = script or (app.next_releases.popleft() if app.next_releases else app.phase)
        has_phase = script is not None and script.duration_s > 0
        duration = script.duration_s if script is not None else 0.0
        lines = script.output if script is not None else []
        step = duration / (len(lines) + 1) if lines else 0.0
        release = FakeRelease(
            id=_uuid(),
            version=max((r.version for r in app.releases), default=0) + 1,
            description=description,
            created_at=_now_iso(),
            images=dict(images),
            config=dict(app.config if config is None else config),
            status="pending",
            current=False,
            outcome=script.outcome if script is not None else "succeeded",
            settle_at=now + duration,
            output=[(now + step * (i + 1), line) for i, line in enumerate(lines)],
            has_phase=has_phase,
        )
        app.releases.append(release)
        self._log(
            app,
            "app",
            "api",
            f"Release v{release.version} created by user {self.owner['email']}",
            now,
        )
        for at, line in release.output:
            self._log(app, "app", f"release.{release.version}", line, at)
        self._settle(app)
        return release

    def _settle(self, app: FakeApp) -> None:
        now = time.monotonic()
        for release in sorted(app.releases, key=lambda r: r.version):
            if release.status == "pending" and now >= release.settle_at:
                release.status = release.outcome
                if release.status == "succeeded":
                    for other in app.releases:
                        other.current = False
                    release.current = True
                    app.config = dict(release.config)
        for name in [n for n, d in app.dynos.items() if d.gone(now)]:
            del app.dynos[name]

    def _log(self, app: FakeApp, source: str, dyno: str, text: str, at: float) -> None:
        # Lines made ahead of time carry the wall time at which they become visible; fixed
        # here so a line replayed by a later session is byte for byte the same line.
        when = datetime.now(UTC) + timedelta(seconds=at - time.monotonic())
        stamp = when.isoformat(timespec="microseconds")
        bisect.insort(app.log, LogLine(at, next(self._seq), source, dyno, text, stamp))

    def _change_config(self, app: FakeApp, values: dict[str, str | None]) -> FakeRelease:
        current = [r for r in app.releases if r.current]
        base = dict(current[-1].config if current else app.config)
        for key, value in values.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        set_names = [k for k, v in values.items() if v is not None]
        removed = [k for k, v in values.items() if v is None]
        parts = []
        if set_names:
            parts.append(f"Set {', '.join(set_names)} config vars")
        if removed:
            parts.append(f"Remove {', '.join(removed)} config vars")
        images = dict(current[-1].images) if current else {}
        return self._new_release(
            app, " and ".join(parts) or "Config unchanged", images, config=base
        )

    # -- serialisation -----------------------------------------------------------------

    def _app_ref(self, app: FakeApp) -> dict[str, str]:
        return {"id": app.id, "name": app.name}

    def _app_json(self, app: FakeApp) -> dict[str, Any]:
        current = [r for r in app.releases if r.current]
        stack = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"stack/{app.stack}")), "name": app.stack}
        return {
            "acm": False,
            "archived_at": None,
            "buildpack_provided_description": None,
            "build_stack": dict(stack),
            "created_at": app.created_at,
            "generation": {"id": "4d2e6f8a-0b1c-4d3e-9f5a-6b7c8d9e0f1a", "name": "cedar"},
            "git_url": f"https://git.heroku.com/{app.name}.git",
            "id": app.id,
            "internal_routing": None,
            "maintenance": False,
            "name": app.name,
            "owner": dict(self.owner),
            "organization": None,
            "team": None,
            "region": {"id": "59accabd-516d-4f0e-83e6-6e3757701145", "name": "us"},
            "released_at": current[-1].created_at if current else None,
            "repo_size": None,
            "slug_size": None,
            "space": None,
            "stack": stack,
            "updated_at": app.created_at,
            "web_url": f"https://{app.name}-0123456789ab.herokuapp.com/",
        }

    def _release_json(self, app: FakeApp, release: FakeRelease) -> dict[str, Any]:
        stream = f"{self.url}/release-output/streams/{release.id}" if release.has_phase else None
        return {
            "addon_plan_names": [],
            "artifacts": [],
            "app": self._app_ref(app),
            "created_at": release.created_at,
            "description": release.description,
            "id": release.id,
            "updated_at": release.created_at,
            "slug": None,
            "status": release.status,
            "user": dict(self.owner),
            "version": release.version,
            "current": release.current,
            "output_stream_url": stream,
            "eligible_for_rollback": release.status == "succeeded" and not release.current,
        }

    def _formation_json(self, app: FakeApp, entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "app": self._app_ref(app),
            "command": entry["command"],
            "created_at": entry["created_at"],
            "dyno_size": {"id": "e6f7a8b9-c0d1-4e2f-a3b4-c5d6e7f8a9b0", "name": entry["size"]},
            "id": entry["id"],
            "quantity": entry["quantity"],
            "size": entry["size"],
            "type": entry["type"],
            "updated_at": entry["updated_at"],
        }

    def _feature_json(self, name: str, enabled: bool, app: FakeApp) -> dict[str, Any]:
        return {
            "created_at": app.created_at,
            "description": FEATURE_DESCRIPTIONS.get(name, name),
            "doc_url": f"https://devcenter.heroku.com/articles/{name}",
            "enabled": enabled,
            "id": _feature_id(name),
            "name": name,
            "state": "general",
            "updated_at": app.created_at,
            "display_name": name.replace("-", " ").title(),
            "feedback_email": "feedback@heroku.com",
        }

    def _dyno_json(self, app: FakeApp, dyno: FakeDyno, now: float) -> dict[str, Any]:
        return {
            "attach_url": None,
            "command": dyno.command,
            "created_at": dyno.created_at,
            "id": dyno.id,
            "name": dyno.name,
            "release": {"id": dyno.release.id, "version": dyno.release.version},
            "app": self._app_ref(app),
            "size": dyno.size,
            "state": dyno.state(now),
            "type": dyno.type,
            "updated_at": dyno.created_at,
        }

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await _read_body(receive)
        if path.startswith("/release-output/streams/"):
            await self._serve_release_output(send, method, path, headers)
        elif path.startswith("/logplex/sessions/"):
            await self._serve_logplex(send, method, path, headers)
        else:
            await self._serve_api(send, method, path, headers, body)

    async def _serve_api(
        self, send: Any, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> None:
        parsed: Any = body
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
        with self.lock:
            self.requests.append(Seen(method, path, headers, parsed))
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.kind == "drop-unapplied":
            await _start_and_drop(send)
            return
        if fault is not None and fault.kind == "slow":
            await self._nap(fault.delay)
        if fault is not None and fault.kind in ("429", "503", "error"):
            status, payload, extra = self._fault_reply(fault)
        else:
            status, payload, extra = self._answer(method, path, headers, body)
        if fault is not None and fault.kind == "drop":
            await _start_and_drop(send)
            return
        if fault is not None and fault.kind == "slow-after":
            await self._nap(fault.delay)
        await _send_json(send, status, payload, extra)

    async def _nap(self, seconds: float) -> None:
        """Sleep, but end early when the fake is closed (tests should not wait on it)."""
        until = time.monotonic() + seconds
        while not self.closing.is_set() and time.monotonic() < until:
            await asyncio.sleep(min(self.stream_tick_s, until - time.monotonic()))

    def _fault_reply(self, fault: Fault) -> Answer:
        with self.lock:
            remaining = str(int(self._tokens()))
        if fault.kind == "429":
            extra = {"RateLimit-Remaining": "0"}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            return 429, dict(RATE_LIMITED), extra
        if fault.kind == "503":
            return (
                503,
                {"id": "service_unavailable", "message": "The service is temporarily unavailable."},
                {"RateLimit-Remaining": remaining},
            )
        return (
            fault.status,
            {"id": fault.error_id, "message": fault.message},
            {"RateLimit-Remaining": remaining},
        )

    def _tokens(self) -> float:
        now = time.monotonic()
        self.rate_limit_remaining = min(
            float(self.rate_limit),
            self.rate_limit_remaining + (now - self._refilled_at) * self.refill_per_s,
        )
        self._refilled_at = now
        return self.rate_limit_remaining

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Everything but faults and transport: auth, Accept, route, body, handler, check."""
        with self.lock:
            tokens = self._tokens()
            if tokens < 1:
                return 429, dict(RATE_LIMITED), {"RateLimit-Remaining": "0"}
            self.rate_limit_remaining -= 1
            extra = {"RateLimit-Remaining": str(int(self.rate_limit_remaining))}
            link: Link | None = None
            try:
                variant = self._authorize(headers)
                link, params = self._route(method, path)
                payload = self._parse_body(link, body, headers) if link.has_schema else None
                link, status, answer, more = self._handle(link, params, payload, variant, headers)
                extra.update(more)
            except _Reply as reply:
                status, answer = reply.status, {"id": reply.error_id, "message": reply.message}
            if link is None:
                return status, answer, extra
            for mutate in self.response_mutators:
                answer = mutate(link, answer)
            try:
                self.schema.validate_response(link, status, answer)
            except SchemaViolation as exc:
                self.violations.append(str(exc))
                return 500, {"id": "fake_schema_violation", "message": str(exc)[:500]}, extra
            return status, answer, extra

    def _authorize(self, headers: dict[str, str]) -> str:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            raise _Reply(401, "unauthorized", "Invalid credentials provided.")
        accept = headers.get("accept", "")
        match = re.search(r"application/vnd\.heroku\+json;\s*version=([\w.-]+)", accept)
        if match is None:
            raise _Reply(
                400,
                "missing_version",
                "Please specify a version along with Heroku's API MIME type. For example, "
                "`Accept: application/vnd.heroku+json; version=3`.",
            )
        if match.group(1) not in VARIANTS:
            raise _Reply(400, "bad_request", f"Unknown API variant version={match.group(1)}.")
        return match.group(1)

    def _route(self, method: str, path: str) -> tuple[Link, list[str]]:
        for link in self._routes:
            if link.method != method:
                continue
            match = link.pattern.match(path)
            if match is None:
                continue
            params = [unquote(p) for p in match.groups()]
            for pointer, value in zip(link.params, params, strict=True):
                if not self.schema.identity_ok(pointer, value):
                    kind = pointer.split("/")[2]
                    raise _Reply(404, "not_found", f"Couldn't find that {kind}.")
            return link, params
        known = any(k.method == method and k.pattern.match(path) for k in self.schema.links)
        if known:
            raise _Reply(501, "not_implemented", f"The fake does not implement {method} {path}.")
        raise _Reply(404, "not_found", "The requested API endpoint was not found.")

    def _parse_body(self, link: Link, body: bytes, headers: dict[str, str]) -> Any:
        if not headers.get("content-type", "").startswith("application/json"):
            raise _Reply(400, "bad_request", "Request bodies must be application/json.")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            raise _Reply(400, "bad_request", "Invalid JSON in the request body.") from None
        if not isinstance(payload, dict):
            raise _Reply(400, "bad_request", "The request body must be a JSON object.")
        return payload

    def _body_errors(self, pointer: str, payload: Any) -> None:
        errors = self.schema.request_errors(pointer, payload)
        if not errors:
            return
        unknown = [e for e in errors if e.validator == "additionalProperties"]
        first = unknown[0] if unknown else jsonschema.exceptions.best_match(errors)
        where = "/".join(str(p) for p in first.absolute_path)
        status = 400 if unknown else 422
        raise _Reply(
            status,
            "invalid_params",
            f"Invalid params{' at ' + where if where else ''}: {first.message}",
        )

    # -- handlers -----------------------------------------------------------------------

    def _handle(
        self, link: Link, params: list[str], payload: Any, variant: str, headers: dict[str, str]
    ) -> tuple[Link, int, Any, dict[str, str]]:
        app = self.apps.get(params[0]) or next(
            (a for a in self.apps.values() if a.id == params[0]), None
        )
        if app is None:
            raise _Reply(404, "not_found", "Couldn't find that app.")
        if app.forbidden:
            raise _Reply(403, "forbidden", f"You do not have access to the app {app.name}.")
        self._settle(app)
        call = Call(app, params[1:], payload, headers)
        if link.resource == "release" and link.method == "POST":
            link = self._release_post_link(payload)
        elif link.has_schema:
            pointer = f"{link.pointer}/schema"
            if link.key == ("formation", "Batch Update") and variant == DOCKER_VARIANT:
                pointer = "/definitions/formation/definitions/fake-docker-releases-batch-update"
            self._body_errors(pointer, payload)
        name = "_h_" + re.sub(r"\W+", "_", f"{link.resource} {link.title}").lower()
        status, answer, extra = getattr(self, name)(call)
        return link, status, answer, extra

    def _release_post_link(self, payload: Any) -> Link:
        """One href and method, two links (Create, Rollback): the body says which."""
        create = self.schema.link("release", "Create")
        rollback = self.schema.link("release", "Rollback")
        for link in (rollback, create):
            if not self.schema.request_errors(f"{link.pointer}/schema", payload):
                return link
        closest = rollback if "release" in payload else create
        self._body_errors(f"{closest.pointer}/schema", payload)
        raise AssertionError("unreachable: _body_errors raised")

    def _h_release_create(self, call: Call) -> Answer:
        raise _Reply(404, "not_found", "Couldn't find that slug.")  # the fake has no slugs

    def _h_release_rollback(self, call: Call) -> Answer:
        app = call.app
        target = self._release_of(app, call.payload["release"])
        if target.status != "succeeded":
            raise _Reply(
                422, "invalid_params", f"Release v{target.version} did not succeed; no rollback."
            )
        made = self._new_release(
            app, f"Rollback to v{target.version}", target.images, config=target.config
        )
        return 201, self._release_json(app, made), {}

    def _h_app_info(self, call: Call) -> Answer:
        return 200, self._app_json(call.app), {}

    def _h_app_feature_list(self, call: Call) -> Answer:
        app = call.app
        items = [self._feature_json(n, e, app) for n, e in app.features.items()]
        return self._page("app-feature", items, call.headers)

    def _feature(self, app: FakeApp, ident: str) -> str:
        for name in app.features:
            if ident in (name, _feature_id(name)):
                return name
        raise _Reply(404, "not_found", "Couldn't find that feature.")

    def _h_app_feature_info(self, call: Call) -> Answer:
        name = self._feature(call.app, call.params[0])
        return 200, self._feature_json(name, call.app.features[name], call.app), {}

    def _h_app_feature_update(self, call: Call) -> Answer:
        name = self._feature(call.app, call.params[0])
        call.app.features[name] = call.payload["enabled"]
        return 200, self._feature_json(name, call.app.features[name], call.app), {}

    def _h_formation_list(self, call: Call) -> Answer:
        items = [self._formation_json(call.app, e) for e in call.app.formation.values()]
        return self._page("formation", items, call.headers)

    def _h_formation_info(self, call: Call) -> Answer:
        for entry in call.app.formation.values():
            if call.params[0] in (entry["type"], entry["id"]):
                return 200, self._formation_json(call.app, entry), {}
        raise _Reply(404, "not_found", "Couldn't find that formation.")

    def _h_formation_batch_update(self, call: Call) -> Answer:
        app, updates = call.app, call.payload["updates"]
        for update in updates:  # all checked before anything changes
            ptype, image = update["type"], update.get("docker_image")
            if image is not None and (ptype, image) not in app.pushed:
                where = f"registry.heroku.com/{app.name}/{ptype}"
                raise _Reply(
                    422, "invalid_params", f"Image {image[:19]} was not pushed to {where}."
                )
            if image is None and ptype not in app.formation:
                raise _Reply(404, "not_found", "Couldn't find that formation.")
        now = _now_iso()
        images: dict[str, str] = {}
        changed = []
        for update in updates:
            ptype = update["type"]
            quantity = 1 if ptype == "web" else 0
            entry = app.formation.setdefault(ptype, self._formation_entry(ptype, quantity, now))
            entry["quantity"] = update.get("quantity", entry["quantity"])
            entry["updated_at"] = now
            if "docker_image" in update:
                images[ptype] = update["docker_image"]
            changed.append(self._formation_json(app, entry))
        if images:
            self._new_release(app, _deployed(images), {**self._latest_images(app), **images})
        return 200, changed, {}

    def _h_release_list(self, call: Call) -> Answer:
        items = [self._release_json(call.app, r) for r in call.app.releases]
        return self._page("release", items, call.headers)

    def _release_of(self, app: FakeApp, ident: str) -> FakeRelease:
        for release in app.releases:
            if ident in (release.id, str(release.version)):
                return release
        raise _Reply(404, "not_found", "Couldn't find that release.")

    def _h_release_info(self, call: Call) -> Answer:
        return 200, self._release_json(call.app, self._release_of(call.app, call.params[0])), {}

    def _h_config_var_info_for_app(self, call: Call) -> Answer:
        return 200, dict(call.app.config), {}

    def _h_config_var_info_for_app_release(self, call: Call) -> Answer:
        return 200, dict(self._release_of(call.app, call.params[0]).config), {}

    def _h_config_var_update(self, call: Call) -> Answer:
        return 200, dict(self._change_config(call.app, call.payload).config), {}

    def _h_dyno_create(self, call: Call) -> Answer:
        app, payload = call.app, call.payload
        current = [r for r in app.releases if r.current]
        if not current:
            raise _Reply(422, "invalid_params", "The app has no release to run a dyno from.")
        script = app.next_dynos.popleft() if app.next_dynos else DynoScript()
        kind = payload.get("type", "run")
        name = f"{kind}.{next(self._dyno_numbers)}"
        now = time.monotonic()
        start = now + script.start_s
        end = start + script.line_s * (len(script.output) + 1)
        dyno = FakeDyno(
            id=_uuid(),
            name=name,
            command=payload["command"],
            type=kind,
            size=payload.get("size", "Basic"),
            created_at=_now_iso(),
            release=current[-1],
            start_at=start,
            end_at=end,
            exit_code=script.exit_code,
            linger_s=script.linger_s,
        )
        app.dynos[name] = dyno
        self._log(app, "heroku", name, f"Starting process with command `{dyno.command}`", start)
        self._log(app, "heroku", name, "State changed from starting to up", start)
        for i, line in enumerate(script.output):
            self._log(app, "app", name, line, start + script.line_s * (i + 1))
        if script.exit_code is not None:
            self._log(app, "heroku", name, f"Process exited with status {script.exit_code}", end)
            self._log(app, "heroku", name, "State changed from up to complete", end)
        return 201, self._dyno_json(app, dyno, now), {}

    def _h_dyno_info(self, call: Call) -> Answer:
        for dyno in call.app.dynos.values():
            if call.params[0] in (dyno.name, dyno.id):
                return 200, self._dyno_json(call.app, dyno, time.monotonic()), {}
        raise _Reply(404, "not_found", "Couldn't find that process.")

    def _h_dyno_list(self, call: Call) -> Answer:
        now = time.monotonic()
        items = [self._dyno_json(call.app, d, now) for d in call.app.dynos.values()]
        return self._page("dyno", items, call.headers)

    def _h_log_session_create(self, call: Call) -> Answer:
        lines = call.payload.get("lines", 100)
        if not 1 <= lines <= 1500:
            raise _Reply(422, "invalid_params", "lines must be between 1 and 1500.")
        session = LogSession(
            id=_uuid(),
            app=call.app.name,
            dyno=call.payload.get("dyno_name"),
            source=call.payload.get("source"),
            lines=lines,
            tail=call.payload.get("tail", False),
        )
        self.sessions[session.id] = session
        now = _now_iso()
        url = f"{self.url}/logplex/sessions/{session.id}?srv=1325419200"
        answer = {"created_at": now, "id": session.id, "logplex_url": url, "updated_at": now}
        return 201, answer, {}

    # -- ranges --------------------------------------------------------------------------

    def _page(self, resource: str, items: list[dict[str, Any]], headers: dict[str, str]) -> Answer:
        allowed = RANGES[resource]
        spec = _parse_range(headers.get("range"), allowed, self.page_size, self.max_page)
        attr, first, exclusive, last, size, desc = spec
        keyed = sorted(items, key=lambda item: item[attr], reverse=desc)

        def after_first(value: Any) -> bool:
            if first is None:
                return True
            if desc:
                return value < first if exclusive else value <= first
            return value > first if exclusive else value >= first

        def before_last(value: Any) -> bool:
            if last is None:
                return True
            return value >= last if desc else value <= last

        chosen = [i for i in keyed if after_first(i[attr]) and before_last(i[attr])]
        page = chosen[:size]
        extra = {"Accept-Ranges": ", ".join(allowed)}
        if len(chosen) > size:
            end = "" if last is None else str(last)
            order = ", order=desc" if desc else ""
            extra["Next-Range"] = f"{attr} ]{page[-1][attr]}..{end}; max={size}{order}"
            return 206, page, extra
        return 200, page, extra

    # -- streams ---------------------------------------------------------------------------

    async def _serve_release_output(
        self, send: Any, method: str, path: str, headers: dict[str, str]
    ) -> None:
        release_id = path.rsplit("/", 1)[-1]
        with self.lock:
            self.stream_requests.append(Seen(method, path, headers, None))
            found = [(a, r) for a in self.apps.values() for r in a.releases if r.id == release_id]
            drop_after = self._stream_drops.popleft() if self._stream_drops else None
        if not found or not found[0][1].has_phase or method != "GET":
            await _send_text(send, 404, b"Not Found\n")
            return
        app, release = found[0]
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", headers.get("range", "").strip())
        if ranged:
            start = int(ranged.group(1))
        status = 206 if ranged else 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        sent = start
        lines_sent = 0
        stop_at = time.monotonic() + self.stream_max_s
        while not self.closing.is_set() and time.monotonic() < stop_at:
            with self.lock:
                self._settle(app)
                now = time.monotonic()
                visible = [line for at, line in release.output if at <= now]
                done = release.status != "pending"
            text = "".join(line + "\n" for line in visible).encode()
            if sent < len(text):
                chunk_lines = text[sent:].splitlines(keepends=True)
                for chunk in chunk_lines:
                    if drop_after is not None and lines_sent >= drop_after:
                        return  # started, not completed: the server closes the connection
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                    lines_sent += 1
            if done and sent >= len(text):
                break
            await asyncio.sleep(self.stream_tick_s)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _serve_logplex(
        self, send: Any, method: str, path: str, headers: dict[str, str]
    ) -> None:
        session_id = path.rsplit("/", 1)[-1]
        with self.lock:
            self.stream_requests.append(Seen(method, path, headers, None))
            session = self.sessions.get(session_id)
        if session is None or method != "GET":
            await _send_text(send, 404, b"Not Found\n")
            return
        app = self.apps[session.app]

        def wanted(line: LogLine) -> bool:
            return (session.dyno is None or line.dyno == session.dyno) and (
                session.source is None or line.source == session.source
            )

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        with self.lock:
            now = time.monotonic()
            history = [x for x in app.log if x.at <= now and wanted(x)][-session.lines :]
            sent = {x.seq for x in history}
        for line in history:
            await send({"type": "http.response.body", "body": _logplex(line), "more_body": True})
        stop_at = time.monotonic() + self.stream_max_s
        while session.tail and not self.closing.is_set() and time.monotonic() < stop_at:
            await asyncio.sleep(self.stream_tick_s)
            with self.lock:
                now = time.monotonic()
                fresh = [x for x in app.log if x.at <= now and x.seq not in sent and wanted(x)]
                sent.update(x.seq for x in fresh)
            for line in fresh:
                await send(
                    {"type": "http.response.body", "body": _logplex(line), "more_body": True}
                )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# -- helpers ---------------------------------------------------------------------------

_SCHEMA: Schema | None = None
_SCHEMA_LOCK = threading.Lock()


def default_schema() -> Schema:
    """The schema, loaded and tightened once per process (it is 574 KB)."""
    global _SCHEMA
    with _SCHEMA_LOCK:
        if _SCHEMA is None:
            _SCHEMA = Schema()
        return _SCHEMA


def _feature_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"feature/{name}"))


def _deployed(images: dict[str, str]) -> str:
    named = ", ".join(f"{t} ({i.removeprefix('sha256:')[:12]})" for t, i in sorted(images.items()))
    return f"Deployed {named}"


def _logplex(line: LogLine) -> bytes:
    return f"{line.stamp} {line.source}[{line.dyno}]: {line.text}\n".encode()


def _parse_range(
    header: str | None, allowed: tuple[str, ...], default_size: int, max_size: int
) -> tuple[str, Any, bool, Any, int, bool]:
    """`attr [first]..[last]; max=N, order=desc` → (attr, first, exclusive, last, max, desc)."""
    if header is None or not header.strip():
        return "id", None, False, None, min(default_size, max_size), False
    match = re.fullmatch(
        r"\s*(?P<attr>\w+)\s+(?P<ex>\]?)(?P<first>[^.;]*)\.\.(?P<last>[^;]*?)\s*(?:;(?P<params>.*))?",
        header,
    )
    if match is None or match.group("attr") not in allowed:
        raise _Reply(
            416,
            "requested_range_not_satisfiable",
            f"Invalid Range header; ranges accepted: {', '.join(allowed)}.",
        )
    attr = match.group("attr")
    size, desc = min(default_size, max_size), False
    for param in re.split(r"[;,]", match.group("params") or ""):
        key, _, value = param.strip().partition("=")
        if not key:
            continue
        if key == "max" and value.isdigit() and int(value) >= 1:
            size = min(int(value), max_size)
        elif key == "order" and value in ("asc", "desc"):
            desc = value == "desc"
        else:
            raise _Reply(
                416,
                "requested_range_not_satisfiable",
                f"Invalid Range parameter {param.strip()!r}.",
            )

    def value_of(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            return None
        if attr == "version":
            if not raw.isdigit():
                raise _Reply(416, "requested_range_not_satisfiable", "Invalid version in Range.")
            return int(raw)
        return raw

    return (
        attr,
        value_of(match.group("first")),
        bool(match.group("ex")),
        value_of(match.group("last")),
        size,
        desc,
    )


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return body[:MAX_BODY]
        if not message.get("more_body", False):
            return body


async def _send_json(send: Any, status: int, payload: Any, extra: dict[str, str]) -> None:
    data = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"request-id", str(uuid.uuid4()).encode()),
        *((k.lower().encode(), v.encode()) for k, v in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _send_text(send: Any, status: int, data: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _start_and_drop(send: Any) -> None:
    """Start a response and never finish it: uvicorn then closes the connection, so the
    client sees it break with no answer it can read (the change may have been applied)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
        }
    )


def iter_routes(schema: Schema) -> Iterator[Link]:
    """The schema links the fake serves."""
    return (link for link in schema.links if link.key in IMPLEMENTED)
