"""Tag templates, build-argument templates, the version source and the `latest` rule."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gonogo.config import load_config
from gonogo.errors import ConfigError, GonogoError
from gonogo.images.publish import (
    TAG_FIELDS,
    TemplateError,
    check_arg_template,
    check_tag_template,
    is_immutable,
    latest_allowed,
    needs_version,
    render_build_args,
    render_tags,
    resolve_version,
    tag_values,
    template_fields,
)
from gonogo.ledger.store import Ledger, ReleaseRow, now_iso

SHA = "0123456789abcdef0123456789abcdef01234567"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}

BASE = """\
[project]
name = "tags"

[build]
args = {{ NODE_ENV = "{arg}" }}

[publish]
repository = "127.0.0.1:5000/acme/app"
tags = [
  "v{{version}}",
  "{tag}",
]
{extra}
[environments.staging]
port = 18301
vars = {{ NODE_ENV = "staging" }}

[environments.production]
port = 18302
protected = true
"""


def write(tmp_path: Path, *, tag: str = "latest", arg: str = "{env.vars.NODE_ENV}",
          extra: str = "") -> Path:  # fmt: skip
    path = tmp_path / "gonogo.toml"
    path.write_text(BASE.format(tag=tag, arg=arg, extra=extra))
    return path


# -- templates -----------------------------------------------------------------------------------


def test_template_fields_and_literal_braces() -> None:
    assert template_fields("v{version}-{short_sha}") == ["version", "short_sha"]
    assert template_fields("{{literal}}") == []
    with pytest.raises(ValueError, match="format specs"):
        template_fields("{sha:.8}")
    with pytest.raises(ValueError, match="malformed"):
        template_fields("v{version")
    with pytest.raises(ValueError, match="empty field"):
        template_fields("v{}")


@pytest.mark.parametrize("template", ["v{version}", "latest", "docker-{engine}", "git-{sha}",
                                      "{env}-{date}", "sha-{short_sha}"])  # fmt: skip
def test_known_tag_templates(template: str) -> None:
    assert check_tag_template(template) == template


def test_unknown_tag_field_names_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        check_tag_template("git-{commit}")
    assert str(info.value) == f"unknown field {{commit}} (known: {', '.join(TAG_FIELDS)})"


def test_tag_template_that_cannot_be_a_tag() -> None:
    with pytest.raises(ValueError, match="not a valid tag"):
        check_tag_template("release/{version}")
    with pytest.raises(ValueError, match="not a valid tag"):
        check_tag_template("-{sha}")


def test_arg_templates() -> None:
    assert check_arg_template("{env.vars.NODE_ENV}") == "{env.vars.NODE_ENV}"
    assert check_arg_template("{env.name}:{short_sha}") == "{env.name}:{short_sha}"
    with pytest.raises(ValueError, match=r"unknown field \{env\.var\.X\}"):
        check_arg_template("{env.var.X}")
    with pytest.raises(ValueError, match="unknown field"):
        check_arg_template("{version}")


def test_config_load_reports_unknown_tag_field_with_line(tmp_path: Path) -> None:
    path = write(tmp_path, tag="docker-{engin}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.endswith(
        "gonogo.toml:11 publish.tags.1: unknown field {engin} "
        "(known: version, sha, short_sha, engine, env, date)"
    )
    assert len(message.splitlines()) == 1


def test_config_load_reports_unknown_arg_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, arg="{env.NODE_ENV}"))
    assert "gonogo.toml:5 build.args.NODE_ENV: unknown field {env.NODE_ENV}" in info.value.message


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('version = "setup.py"', 'publish.version: must be "git-tag", "pyproject" or "file:PATH"'),
        ('platforms = ["amd64"]', "publish.platforms: 'amd64' is not a platform"),
        ('timeout = "0s"', "publish.timeout: must be greater than zero"),
    ],
)
def test_config_publish_values(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path, extra=extra))


def test_config_repository_without_a_tag(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("acme/app", "acme/app:v1"))
    with pytest.raises(ConfigError, match=r"publish\.repository: must be registry/name"):
        load_config(path)


def test_config_build_and_image_keys(tmp_path: Path) -> None:
    path = write(tmp_path)
    text = path.read_text().replace(
        "[build]\n",
        '[build]\nbuilder = "buildah"\ncontext = "docker"\ntimeout = "10m"\n'
        'image = { ports = [8000, "9000/udp"], entrypoint = ["/app/server"] }\n',
    )
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.build.builder == "buildah" and cfg.build.timeout == 600.0
    assert cfg.build.image.ports == [8000, "9000/udp"]
    assert cfg.build.image.entrypoint == ["/app/server"]
    path.write_text(text.replace('context = "docker"', 'context = "../elsewhere"'))
    with pytest.raises(ConfigError, match=r"build\.context: must be a path inside the repository"):
        load_config(path)


# -- rendering -----------------------------------------------------------------------------------


def test_build_args_from_the_environment() -> None:
    args = {"NODE_ENV": "{env.vars.NODE_ENV}", "REV": "{short_sha}", "WHERE": "{env.name}"}
    assert render_build_args(args, env="staging", env_vars={"NODE_ENV": "staging"}, sha=SHA) == {
        "NODE_ENV": "staging",
        "REV": SHA[:7],
        "WHERE": "staging",
    }
    with pytest.raises(TemplateError, match=r"environments.staging.vars has no NODE_ENV"):
        render_build_args(args, env="staging", env_vars={}, sha=SHA)
    with pytest.raises(TemplateError, match=r"name the environment"):
        render_build_args(args, env=None, env_vars={}, sha=SHA)


def test_render_tags_dedupes_holds_latest_and_marks_immutable() -> None:
    values = tag_values(sha=SHA, version="1.2.3", engine="buildah", env="production")
    plans = render_tags(
        ["v{version}", "latest", "docker-{engine}", "git-{sha}", "v{version}"],
        values,
        (False, "not verified on production"),
    )
    assert [(p.tag, p.action, p.immutable) for p in plans] == [
        ("v1.2.3", "push", True),
        ("latest", "skip", False),
        ("docker-buildah", "push", False),
        (f"git-{SHA}", "push", True),
    ]
    assert plans[1].reason == "not verified on production"
    allowed = render_tags(["latest"], values, (True, "verified"))
    assert allowed[0].action == "push" and allowed[0].reason == "verified"
    assert is_immutable("sha-{short_sha}") and not is_immutable("{env}-{date}")
    assert needs_version(["v{version}"]) and not needs_version(["latest", "git-{sha}"])


def test_render_tags_refuses_a_version_that_breaks_the_tag() -> None:
    values = tag_values(sha=SHA, version="1.0+build/7", engine="docker", env="staging")
    with pytest.raises(TemplateError, match="not a valid tag"):
        render_tags(["v{version}"], values, (True, ""))


# -- the version source --------------------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True, env={**os.environ, **GIT_ENV})  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "4.5.6"\n')
    (root / "VERSION").write_text("7.8.9\nnotes\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    return root


def test_version_from_git_tag(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    with pytest.raises(GonogoError) as info:
        resolve_version(repo, sha, "git-tag")
    assert "no git tag reaches" in info.value.message and f"git tag v1.2.3 {sha[:7]}" in (
        info.value.message
    )
    git(repo, "tag", "v1.2.3")
    assert resolve_version(repo, sha, "git-tag") == "1.2.3"
    # A later commit is not v1.2.3: it gets git's name for it, unique and tag-safe.
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    later = git(repo, "rev-parse", "HEAD")
    assert resolve_version(repo, later, "git-tag") == f"1.2.3-1-g{later[:7]}"
    assert resolve_version(repo, sha, "git-tag") == "1.2.3"


def test_version_from_pyproject_and_file_read_at_the_commit(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    # Changed in the working tree, not committed: the commit's value counts.
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "9.9.9"\n')
    assert resolve_version(repo, sha, "pyproject") == "4.5.6"
    assert resolve_version(repo, sha, "file:VERSION") == "7.8.9"
    with pytest.raises(GonogoError, match="MISSING is not in that commit"):
        resolve_version(repo, sha, "file:MISSING")


# -- latest ----------------------------------------------------------------------------------


def test_latest_requires_a_verified_production_release(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path))
    ledger = Ledger.open("sqlite://", tmp_path / "unused.db")
    allowed, why = latest_allowed(ledger, cfg, SHA)
    assert not allowed and "no verified release on production" in why
    ledger.start_run("r1", command="deploy", env="production", actor="t", host="h", pid=1,
                     sha=SHA)  # fmt: skip
    ledger.add_release(
        ReleaseRow(
            "production", 1, "r1", SHA, "sha256:" + "a" * 64, {}, "live", "", now_iso(), None, None
        ),
        actor="t",
    )
    assert not latest_allowed(ledger, cfg, SHA)[0]  # released, not verified
    ledger.mark_verified("production", 1, actor="t", run_id="r1")
    allowed, why = latest_allowed(ledger, cfg, SHA)
    assert allowed and why.startswith(f"{SHA[:7]} verified on production v1")
    assert not latest_allowed(ledger, cfg, "f" * 40)[0]


def test_latest_requires_other_settings(tmp_path: Path) -> None:
    ledger = Ledger.open("sqlite://", tmp_path / "unused.db")
    cfg = load_config(write(tmp_path, extra='latest_requires = "none"'))
    assert latest_allowed(ledger, cfg, SHA) == (True, 'latest_requires = "none"')
    cfg = load_config(write(tmp_path, extra='latest_requires = "staging"'))
    assert "on staging" in latest_allowed(ledger, cfg, SHA)[1]
    # An unknown environment is caught when the configuration is loaded, with its line.
    with pytest.raises(GonogoError, match=r"publish.latest_requires: unknown environment 'qa'"):
        load_config(write(tmp_path, extra='latest_requires = "qa"'))


# -- promotion by digest ---------------------------------------------------------------------------


def _release(ledger: Ledger, version: int, artifact: str, *, verified: bool = True) -> None:
    run_id = f"r{version}"
    ledger.start_run(run_id, command="deploy", env="staging", actor="t", host="h", pid=1,
                     sha=SHA)  # fmt: skip
    ledger.add_release(
        ReleaseRow("staging", version, run_id, SHA, artifact, {}, "live", "", now_iso(), None,
                   None),
        actor="t",
    )  # fmt: skip
    if verified:
        ledger.mark_verified("staging", version, actor="t", run_id=run_id)


def test_publish_promotes_only_an_image_a_staging_release_verified(tmp_path: Path) -> None:
    from gonogo.gates.builtin.promoted_from import PromotedFrom
    from gonogo.gates.model import GateInput
    from gonogo.images.publish import verified_image

    path = write(tmp_path)
    # The last table is [environments.production].
    path.write_text(path.read_text() + 'promote_from = "staging"\n')
    cfg = load_config(path)
    ledger = Ledger.open("sqlite://", tmp_path / "unused.db")
    gate = PromotedFrom()

    def check(command: str = "publish") -> tuple[str, str, str]:
        inp = GateInput(tmp_path, cfg, "production", ledger, {}, sha=SHA, command=command)
        result = gate.evaluate(inp)
        return result.verdict, result.reason, result.fix

    verdict, reason, fix = check()
    assert verdict == "NO-GO" and reason.startswith(f"{SHA[:7]} has not been verified on staging")
    assert fix == f"gonogo deploy staging --sha {SHA[:12]}"
    assert verified_image(ledger, "staging", SHA) == (None, None)

    # An image of the SHA that staging built but never released is not what it verified.
    image = "sha256:" + "1" * 64
    ledger.record("image.built", actor="t", env="staging", payload={"digest": image, "sha": SHA})
    _release(ledger, 1, image, verified=False)
    assert check()[0] == "NO-GO"

    # Verified, but as a source tarball (the local provider): deploy may promote it, publish
    # has no verified image.
    tarball = "sha256:" + "2" * 64
    _release(ledger, 2, tarball)
    verdict, reason, _ = check()
    assert verdict == "NO-GO" and "which is not an image built here" in reason
    assert check("deploy")[0] == "GO"
    release, event = verified_image(ledger, "staging", SHA)
    assert release is not None and release.version == 2 and event is None

    # The verified release's artifact is that image: GO, naming the digest.
    _release(ledger, 3, image)
    verdict, reason, _ = check()
    assert verdict == "GO" and reason.endswith(f"production publishes that image, {image[:19]}")
    release, event = verified_image(ledger, "staging", SHA)
    assert release is not None and release.version == 3
    assert event is not None and event[1] == {"digest": image, "sha": SHA}
    # The same digest recorded for another commit does not count.
    assert verified_image(ledger, "staging", "f" * 40) == (None, None)
