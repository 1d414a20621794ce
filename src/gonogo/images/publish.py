"""Publishing an image: tag templates, the version source, `latest`, and what a digest went to.

Everything here is pure or read-only (git and the ledger are read, nothing is written), so
`gonogo publish --dry-run` and the tests can ask the same questions the real run asks.

Tag templates (`[publish].tags`) use the fields version, sha, short_sha, engine, env and
date; build arguments (`[build].args`) use env.vars.NAME, env.name, sha and short_sha. An
unknown field is a configuration error at load time, so a typo never reaches a registry.
A tag whose template names the content (version, sha or short_sha) is immutable: if the
registry already gives it another digest, publishing refuses rather than moving it.
"""

from __future__ import annotations

import re
import string
import subprocess
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gonogo.errors import GonogoError

if TYPE_CHECKING:
    from gonogo.config.schema import Config
    from gonogo.ledger.store import Ledger, ReleaseRow

TAG_FIELDS = ("version", "sha", "short_sha", "engine", "env", "date")
ARG_FIELDS = ("env.vars.NAME", "env.name", "sha", "short_sha")
# Tags that name the content; the others (latest, docker-{engine}, {env}, {date}) may move.
IMMUTABLE_FIELDS = frozenset({"version", "sha", "short_sha"})
LATEST = "latest"
VERIFIED_IN_PRODUCTION = "verified-in-production"
NO_REQUIREMENT = "none"
SHORT_SHA = 7
GIT_TIMEOUT_S = 60.0

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ENV_VAR_FIELD = re.compile(r"^env\.vars\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_SAMPLE = {
    "version": "1.2.3",
    "sha": "0" * 40,
    "short_sha": "0" * SHORT_SHA,
    "engine": "buildah",
    "env": "production",
    "date": "20260101",
}


class TemplateError(GonogoError):
    """A tag or build-argument template that cannot be rendered. Exit 1."""


# -- templates ---------------------------------------------------------------------------------


def template_fields(template: str) -> list[str]:
    """The `{field}` names in a template, in order; ValueError for a malformed one.

    `{{` and `}}` are literal braces. Format specs and conversions (`{sha:.8}`, `{sha!r}`)
    are refused: a template says which value goes where, nothing more.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from None
    fields = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            raise ValueError(f"empty field {{}} in {template!r}; name one")
        if spec or conversion:
            raise ValueError(f"field {{{name}}} in {template!r}: format specs are not supported")
        fields.append(name)
    return fields


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with each field replaced; KeyError names a field with no value."""
    out = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(values[name])
    return "".join(out)


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def check_tag_template(template: str) -> str:
    """The template, if its fields are known and it renders to a valid tag (for the schema)."""
    for name in template_fields(template):
        if name not in TAG_FIELDS:
            raise ValueError(f"unknown field {{{name}}} (known: {', '.join(TAG_FIELDS)})")
    sample = render(template, _SAMPLE)
    if not valid_tag(sample):
        raise ValueError(
            f"{template!r} renders to {sample!r}, not a valid tag (letters, digits, '_', '.', "
            "'-', at most 128, not starting with '.' or '-')"
        )
    return template


def check_arg_template(template: str) -> str:
    """The template, if every field is env.vars.NAME, env.name, sha or short_sha."""
    for name in template_fields(template):
        if name not in ("env.name", "sha", "short_sha") and not _ENV_VAR_FIELD.match(name):
            raise ValueError(f"unknown field {{{name}}} (known: {', '.join(ARG_FIELDS)})")
    return template


def is_immutable(template: str) -> bool:
    """True for a tag that names the content (v{version}, git-{sha}): it must never move."""
    try:
        return bool(IMMUTABLE_FIELDS & set(template_fields(template)))
    except ValueError:
        return False


def render_build_args(
    args: Mapping[str, str], *, env: str | None, env_vars: Mapping[str, str], sha: str
) -> dict[str, str]:
    """`[build].args` for one environment; a one-line error for a value it cannot give."""
    rendered = {}
    for key, template in args.items():
        values = {"sha": sha, "short_sha": sha[:SHORT_SHA]}
        for name in template_fields(template):
            match = _ENV_VAR_FIELD.match(name)
            if name == "env.name" or match:
                if env is None:
                    raise TemplateError(
                        f"build.args.{key} uses {{{name}}}: name the environment "
                        f"(`gonogo build ENV`)"
                    )
                if name == "env.name":
                    values[name] = env
                    continue
                assert match is not None
                var = match.group("name")
                if var not in env_vars:
                    known = ", ".join(sorted(env_vars)) or "none"
                    raise TemplateError(
                        f"build.args.{key} uses {{{name}}} but environments.{env}.vars has no "
                        f"{var} (it has: {known})"
                    )
                values[name] = env_vars[var]
        try:
            rendered[key] = render(template, values)
        except (KeyError, ValueError) as exc:  # the schema checked it; belt and braces
            raise TemplateError(f"build.args.{key}: cannot render {template!r} ({exc})") from None
    return rendered


def uses_env(args: Mapping[str, str]) -> bool:
    """True if any build argument depends on the environment."""
    return any(
        name == "env.name" or _ENV_VAR_FIELD.match(name)
        for template in args.values()
        for name in template_fields(template)
    )


# -- the version -------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise GonogoError("git is not installed or not on PATH; install git") from None
    except subprocess.TimeoutExpired:
        raise GonogoError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g}s in {root}") from None


def _show(root: Path, sha: str, path: str) -> str | None:
    proc = _git(root, "show", f"{sha}:{path}")
    return proc.stdout if proc.returncode == 0 else None


def resolve_version(root: Path, sha: str, source: str) -> str:
    """{version} for `sha` from the configured source; a one-line error when there is none.

    git-tag: `git describe --tags` with a leading v dropped: "1.2.3" on the tagged commit,
    "1.2.3-4-gabc1234" four commits later. pyproject and file:PATH are read at the commit,
    not from the working tree.
    """
    short = sha[:SHORT_SHA]
    if source == "git-tag":
        # The tag itself on a tagged commit; after it, git's own name for the commit
        # ("1.2.3-4-gabc1234"), so a later commit never takes over v1.2.3.
        proc = _git(root, "describe", "--tags", sha)
        tag = proc.stdout.strip()
        if proc.returncode != 0 or not tag:
            raise GonogoError(
                f"no version for {short}: no git tag reaches it (git describe --tags); tag the "
                f'release (git tag v1.2.3 {short}) or set [publish].version = "pyproject" or '
                '"file:PATH"'
            )
        version = tag[1:] if tag[:1] in ("v", "V") and tag[1:2].isdigit() else tag
        where = f"git tag {tag}"
    elif source == "pyproject":
        text = _show(root, sha, "pyproject.toml")
        if text is None:
            raise GonogoError(f"no version for {short}: pyproject.toml is not in that commit")
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise GonogoError(f"no version for {short}: pyproject.toml: {exc}") from None
        found = (doc.get("project") or {}).get("version") or (
            ((doc.get("tool") or {}).get("poetry") or {}).get("version")
        )
        if not isinstance(found, str) or not found.strip():
            raise GonogoError(
                f"no version for {short}: pyproject.toml has no [project].version (a dynamic "
                'version is not read); set [publish].version = "git-tag" or "file:PATH"'
            )
        version, where = found.strip(), "pyproject.toml [project].version"
    elif source.startswith("file:"):
        path = source[5:].strip()
        text = _show(root, sha, path)
        first = (text or "").strip().splitlines()
        if not first:
            state = "is not in that commit" if text is None else "is empty"
            raise GonogoError(f"no version for {short}: {path} {state}")
        version, where = first[0].strip(), path
    else:  # the schema allows nothing else
        raise GonogoError(f"[publish].version: unknown source {source!r}")
    if not valid_tag(version):
        raise GonogoError(
            f"version {version!r} (from {where}) cannot be part of a tag: use letters, digits, "
            "'_', '.' and '-' only"
        )
    return version


# -- tags --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagPlan:
    tag: str
    template: str
    # push: will be pushed; skip: held back, `reason` says why.
    action: Literal["push", "skip"]
    reason: str = ""
    immutable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "template": self.template,
            "action": self.action,
            "reason": self.reason,
            "immutable": self.immutable,
        }


def tag_values(
    *, sha: str, version: str | None, engine: str, env: str, now: datetime | None = None
) -> dict[str, str]:
    values = {
        "sha": sha,
        "short_sha": sha[:SHORT_SHA],
        "engine": engine,
        "env": env,
        "date": (now or datetime.now(UTC)).strftime("%Y%m%d"),
    }
    if version is not None:
        values["version"] = version
    return values


def needs_version(templates: Iterable[str]) -> bool:
    return any("version" in template_fields(t) for t in templates)


def render_tags(
    templates: Sequence[str], values: Mapping[str, str], latest: tuple[bool, str]
) -> list[TagPlan]:
    """One plan per distinct tag, in template order; `latest` is pushed only if allowed."""
    plans: list[TagPlan] = []
    seen: set[str] = set()
    for template in templates:
        try:
            check_tag_template(template)
            tag = render(template, values)
        except ValueError as exc:
            raise TemplateError(f"tag {template!r}: {exc}") from None
        if not valid_tag(tag):
            raise TemplateError(f"tag {template!r} renders to {tag!r}, which is not a valid tag")
        if tag in seen:
            continue
        seen.add(tag)
        immutable = is_immutable(template)
        if tag == LATEST and not latest[0]:
            plans.append(TagPlan(tag, template, "skip", latest[1], immutable))
        else:
            reason = latest[1] if tag == LATEST else ""
            plans.append(TagPlan(tag, template, "push", reason, immutable))
    return plans


def latest_allowed(ledger: Ledger, config: Config, sha: str) -> tuple[bool, str]:
    """Whether `latest` may move to `sha`, and why (the ledger decides, never a guess)."""
    assert config.publish is not None
    requires = config.publish.latest_requires
    short = sha[:SHORT_SHA]
    if requires == NO_REQUIREMENT:
        return True, 'latest_requires = "none"'
    if requires == VERIFIED_IN_PRODUCTION:
        envs = [n for n, e in config.environments.items() if e.protected]
        if not envs:
            return False, (
                "latest_requires = verified-in-production, but no environment is protected; "
                "name the environment in [publish].latest_requires"
            )
    elif requires in config.environments:
        envs = [requires]
    else:
        known = ", ".join(sorted(config.environments))
        raise GonogoError(
            f"[publish].latest_requires: unknown environment {requires!r} (use "
            f'"verified-in-production", "none" or one of: {known})'
        )
    for env in envs:
        rel = ledger.verified_release_of(env, sha)
        if rel is not None:
            return True, f"{short} verified on {env} {rel.label} at {rel.verified_at}"
    where = " or ".join(envs)
    return False, f"{short} has no verified release on {where} yet; latest stays where it is"


# -- where a digest went -----------------------------------------------------------------------


def _payload(row: Mapping[str, Any]) -> dict[str, Any]:
    import json

    raw = row.get("payload")
    if isinstance(raw, str):
        try:
            doc = json.loads(raw)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def image_events(ledger: Ledger, kind: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(event row, payload) for every ledger event of `kind`, oldest first."""
    return [(row, _payload(row)) for row in ledger.events(kind=kind)]


def verified_image(
    ledger: Ledger, env: str, sha: str
) -> tuple[ReleaseRow | None, tuple[dict[str, Any], dict[str, Any]] | None]:
    """The newest verified release of `sha` on `env` (the one deploy promotes and the
    promoted-from gate accepts) and the `image.built` event of its artifact.

    The event is None when the release's artifact is not an image built here: the local
    provider releases source tarballs, and an image of the same SHA that was never released
    there is not the thing that was verified.
    """
    release = ledger.verified_release_of(env, sha)
    if release is None:
        return None, None
    for row, payload in reversed(image_events(ledger, "image.built")):
        if payload.get("digest") == release.artifact and payload.get("sha") == sha:
            return release, (row, payload)
    return release, None


def digest_history(ledger: Ledger, digest: str, envs: Iterable[str]) -> dict[str, Any]:
    """Which environments an image digest was built for, published for and verified on.

    `verified` comes from releases whose artifact is this digest (a provider that releases
    images records the image digest as the release's artifact).
    """
    built = sorted(
        {
            str(p.get("env") or "")
            for _, p in image_events(ledger, "image.built")
            if p.get("digest") == digest
        }
    )
    published: list[dict[str, Any]] = []
    for row, p in image_events(ledger, "image.published"):
        if p.get("digest") == digest:
            published.append(
                {
                    "env": p.get("env"),
                    "repository": p.get("repository"),
                    "tags": p.get("tags", []),
                    "at": row.get("ts"),
                    "run_id": row.get("run_id"),
                }
            )
    verified = []
    for env in sorted(envs):
        for rel in ledger.releases(env):
            if rel.artifact == digest and rel.verified_at is not None:
                verified.append({"env": env, "release": rel.label, "at": rel.verified_at})
    return {
        "digest": digest,
        "built_for": [b or None for b in built],
        "published": published,
        "published_envs": sorted({str(p["env"]) for p in published if p.get("env")}),
        "verified": verified,
    }


__all__ = [
    "ARG_FIELDS",
    "LATEST",
    "TAG_FIELDS",
    "TagPlan",
    "TemplateError",
    "check_arg_template",
    "check_tag_template",
    "digest_history",
    "image_events",
    "is_immutable",
    "latest_allowed",
    "needs_version",
    "render",
    "render_build_args",
    "render_tags",
    "resolve_version",
    "tag_values",
    "template_fields",
    "uses_env",
    "verified_image",
]
