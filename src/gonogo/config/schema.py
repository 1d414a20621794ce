"""The gonogo.toml schema: one set of pydantic models for loading, validation and docs.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """'150s', '2m', '500ms' or a bare number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '30s', '2m' or '500ms'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("must be a duration such as '30s', '2m' or '500ms'")
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(description="seconds; accepts '30s', '2m', '500ms'"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WorkOrder(Strict):
    pattern: str = "WO-[0-9]+"
    sources: list[Literal["branch", "commit", "pr"]] = ["branch", "commit", "pr"]

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from exc
        return v


class Project(Strict):
    name: str = Field(min_length=1)
    work_order: WorkOrder | None = None


def _tag_template(value: str) -> str:
    from gonogo.images.publish import check_tag_template

    return check_tag_template(value)


def _arg_template(value: str) -> str:
    from gonogo.images.publish import check_arg_template

    return check_arg_template(value)


# A tag such as "v{version}": fields version, sha, short_sha, engine, env, date.
TagTemplate = Annotated[str, AfterValidator(_tag_template)]
# A build argument value such as "{env.vars.NODE_ENV}": fields env.vars.NAME, env.name, sha.
ArgTemplate = Annotated[str, AfterValidator(_arg_template)]


class ImageChecks(Strict):
    """What the built image must look like before it is pushed (gate results image-*)."""

    user_not_root: bool = True
    dirs: list[str] = []
    # Ports the image must EXPOSE: 8000 or "8000/tcp".
    ports: list[int | str] = []
    # The exact ENTRYPOINT the image must have; absent: any ENTRYPOINT or CMD will do.
    entrypoint: list[str] | None = None


class Build(Strict):
    # Relative to the repository root; the build context is `context`, also from the root.
    dockerfile: str = "Dockerfile"
    context: str = "."
    # "auto": Docker when its engine answers, else buildah. `gonogo build --builder` wins.
    builder: Literal["auto", "docker", "buildah"] = "auto"
    timeout: Duration = 1800.0
    args: dict[str, ArgTemplate] = {}
    image: ImageChecks = ImageChecks()

    @field_validator("dockerfile", "context")
    @classmethod
    def _inside_repo(cls, v: str) -> str:
        if not v.strip() or v.startswith("/") or ".." in v.replace("\\", "/").split("/"):
            raise ValueError("must be a path inside the repository (relative, no '..')")
        return v


class Test(Strict):
    command: str = Field(min_length=1)


_RULE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def _rule_names(v: list[str]) -> list[str]:
    for name in v:
        if not _RULE.match(name):
            raise ValueError(
                f"{name!r} is not a lint rule name (lowercase words joined by '-', as "
                "`gonogo migrate ENV lint` prints them)"
            )
    return v


RuleNames = Annotated[list[str], AfterValidator(_rule_names)]


class MigrationsLint(Strict):
    # gonogo's rule names or squawk's: findings of `errors` rules make lint NO-GO, those of
    # `ignore` rules are dropped (for a project whose env.py sets its own lock_timeout).
    errors: RuleNames = []
    ignore: RuleNames = []

    @model_validator(mode="after")
    def _disjoint(self) -> MigrationsLint:
        both = sorted(set(self.errors) & set(self.ignore))
        if both:
            raise ValueError(f"rule(s) {', '.join(both)} cannot be in both errors and ignore")
        return self


class Migrations(Strict):
    tool: Literal["alembic"] = "alembic"
    config: str = "alembic.ini"
    lint: MigrationsLint = MigrationsLint()


class Publish(Strict):
    # registry/name, e.g. "docker.io/acme/app" or "127.0.0.1:5000/acme/app" (no tag).
    repository: str = Field(min_length=1)
    tags: list[TagTemplate] = Field(default=["v{version}", "latest", "git-{sha}"], min_length=1)
    platforms: list[str] = Field(default=["linux/amd64"], min_length=1)
    # Where {version} comes from: "git-tag" (`git describe --tags`, leading v dropped:
    # "1.2.3", or "1.2.3-4-gabc1234" after the tag), "pyproject" ([project].version at the
    # SHA) or "file:PATH" (the file's first line at the SHA).
    version: str = "git-tag"
    # `latest` moves only when this holds: "verified-in-production" (the SHA has a verified
    # release on a protected environment), an environment name, or "none".
    latest_requires: str = Field(default="verified-in-production", min_length=1)
    # Each registry request, retries included, ends by then.
    timeout: Duration = 120.0

    @field_validator("repository")
    @classmethod
    def _no_tag(cls, v: str) -> str:
        name = v.rsplit("/", 1)[-1]
        if "@" in v or ":" in name:
            raise ValueError("must be registry/name, without a tag or digest (see 'tags')")
        return v

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str]) -> list[str]:
        for p in v:
            parts = p.split("/")
            if len(parts) not in (2, 3) or not all(parts):
                raise ValueError(f"{p!r} is not a platform (os/arch or os/arch/variant)")
        if len(set(v)) != len(v):
            raise ValueError("platforms must not repeat")
        return v

    @field_validator("version")
    @classmethod
    def _version_source(cls, v: str) -> str:
        if v in ("git-tag", "pyproject") or (v.startswith("file:") and v[5:].strip()):
            return v
        raise ValueError('must be "git-tag", "pyproject" or "file:PATH"')


class Probe(Strict):
    """One post-deploy check: status code, JSON fields equal to values, a cookie set."""

    name: str = Field(min_length=1)
    path: str
    status: int = Field(default=200, ge=100, le=599)
    json_fields: dict[str, Any] = Field(default={}, alias="json")
    cookie: str | None = None
    timeout: Duration = 5.0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/' (a path on the environment's URL)")
        return v


def default_probes() -> list[Probe]:
    """The playbook's §7 required checks."""
    return [
        Probe(name="health", path="/api/health", json={"status": "healthy"}),
        Probe(name="csrf", path="/api/auth/csrf", cookie="csrf_token"),
        Probe(name="version", path="/api/version", json={"gitSha": "{sha}"}),
    ]


class Verify(Strict):
    deadline: Duration = 150.0
    backoff_start: Duration = 0.1
    backoff_max: Duration = 2.0
    # Consecutive passing rounds required, so an app that flaps is not declared healthy.
    passes: int = Field(default=2, ge=1, le=20)
    probes: list[Probe] = Field(default_factory=default_probes)

    @model_validator(mode="after")
    def _backoff_order(self) -> Verify:
        if self.backoff_start > self.backoff_max:
            raise ValueError("backoff_start must not exceed backoff_max")
        names = [p.name for p in self.probes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"probe names must be unique (repeated: {', '.join(dupes)})")
        return self


def _default_log_patterns() -> dict[str, str]:
    from gonogo.logscan import DEFAULT_PATTERNS

    return dict(DEFAULT_PATTERNS)


class Certify(Strict):
    """`gonogo certify ENV`: where the certificate goes and what the log scan looks for."""

    # The certification file; fields {app} (the environment's app, else the project name),
    # {env} and {project}. Relative paths are from the project root.
    output: str = Field(default=".release/{app}_certified", min_length=1)
    # How many of the live release's most recent log lines are scanned.
    log_lines: int = Field(default=1000, ge=1, le=1_000_000)
    # Name -> regular expression; a log line matching any of them is a NO-GO. Setting this
    # replaces the defaults (a Python traceback, a 5xx in an access or router log line).
    log_patterns: dict[str, str] = Field(default_factory=_default_log_patterns)
    # Matching lines quoted in the evidence and the certificate, per pattern.
    quote: int = Field(default=3, ge=0, le=50)
    # Where the live version's SHA is read: default, the probe whose JSON expects "{sha}",
    # else /api/version's gitSha. `version_field` is a dotted path into the JSON body.
    version_path: str | None = None
    version_field: str | None = Field(default=None, min_length=1)

    @field_validator("output")
    @classmethod
    def _output_fields(cls, v: str) -> str:
        try:
            v.format(app="app", env="env", project="project")
        except (AttributeError, KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"may use only the fields {{app}}, {{env}} and {{project}} ({exc})"
            ) from None
        return v

    @field_validator("log_patterns")
    @classmethod
    def _patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
                raise ValueError(f"pattern name {name!r} must be letters, digits, '_' or '-'")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {name!r} is not a valid regular expression ({exc})"
                ) from None
        return v

    @field_validator("version_path")
    @classmethod
    def _version_path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("must start with '/' (a path on the environment's URL)")
        return v


class Guard(Strict):
    """What must be true before a protected environment is touched."""

    # Variables that must all be set to these exact values (the playbook's ALLOW_PROD=1 and
    # deploy_guard.sh's ALLOW_PROD_DEPLOY=YES); `--confirm <app>` is the typed alternative.
    vars: dict[str, str] = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}


GATE_IDS = (
    "clean-tree",
    "branch-allowed",
    "in-scope",
    "ci-passed",
    "migrations-explicit",
    "migration-approved",
    "migration-tested-upstream",
    "rollback-feasible",
    "schema-compatible",
    "promoted-from",
    "prod-guard",
    "no-blockers",
)


class GitHubSource(Strict):
    """Where a gate asks GitHub. The token is read from the named environment variable."""

    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    token_env: str = "GITHUB_TOKEN"  # noqa: S105 - the name of a variable, not a secret
    api_url: str = "https://api.github.com"
    timeout: Duration = 10.0


class CiPassed(Strict):
    """CI succeeded for the exact SHA. Sources are asked in order; the first with a result
    decides, and no result at all is NO-GO."""

    sources: list[Literal["github", "ledger", "command"]] = ["github", "ledger", "command"]
    github: GitHubSource | None = None
    # A command that exits 0 when CI passed for {sha} (e.g. a script asking your CI server).
    command: str | None = None
    # Check runs / statuses that must be present and successful (default: all reported).
    required: list[str] = []
    timeout: Duration = 60.0


class NoBlockers(Strict):
    """No open issue labelled as a blocker affects the change set."""

    labels: list[str] = ["P0", "P1"]
    github: GitHubSource | None = None
    # A command that exits 0 when nothing blocks {sha} on {env}.
    command: str | None = None
    timeout: Duration = 60.0


class CustomGate(Strict):
    """Any command as a gate: GO on exit 0, NO-GO otherwise (the playbook's plan-sync)."""

    command: str = Field(min_length=1)
    timeout: Duration = 300.0
    # Which commands it guards.
    guards: list[Literal["deploy", "migrate", "rollback", "publish"]] = ["deploy"]
    description: str = ""


class Gates(Strict):
    ci_passed: CiPassed | None = Field(default=None, alias="ci-passed")
    no_blockers: NoBlockers | None = Field(default=None, alias="no-blockers")
    custom: dict[str, CustomGate] = {}

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    @field_validator("custom")
    @classmethod
    def _custom_ids(cls, v: dict[str, CustomGate]) -> dict[str, CustomGate]:
        for name in v:
            if name in GATE_IDS:
                raise ValueError(f"custom gate {name!r} has the name of a built-in gate")
            if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
                raise ValueError(
                    f"custom gate name {name!r} must be lower-case letters, digits and '-'"
                )
        return v


_HEROKU_APP = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$")
_PROCESS_TYPE = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")
_COMMAND_FIELDS = ("revision", "config")


class HerokuSettings(Strict):
    """How a `provider = "heroku"` environment reaches Heroku (`heroku = { ... }`)."""

    # The Platform API; plain http only on 127.0.0.1 (tests), the key goes only over https.
    api_url: str = "https://api.heroku.com"
    # The container registry host[:port] images are pushed to, as <registry>/<app>/<type>.
    registry: str = "registry.heroku.com"
    # The process types released with the image (each gets the same image id).
    process_types: list[str] = Field(default=["web"], min_length=1)
    # What a one-off dyno runs for `gonogo migrate ENV apply` (one per revision) and for
    # `gonogo rollback ENV --db`: fields {revision} and {config} ([migrations].config).
    migrate_command: str = "python -m alembic -c {config} upgrade {revision}"
    downgrade_command: str = "python -m alembic -c {config} downgrade {revision}"
    # How long a release (its release phase) may take before its outcome counts as unknown.
    release_timeout: Duration = 600.0
    # How long a migration dyno may run before its exit status counts as unknown (a failure).
    migrate_timeout: Duration = 1800.0
    # Each Platform API call, retries included, ends by then.
    api_timeout: Duration = 60.0
    # The variable holding the API key (also the registry password, user "_").
    api_key_env: str = Field(default="HEROKU_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("must be an http(s) URL such as https://api.heroku.com")
        return v.rstrip("/")

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", v):
            raise ValueError("must be a registry host[:port] such as registry.heroku.com")
        return v

    @field_validator("process_types")
    @classmethod
    def _process_types(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _PROCESS_TYPE.match(name) or len(name) > 64:
                raise ValueError(
                    f"{name!r} is not a process type (lower-case letters, digits, '-' or '_')"
                )
        if len(set(v)) != len(v):
            raise ValueError("process types must not repeat")
        return v

    @field_validator("migrate_command", "downgrade_command")
    @classmethod
    def _command(cls, v: str) -> str:
        import string

        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"is not a valid command template ({exc})") from None
        unknown = sorted(f for f in fields if f not in _COMMAND_FIELDS)
        if unknown:
            raise ValueError(
                f"may use only the fields {{revision}} and {{config}} (not {{{unknown[0]}}})"
            )
        if "revision" not in fields:
            raise ValueError("must contain {revision} (the revision each dyno goes to)")
        return v


class Environment(Strict):
    provider: Literal["local", "heroku"] = "local"
    app: str | None = None
    url: str | None = None
    port: int | None = Field(default=None, ge=1024, le=65535)
    branches: list[str] = []
    vars: dict[str, str] = {}
    protected: bool = False
    guard: Guard = Guard()
    promote_from: str | None = None
    verify: Verify | None = None
    # The name of the variable that holds this environment's database URL (e.g. a
    # PostgreSQL URL with its password): the URL itself never goes into gonogo.toml. Unset,
    # a local environment gets a SQLite file of its own.
    database_url_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Gates that guard this environment; default: every built-in gate that applies, plus
    # every configured custom gate. Listing them is how a gate is switched off.
    gates: list[str] | None = None
    # provider = "heroku" only; defaults when absent.
    heroku: HerokuSettings | None = None

    @model_validator(mode="after")
    def _provider_needs(self) -> Environment:
        if self.provider == "local" and self.port is None and self.url is None:
            raise ValueError("a local environment needs 'port' (the port its app listens on)")
        if self.provider == "heroku" and not self.app:
            raise ValueError("a heroku environment needs 'app' (the Heroku app name)")
        if self.provider == "heroku" and self.app and not _HEROKU_APP.match(self.app):
            raise ValueError(
                f"app {self.app!r} is not a Heroku app name (3-30 lower-case letters, digits "
                "and '-', starting with a letter)"
            )
        if self.provider != "heroku" and self.heroku is not None:
            raise ValueError("'heroku' settings apply only to provider = \"heroku\"")
        return self

    @property
    def heroku_settings(self) -> HerokuSettings:
        """The heroku settings, defaults filled in."""
        return self.heroku if self.heroku is not None else HerokuSettings()


class Config(Strict):
    project: Project
    build: Build = Build()
    test: Test | None = None
    migrations: Migrations | None = None
    publish: Publish | None = None
    verify: Verify = Field(default_factory=Verify)
    gates: Gates = Gates()
    certify: Certify = Certify()
    environments: dict[str, Environment] = Field(min_length=1)

    @field_validator("environments")
    @classmethod
    def _env_names(cls, v: dict[str, Environment]) -> dict[str, Environment]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
                raise ValueError(
                    f"environment name {name!r} must be lower-case letters, digits, '-' or '_'"
                )
        return v

    def verify_for(self, env: str) -> Verify:
        own = self.environments[env].verify
        return own if own is not None else self.verify

    def env(self, name: str) -> Environment:
        return self.environments[name]

    @property
    def alembic_ini(self) -> str:
        """The alembic.ini path ([migrations].config), relative to a release's files."""
        return self.migrations.config if self.migrations else Migrations().config


KeyPath = tuple[str | int, ...]


def semantic_errors(cfg: Config) -> list[tuple[KeyPath, str]]:
    """Problems that span several keys, each with the key path to blame."""
    errors: list[tuple[KeyPath, str]] = []
    ports: dict[int, str] = {}
    known = ", ".join(sorted(cfg.environments))
    for name, env in cfg.environments.items():
        if env.promote_from is not None:
            if env.promote_from == name:
                errors.append((("environments", name, "promote_from"), "cannot name itself"))
            elif env.promote_from not in cfg.environments:
                errors.append(
                    (
                        ("environments", name, "promote_from"),
                        f"unknown environment {env.promote_from!r} (known: {known})",
                    )
                )
        for i, gate in enumerate(env.gates or []):
            if gate not in GATE_IDS and gate not in cfg.gates.custom:
                gates = ", ".join([*GATE_IDS, *sorted(cfg.gates.custom)])
                errors.append(
                    (("environments", name, "gates", i), f"unknown gate {gate!r} (known: {gates})")
                )
        if env.provider == "local" and env.port is not None:
            if env.port in ports:
                errors.append(
                    (
                        ("environments", name, "port"),
                        f"{env.port} is already used by environments.{ports[env.port]}",
                    )
                )
            ports[env.port] = name
    if cfg.publish is not None:
        req = cfg.publish.latest_requires
        if req not in ("verified-in-production", "none") and req not in cfg.environments:
            errors.append(
                (
                    ("publish", "latest_requires"),
                    f'unknown environment {req!r} (use "verified-in-production", "none" or '
                    f"one of: {known})",
                )
            )
    return errors
