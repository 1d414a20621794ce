"""Registry credentials: environment first, then Docker's config.json and its helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from gonogo.images.credentials import (
    Credentials,
    CredentialsError,
    docker_config_path,
    env_credentials,
    find_credentials,
    host_env_prefix,
)


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _config(tmp_path: Path, doc: dict[str, object]) -> dict[str, str]:
    folder = tmp_path / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(folder)}


def test_generic_environment_pair() -> None:
    env = {"GONOGO_REGISTRY_USER": "bob", "GONOGO_REGISTRY_PASSWORD": "pw1"}
    found = find_credentials("ghcr.io", environ=env, home=Path("/nonexistent"))
    assert found == Credentials(
        "bob", "pw1", "environment GONOGO_REGISTRY_USER/GONOGO_REGISTRY_PASSWORD"
    )


def test_per_host_variables_win_over_the_generic_pair() -> None:
    assert host_env_prefix("127.0.0.1:5000") == "GONOGO_REGISTRY_127_0_0_1_5000"
    env = {
        "GONOGO_REGISTRY_USER": "generic",
        "GONOGO_REGISTRY_PASSWORD": "pw-generic",
        "GONOGO_REGISTRY_GHCR_IO_USER": "octo",
        "GONOGO_REGISTRY_GHCR_IO_PASSWORD": "pw-ghcr",
    }
    ghcr = env_credentials("ghcr.io", env)
    assert ghcr is not None and (ghcr.username, ghcr.secret) == ("octo", "pw-ghcr")
    other = env_credentials("quay.io", env)
    assert other is not None and other.username == "generic"


def test_half_a_pair_is_an_error_naming_the_missing_variable() -> None:
    with pytest.raises(CredentialsError, match="GONOGO_REGISTRY_PASSWORD is not"):
        env_credentials("ghcr.io", {"GONOGO_REGISTRY_USER": "bob"})
    with pytest.raises(CredentialsError, match="GONOGO_REGISTRY_GHCR_IO_USER is not"):
        env_credentials("ghcr.io", {"GONOGO_REGISTRY_GHCR_IO_PASSWORD": "x"})


def test_heroku_registry_uses_the_api_key() -> None:
    env = {
        "HEROKU_API_KEY": "hk-123\n",
        "GONOGO_REGISTRY_USER": "u",
        "GONOGO_REGISTRY_PASSWORD": "p",
    }
    heroku = env_credentials("registry.heroku.com", env)
    assert heroku is not None and (heroku.username, heroku.secret) == ("_", "hk-123")
    elsewhere = env_credentials("ghcr.io", env)
    assert elsewhere is not None and elsewhere.username == "u"


def test_repr_and_str_hide_the_secret() -> None:
    creds = Credentials("bob", "hunter2-secret", "test")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "hunter2-secret" not in text
        assert "bob" in text and "<hidden>" in text


def test_docker_config_auth_entry(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"127.0.0.1:5000": {"auth": _auth("alice", "p:w")}}})
    found = find_credentials("127.0.0.1:5000", environ=env)
    assert found is not None and (found.username, found.secret) == ("alice", "p:w")
    assert "config.json" in found.source
    assert find_credentials("127.0.0.1:5001", environ=env) is None


def test_docker_hub_is_filed_under_the_legacy_index_url(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": _auth("d", "p")}}})
    for host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        found = find_credentials(host, environ=env)
        assert found is not None and found.username == "d"


def test_keys_with_scheme_and_path_match_the_host(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"https://ghcr.io/v2/": {"auth": _auth("o", "p")}}})
    found = find_credentials("ghcr.io", environ=env)
    assert found is not None and found.username == "o"


def test_identity_token(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"example.com": {"auth": "", "identitytoken": "rt-9"}}})
    found = find_credentials("example.com", environ=env)
    assert found is not None and found.identity_token and found.secret == "rt-9"
    assert "rt-9" not in repr(found)


def test_environment_wins_over_docker_config(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"ghcr.io": {"auth": _auth("file", "p")}}})
    env |= {"GONOGO_REGISTRY_USER": "env", "GONOGO_REGISTRY_PASSWORD": "p"}
    found = find_credentials("ghcr.io", environ=env)
    assert found is not None and found.username == "env"


def test_config_path_default_and_override(tmp_path: Path) -> None:
    assert docker_config_path({}, home=tmp_path) == tmp_path / ".docker" / "config.json"
    assert docker_config_path({"DOCKER_CONFIG": "/x"}) == Path("/x/config.json")
    assert find_credentials("ghcr.io", environ={}, home=tmp_path) is None


def test_malformed_config_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "docker"
    folder.mkdir()
    (folder / "config.json").write_text("{oops")
    with pytest.raises(CredentialsError, match=r"config\.json is not valid JSON"):
        find_credentials("ghcr.io", environ={"DOCKER_CONFIG": str(folder)})
    env = _config(tmp_path, {"auths": {"ghcr.io": {"auth": "not base64!"}}})
    with pytest.raises(CredentialsError, match="not base64"):
        find_credentials("ghcr.io", environ=env)


def _helper(folder: Path, name: str, script: str) -> None:
    path = folder / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers_are_asked_with_the_server_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The helper echoes the server URL it was asked for back as the user name.
    _helper(
        bin_dir,
        "fake",
        'read url; printf \'{"ServerURL":"%s","Username":"%s","Secret":"s3"}\' "$url" "$url"\n',
    )
    _helper(bin_dir, "empty", "echo 'credentials not found in native keychain'; exit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    env = _config(tmp_path, {"credHelpers": {"ghcr.io": "fake"}, "credsStore": "fake"})
    ghcr = find_credentials("ghcr.io", environ=env)
    assert ghcr is not None and (ghcr.username, ghcr.secret) == ("ghcr.io", "s3")
    assert ghcr.source == "credential helper docker-credential-fake"
    hub = find_credentials("docker.io", environ=env)
    assert hub is not None and hub.username == "https://index.docker.io/v1/"

    env = _config(tmp_path, {"credsStore": "empty"})
    assert find_credentials("ghcr.io", environ=env) is None


def test_identity_token_from_a_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _helper(bin_dir, "tok", 'echo \'{"Username":"<token>","Secret":"rt"}\'\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    found = find_credentials("ghcr.io", environ=_config(tmp_path, {"credsStore": "tok"}))
    assert found is not None and found.identity_token


def test_missing_helper_binary_is_a_clear_error(tmp_path: Path) -> None:
    env = _config(tmp_path, {"credsStore": "gonogo-no-such-helper"})
    with pytest.raises(
        CredentialsError, match="docker-credential-gonogo-no-such-helper is not on PATH"
    ):
        find_credentials("ghcr.io", environ=env)
