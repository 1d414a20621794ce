"""Typed views of the Heroku Platform API objects the client reads, and the client's errors.

Only the fields gonogo uses are kept. `from_api` reads one JSON object as the API sends it
(the shapes are those of the public JSON hyper-schema: `release`, `formation`, `dyno`,
`app`, `app-feature`) and raises `HerokuError` when a field it needs is missing or of the
wrong type, so a changed API fails with one line instead of a KeyError deep in a provider.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gonogo.errors import GonogoError

__all__ = [
    "App",
    "ConfigVarDiff",
    "Dyno",
    "Feature",
    "FormationEntry",
    "HerokuError",
    "HerokuOutcomeUnknown",
    "HerokuUnavailable",
    "Release",
    "StreamResult",
    "short_image_id",
]

# A container release's description names each process type with the first 12 hex digits
# of its image id: "Deployed web (0123456789ab), worker (ba9876543210)". The schema has
# no field for the image of a container release (`slug` is null, `artifacts` only holds
# slug and OCI image ids), so this is the only place the API says which image was released.
_DEPLOYED = re.compile(r"([-\w]{1,128}) \(([0-9a-f]{12})\)")
_ROLLBACK = re.compile(r"^Rollback to v(\d+)$")
_DEPLOY_COMMIT = re.compile(r"^Deploy ([0-9a-f]{7,40})\b")
_IMAGE_ID = re.compile(r"^sha256:([0-9a-f]{64})$")

ReleaseStatus = Literal["pending", "succeeded", "failed", "expired"]
_STATUSES: tuple[ReleaseStatus, ...] = ("pending", "succeeded", "failed", "expired")


class HerokuError(GonogoError):
    """The Platform API refused a request, or answered something unreadable. One line.

    `status` is the HTTP status (None when there was no answer), `error_id` Heroku's own
    error id (`not_found`, `invalid_params`, ...) when the body carried one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, error_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id

    def __str__(self) -> str:
        return self.message


class HerokuUnavailable(HerokuError):
    """The API could not be reached, timed out, or kept answering 429/5xx until the deadline."""


class HerokuOutcomeUnknown(HerokuUnavailable):
    """A change (release, rollback, one-off dyno) was sent, no answer came back, and its
    effect did not show up in time: it may or may not have been made, and it was not sent
    again. The message says what to check before trying again."""


def short_image_id(image_id: str) -> str:
    """`sha256:<64 hex>` → its first 12 hex digits, as release descriptions show it."""
    match = _IMAGE_ID.match(image_id)
    if match is None:
        raise HerokuError(
            f"image id {image_id[:80]!r} is not a config digest (sha256: and 64 hex digits)"
        )
    return match.group(1)[:12]


def _bad(kind: str, key: str) -> HerokuError:
    return HerokuError(f"heroku API: malformed {kind}: field {key!r} missing or of wrong type")


def _field(obj: Mapping[str, Any], kind: str, key: str, typ: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    # bool is an int in Python; a version or quantity that is true/false is still malformed.
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        raise _bad(kind, key)
    return value


def _optional(obj: Mapping[str, Any], kind: str, key: str, typ: type) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, typ):
        raise _bad(kind, key)
    return value


def _name_of(obj: Mapping[str, Any], kind: str, key: str) -> str | None:
    nested = obj.get(key)
    if nested is None:
        return None
    if not isinstance(nested, Mapping):
        raise _bad(kind, key)
    name = nested.get("name")
    return name if isinstance(name, str) else None


def _object(obj: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise HerokuError(f"heroku API: malformed {kind}: not a JSON object")
    return obj


@dataclass(frozen=True)
class App:
    id: str
    name: str
    region: str | None
    stack: str | None
    web_url: str | None
    maintenance: bool
    released_at: str | None
    # What the next release runs on: `heroku stack:set` changes it, `stack` follows on release.
    build_stack: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> App:
        obj = _object(raw, "app")
        return cls(
            id=_field(obj, "app", "id", str),
            name=_field(obj, "app", "name", str),
            region=_name_of(obj, "app", "region"),
            stack=_name_of(obj, "app", "stack"),
            web_url=_optional(obj, "app", "web_url", str),
            maintenance=bool(obj.get("maintenance", False)),
            released_at=_optional(obj, "app", "released_at", str),
            build_stack=_name_of(obj, "app", "build_stack"),
        )

    @property
    def runs_images(self) -> bool | None:
        """Whether a container release can run here (the container stack, now or from the
        next release on); None when the API did not say."""
        stacks = {s for s in (self.stack, self.build_stack) if s}
        return "container" in stacks if stacks else None


@dataclass(frozen=True)
class Feature:
    name: str
    enabled: bool
    state: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> Feature:
        obj = _object(raw, "app feature")
        return cls(
            name=_field(obj, "app feature", "name", str),
            enabled=_field(obj, "app feature", "enabled", bool),
            state=_optional(obj, "app feature", "state", str),
        )


@dataclass(frozen=True)
class FormationEntry:
    """One process type of the app's formation (`web`, `worker`, `release`, ...)."""

    type: str
    quantity: int
    size: str | None
    command: str | None

    @classmethod
    def from_api(cls, raw: Any) -> FormationEntry:
        obj = _object(raw, "formation")
        size = _name_of(obj, "formation", "dyno_size") or _optional(obj, "formation", "size", str)
        return cls(
            type=_field(obj, "formation", "type", str),
            quantity=_field(obj, "formation", "quantity", int),
            size=size,
            command=_optional(obj, "formation", "command", str),
        )


@dataclass(frozen=True)
class Release:
    """A release as the ledger needs it: version, image, description, status, current."""

    id: str
    version: int
    status: ReleaseStatus
    current: bool
    description: str
    created_at: str | None
    output_stream_url: str | None
    slug_id: str | None
    # process type → first 12 hex digits of its image id, parsed from the description.
    images: tuple[tuple[str, str], ...]
    eligible_for_rollback: bool | None

    @classmethod
    def from_api(cls, raw: Any) -> Release:
        obj = _object(raw, "release")
        status = _field(obj, "release", "status", str)
        if status not in _STATUSES:
            raise _bad("release", "status")
        slug = obj.get("slug")
        slug_id = slug.get("id") if isinstance(slug, Mapping) else None
        description = _optional(obj, "release", "description", str) or ""
        return cls(
            id=_field(obj, "release", "id", str),
            version=_field(obj, "release", "version", int),
            status=status,
            current=bool(obj.get("current", False)),
            description=description,
            created_at=_optional(obj, "release", "created_at", str),
            output_stream_url=_optional(obj, "release", "output_stream_url", str),
            slug_id=slug_id if isinstance(slug_id, str) else None,
            images=parse_deployed_images(description),
            eligible_for_rollback=_optional(obj, "release", "eligible_for_rollback", bool),
        )

    @property
    def finished(self) -> bool:
        return self.status != "pending"

    @property
    def image_id(self) -> str | None:
        """The short image id of `web`, or of the only process type released."""
        images = dict(self.images)
        if "web" in images:
            return images["web"]
        return next(iter(images.values())) if len(images) == 1 else None

    @property
    def rollback_of(self) -> int | None:
        """For "Rollback to v12": 12."""
        match = _ROLLBACK.match(self.description)
        return int(match.group(1)) if match else None

    @property
    def commit(self) -> str | None:
        """For a git/build deploy ("Deploy 575bfa8"): the commit it names."""
        match = _DEPLOY_COMMIT.match(self.description)
        return match.group(1) if match else None

    def has_images(self, process_type_to_image: Mapping[str, str]) -> bool:
        """True when this release deployed every given process type with the given image."""
        mine = dict(self.images)
        return bool(process_type_to_image) and all(
            mine.get(ptype) == short_image_id(image)
            for ptype, image in process_type_to_image.items()
        )


def parse_deployed_images(description: str) -> tuple[tuple[str, str], ...]:
    if not description.startswith("Deployed "):
        return ()
    return tuple(
        (m.group(1), m.group(2)) for m in _DEPLOYED.finditer(description[len("Deployed ") :])
    )


@dataclass(frozen=True)
class Dyno:
    id: str
    name: str
    type: str
    command: str
    state: str
    size: str | None
    created_at: str | None
    release_version: int | None

    @classmethod
    def from_api(cls, raw: Any) -> Dyno:
        obj = _object(raw, "dyno")
        release = obj.get("release")
        version = release.get("version") if isinstance(release, Mapping) else None
        return cls(
            id=_field(obj, "dyno", "id", str),
            name=_field(obj, "dyno", "name", str),
            type=_field(obj, "dyno", "type", str),
            command=_field(obj, "dyno", "command", str),
            state=_field(obj, "dyno", "state", str),
            size=_optional(obj, "dyno", "size", str),
            created_at=_optional(obj, "dyno", "created_at", str),
            release_version=version if isinstance(version, int) else None,
        )


@dataclass(frozen=True)
class ConfigVarDiff:
    """Names only: the values of config vars are secrets and never leave the client."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        """`added, removed, changed = diff`."""
        return iter((self.added, self.removed, self.changed))


@dataclass(frozen=True)
class StreamResult:
    """How a bounded read of a log or release-output stream ended.

    `ended` is "closed" (the server finished it), "stopped" (the caller's callback asked to
    stop), "deadline" (time ran out), "idle" (nothing came for `stream_idle_s`) or
    "dropped" (the connection broke). `bytes_read` is the offset just past the last whole
    line delivered, where a resumed read (`Range: bytes=N-`) starts.
    """

    lines: int
    ended: Literal["closed", "stopped", "deadline", "idle", "dropped"]
    bytes_read: int = 0
