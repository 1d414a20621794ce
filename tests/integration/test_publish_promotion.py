"""Promotion by digest: `gonogo publish production` publishes exactly the image staging verified.

Real parts throughout: staging is deployed and verified through the heroku provider against
the schema-checked fake Platform API (tests/heroku_env.py), with the image built by real
buildah and pushed to a real docker-registry, which also takes the published tags. Runs that
must not build get a PATH with git and tar only: any builder call would fail them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import ledger_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.heroku_api import API_KEY
from fakes.heroku_server import FakeServer
from heroku_env import (
    PROD_APP,
    STAGING_APP,
    cli_env,
    install_fake,
    stub_image,
    two_apps,
    web_dynos,
)
from registry_server import RegistryServer, skopeo_inspect

pytestmark = pytest.mark.integration

STAGING, PROD = STAGING_APP, PROD_APP
GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}
REPO = "acme/app"

CONFIG = """\
[project]
name = "webapp-test"

[verify]
deadline = "20s"

[build]
dockerfile = "image/Dockerfile"
context = "image"

[publish]
repository = "{registry}/{repo}"
tags = ["git-{{short_sha}}", "{{env}}"]
platforms = [{platforms}]
timeout = "5s"

"""


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    """Heroku's registry (user `_`, the API key) and the publish target, in one server."""
    server = RegistryServer.start(user="_", password=API_KEY)
    yield server
    server.stop()


@dataclass
class World:
    project: Any
    registry: RegistryServer
    env: dict[str, str]
    no_builder: dict[str, str]
    config: str

    def gonogo(self, *args: str, check: int | None = None, build: bool = True,
               **extra: str) -> Any:  # fmt: skip
        env = {**self.env, **({} if build else self.no_builder), **extra}
        return self.project.gonogo(*args, env=env, check=check)

    def json(self, *args: str, check: int | None = None, build: bool = True,
             **extra: str) -> dict[str, Any]:  # fmt: skip
        proc = self.gonogo(*args, "--json", check=check, build=build, **extra)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def platforms(self, platforms: str) -> None:
        (self.project.root / "gonogo.toml").write_text(
            self.config.replace('platforms = ["linux/amd64"]', f"platforms = [{platforms}]")
        )


@pytest.fixture
def world(
    project: Any,
    storage: Path,
    registry: RegistryServer,
    api_server: FakeServer,
    tmp_path: Path,
) -> Iterator[World]:
    fake = install_fake(api_server, registry.host)
    for app in (STAGING, PROD):
        fake.add_app(app, config={"MODE": "a"})
    stub_image(project.root)
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("git", "tar"):
        found = shutil.which(tool)
        assert found is not None
        (bare / tool).symlink_to(found)
    with web_dynos(fake, [STAGING, PROD], project.root, tmp_path / "dynos") as dynos:
        settings = (
            f'api_url = "{api_server.url}", registry = "{registry.host}", '
            'release_timeout = "10s", api_timeout = "6s"'
        )
        config = CONFIG.format(
            registry=registry.host, repo=REPO, platforms='"linux/amd64"'
        ) + two_apps(dynos, settings)
        project.write_config(config, commit=False)
        project.commit("WO-1: deploy to heroku, publish to the registry")
        env = {
            **cli_env(storage),
            "GONOGO_REGISTRY_USER": "_",
            "GONOGO_REGISTRY_PASSWORD": API_KEY,
        }
        yield World(project, registry, env, {"PATH": str(bare)}, config)
    fake.close()
    assert not fake.violations, fake.violations


def events(project: Any, kind: str) -> list[dict[str, Any]]:
    rows = ledger_rows(project, "SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,))
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def artifacts_of(project: Any, env: str) -> list[str]:
    rows = ledger_rows(project, "SELECT artifact FROM releases WHERE env = ? AND verified_at "
                       "IS NOT NULL ORDER BY version", (env,))  # fmt: skip
    return [r["artifact"] for r in rows]


def read_back(registry: RegistryServer, tag: str) -> str:
    raw = skopeo_inspect(f"{registry.host}/{REPO}:{tag}", raw=True, creds=f"_:{API_KEY}")
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def one_line_error(proc: Any) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gonogo:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def assert_refused_unverified(world: World, sha: str, **extra: str) -> None:
    """publish production of `sha` is NO-GO, builds nothing and pushes nothing."""
    project = world.project
    built, published = len(events(project, "image.built")), len(events(project, "image.published"))
    proc = world.gonogo("publish", "production", check=2, build=False, **GUARD, **extra)
    line = one_line_error(proc)
    assert line.startswith("gonogo: NO-GO (promoted-from): ") and sha[:7] in line
    assert "has not been verified on staging" in line
    assert f"Fix: gonogo deploy staging --sha {sha[:12]}" in line
    assert "builder:" not in proc.stdout
    assert re.search(r"^  ✘ promoted-from +\S", proc.stdout, re.MULTILINE)  # listed with the rest
    assert len(events(project, "image.built")) == built
    assert len(events(project, "image.published")) == published
    with pytest.raises(AssertionError):
        read_back(world.registry, f"git-{sha[:7]}")


def test_production_publishes_the_digest_staging_verified_and_never_builds(
    world: World,
) -> None:
    project, registry = world.project, world.registry
    sha = project.head()

    # Nothing verified on staging yet: NO-GO, listed with the other gates; no build, no push.
    dry = world.json("publish", "production", "--dry-run", check=2, build=False, **GUARD)
    gates = {g["id"]: g["verdict"] for g in dry["gates"]["gates"]}
    assert gates == {"promoted-from": "NO-GO", "prod-guard": "GO"}
    assert dry["digest"] is None and dry["plan"]["steps"][0]["action"] == "promote"
    assert_refused_unverified(world, sha)
    assert events(project, "image.built") == []
    assert not (project.root / ".gonogo" / "images").exists()
    assert registry.repository_layers(REPO) == set()

    # Deployed and verified on staging: that release's image is what production publishes.
    world.gonogo("deploy", "staging", check=0)
    [staging_digest] = artifacts_of(project, "staging")
    [built] = events(project, "image.built")
    assert built["payload"]["digest"] == staging_digest and built["env"] == "staging"

    # The dry run names the digest of every tag, in text and in JSON, and pushes nothing.
    text = world.gonogo("publish", "production", "--dry-run", check=0, build=False, **GUARD)
    for tag in (f"git-{sha[:7]}", "production"):
        assert f"→ {registry.host}/{REPO}:{tag}  {staging_digest}" in text.stdout
    assert "builder:" not in text.stdout
    dry = world.json("publish", "production", "--dry-run", check=0, build=False, **GUARD)
    assert dry["digest"] == staging_digest
    assert [(t["tag"], t["digest"]) for t in dry["tags"]] == [
        (f"git-{sha[:7]}", staging_digest), ("production", staging_digest),
    ]  # fmt: skip
    [platform] = dry["platforms"]
    assert platform["platform"] == "linux/amd64" and platform["digest"].startswith("sha256:")
    assert dry["artifact"]["source"] == "promoted" and dry["artifact"]["from_env"] == "staging"
    promoted = next(g for g in dry["gates"]["gates"] if g["id"] == "promoted-from")
    assert promoted["verdict"] == "GO" and staging_digest[:19] in promoted["reason"]
    assert registry.repository_layers(REPO) == set()

    # [publish].platforms asking for more than staging verified: said, never rebuilt.
    world.platforms('"linux/amd64", "linux/arm64"')
    wider = world.gonogo("publish", "production", "--dry-run", check=0, build=False, **GUARD)
    assert "! not published for linux/arm64: the image verified on staging has linux/amd64" \
        in wider.stdout  # fmt: skip
    assert f"{REPO}:production  {staging_digest}" in wider.stdout
    world.platforms('"linux/amd64"')

    # The publish itself: the staging digest, no builder, the same digest read back.
    doc = world.json("publish", "production", check=0, build=False, **GUARD)
    assert doc["digest"] == staging_digest and doc["platforms_not_verified"] == []
    assert doc["artifact"]["source"] == "promoted"
    assert doc["confirmed"] == {f"git-{sha[:7]}": staging_digest, "production": staging_digest}
    for tag in doc["confirmed"]:
        assert read_back(registry, tag) == staging_digest
    assert len(events(project, "image.built")) == 1
    [event] = events(project, "image.published")
    assert event["env"] == "production" and event["payload"]["digest"] == staging_digest
    assert event["payload"]["source"] == "promoted" and event["payload"]["from_env"] == "staging"
    history = doc["environments"]
    assert history["verified"][0]["env"] == "staging" and history["built_for"] == ["staging"]

    # Production released as well: the ledger has the one digest on both environments.
    world.gonogo("deploy", "production", check=0, **GUARD)
    assert artifacts_of(project, "production") == [staging_digest]
    assert len(events(project, "image.built")) == 1

    # A commit staging never verified: refused again, even after it is built for staging.
    (project.root / "CHANGES.txt").write_text("v2\n")
    second = project.commit("WO-1: v2")
    assert_refused_unverified(world, second)
    text = world.gonogo("publish", "staging", "--dry-run", check=0)
    assert "building locally to know the digest" in text.stdout
    [_, preview] = events(project, "image.built")
    new_digest = preview["payload"]["digest"]
    assert preview["payload"]["sha"] == second and new_digest != staging_digest
    for tag in (f"git-{second[:7]}", "staging"):
        assert f"→ {registry.host}/{REPO}:{tag}  {new_digest}" in text.stdout
    assert "nothing was pushed" in text.stdout + text.stderr
    assert_refused_unverified(world, second)
    assert read_back(registry, "production") == staging_digest
    with pytest.raises(AssertionError):
        read_back(registry, "staging")


def test_an_override_gives_production_its_own_build(world: World) -> None:
    """`--override promoted-from --reason` is the one way round the rule, as for deploy."""
    project = world.project
    proc = world.gonogo("publish", "production", "--override", "promoted-from", "--reason",
                        "hotfix WO-9", "--dry-run", check=0, **GUARD)  # fmt: skip
    assert "NO-GO overridden by tester: hotfix WO-9" in proc.stdout
    [built] = events(project, "image.built")
    assert built["env"] == "production"
