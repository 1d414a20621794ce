"""Registry credentials from the environment or the user's Docker configuration.

Lookup order for a registry host, first match wins:

1. `GONOGO_REGISTRY_<HOST>_USER` / `_PASSWORD`, where <HOST> is the host upper-cased with
   every other character turned into `_` (`registry.heroku.com` → `REGISTRY_HEROKU_COM`).
   The most specific setting wins, so one machine can push to two registries.
2. For `registry.heroku.com`, user `_` with `HEROKU_API_KEY` (Heroku's documented login),
   because a Heroku key is already tied to that host while the generic pair is not.
3. `GONOGO_REGISTRY_USER` / `GONOGO_REGISTRY_PASSWORD`.
4. Docker's config.json (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
   `credHelpers[host]`, then `auths[host]` (`auth` is base64 `user:password`; an
   `identitytoken` is an OAuth2 refresh token), then the `credsStore` helper.

Nothing found means anonymous access. Secrets never appear in a repr, message or log.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonogo.errors import GonogoError

__all__ = [
    "DOCKER_HUB_HOSTS",
    "DOCKER_HUB_SERVER_URL",
    "HEROKU_REGISTRY",
    "Credentials",
    "CredentialsError",
    "docker_config_credentials",
    "docker_config_path",
    "env_credentials",
    "find_credentials",
    "helper_credentials",
    "host_env_prefix",
]

HEROKU_REGISTRY = "registry.heroku.com"
# Docker Hub is reached at registry-1.docker.io but `docker login` files it under this key.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
HELPER_TIMEOUT_S = 20.0
# `docker-credential-*` helpers answer this Username when Secret is an identity token.
_TOKEN_USER = "<token>"  # noqa: S105 - a marker, not a secret

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


class CredentialsError(GonogoError):
    """Credentials are configured but unusable (half set, malformed, helper missing)."""


@dataclass(frozen=True)
class Credentials:
    """A user and a secret for one registry. `source` says where they came from.

    With `identity_token` the secret is an OAuth2 refresh token for the registry's token
    server (what `docker login` stores for some registries), not a password.
    """

    username: str
    secret: str = field(repr=False)
    source: str = ""
    identity_token: bool = False

    def __repr__(self) -> str:
        kind = "identity token" if self.identity_token else "password"
        return f"Credentials(username={self.username!r}, source={self.source!r}, {kind}=<hidden>)"

    __str__ = __repr__


def host_env_prefix(host: str) -> str:
    """`GONOGO_REGISTRY_<HOST>` for a host[:port]: upper-case, non-alphanumerics → `_`."""
    return "GONOGO_REGISTRY_" + re.sub(r"[^A-Z0-9]", "_", host.upper())


def _pair(environ: Mapping[str, str], user_var: str, secret_var: str) -> Credentials | None:
    user, secret = environ.get(user_var, ""), environ.get(secret_var, "")
    if not user and not secret:
        return None
    if not user or not secret:
        missing = user_var if not user else secret_var
        present = secret_var if not user else user_var
        raise CredentialsError(f"{present} is set but {missing} is not; set both or neither")
    return Credentials(user, secret, source=f"environment {user_var}/{secret_var}")


def env_credentials(host: str, environ: Mapping[str, str]) -> Credentials | None:
    """Credentials from environment variables (steps 1-3 of the module docstring)."""
    prefix = host_env_prefix(host)
    specific = _pair(environ, f"{prefix}_USER", f"{prefix}_PASSWORD")
    if specific is not None:
        return specific
    heroku_key = environ.get("HEROKU_API_KEY", "").strip()
    if host == HEROKU_REGISTRY and heroku_key:
        return Credentials("_", heroku_key, source="environment HEROKU_API_KEY")
    return _pair(environ, "GONOGO_REGISTRY_USER", "GONOGO_REGISTRY_PASSWORD")


def docker_config_path(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (Docker's own rule)."""
    folder = environ.get("DOCKER_CONFIG")
    if folder:
        return Path(folder) / "config.json"
    return (home or Path.home()) / ".docker" / "config.json"


def _key_host(key: str) -> str:
    """The host[:port] an `auths` key names: keys may be `host`, `https://host/v1/`..."""
    bare = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key.strip())
    return bare.split("/", 1)[0].lower()


def _same_registry(key: str, host: str) -> bool:
    found, wanted = _key_host(key), host.lower()
    if wanted in DOCKER_HUB_HOSTS:
        return found in DOCKER_HUB_HOSTS
    return found == wanted


def _server_url(host: str) -> str:
    """What a credential helper is asked for: Docker Hub's legacy URL, else the host."""
    return DOCKER_HUB_SERVER_URL if host.lower() in DOCKER_HUB_HOSTS else host


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsError(f"{where}: `auth` is not base64 of user:password") from None
    user, sep, secret = decoded.partition(":")
    if not sep:
        raise CredentialsError(f"{where}: `auth` is not base64 of user:password")
    return user, secret


def _from_auth_entry(entry: Any, where: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    encoded = entry.get("auth")
    user, secret = "", ""
    if isinstance(encoded, str) and encoded.strip():
        user, secret = _decode_auth(encoded, where)
    elif isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        user, secret = entry["username"], entry["password"]
    if isinstance(token, str) and token:
        return Credentials(user or _TOKEN_USER, token, source=where, identity_token=True)
    if user or secret:
        return Credentials(user, secret, source=where)
    return None


def helper_credentials(
    helper: str, host: str, *, run: Runner = subprocess.run, timeout: float = HELPER_TIMEOUT_S
) -> Credentials | None:
    """Ask `docker-credential-<helper> get` for `host`; None when it has nothing stored."""
    program = f"docker-credential-{helper}"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", helper):
        raise CredentialsError(f"credential helper name {helper!r} is not valid")
    try:
        done = run(
            [program, "get"],
            input=_server_url(host).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialsError(
            f"Docker config names credential helper {helper!r} but {program} is not on PATH; "
            "install it or remove it from config.json"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"{program} get did not answer within {timeout:g}s") from None
    if done.returncode != 0:
        # Helpers exit non-zero with "credentials not found" for an unknown server; that is
        # anonymous access, not an error. Their stderr is not echoed: it may hold secrets.
        return None
    return _parse_helper_output(done.stdout, program)


def _parse_helper_output(stdout: bytes, program: str) -> Credentials | None:
    try:
        doc = json.loads(stdout)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CredentialsError(f"{program} get did not print JSON") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{program} get did not print a JSON object")
    user, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    source = f"credential helper {program}"
    if user == _TOKEN_USER:
        return Credentials(user, secret, source=source, identity_token=True)
    return Credentials(user, secret, source=source)


def _load_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"{path} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{path} is not a JSON object")
    return doc


def docker_config_credentials(
    host: str, path: Path, *, run: Runner = subprocess.run
) -> Credentials | None:
    """Credentials for `host` from a Docker config.json (step 4 of the module docstring)."""
    doc = _load_config(path)
    if doc is None:
        return None
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if isinstance(helper, str) and helper and _same_registry(key, host):
                return helper_credentials(helper, host, run=run)
    auths = doc.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _same_registry(key, host):
                found = _from_auth_entry(entry, f"{path} auths[{key!r}]")
                if found is not None:
                    return found
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return helper_credentials(store, host, run=run)
    return None


def find_credentials(
    host: str,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    run: Runner = subprocess.run,
) -> Credentials | None:
    """Credentials for registry `host` (host[:port]), or None for anonymous access."""
    env = os.environ if environ is None else environ
    found = env_credentials(host, env)
    if found is not None:
        return found
    return docker_config_credentials(host, docker_config_path(env, home), run=run)
