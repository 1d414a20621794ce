"""`gonogo build` and `gonogo publish` end to end: real buildah, a real registry, the real CLI.

The example app's own Dockerfile needs base images from the network, so each test commits a
small FROM-scratch Dockerfile into the `project` repository and points `[build]` at it.
buildah runs with a private vfs store (CONTAINERS_STORAGE_CONF), the registry is Debian's
docker-registry on 127.0.0.1 with htpasswd basic auth, and digests are read back with
skopeo. A missing buildah, docker-registry or skopeo fails these tests; it never skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ledger_rows

from gonogo.ledger.store import Ledger, ReleaseRow, now_iso
from registry_server import (
    SKOPEO_BIN,
    RegistryServer,
    free_port,
    require_binary,
    skopeo_inspect,
)

pytestmark = pytest.mark.integration

USER, PASSWORD = "publisher", "pw-Zq8-never-in-logs"
GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}

DOCKERFILE = """\
FROM scratch
ARG NODE_ENV=dev
COPY server /app/server
WORKDIR /app/logs
WORKDIR /app
{user}
EXPOSE 8000
ENV NODE_ENV=$NODE_ENV
ENTRYPOINT ["/app/server"]
"""

IMAGE_CONFIG = """
[build]
dockerfile = "image/Dockerfile"
context = "image"
args = {{ NODE_ENV = "{{env.vars.NODE_ENV}}" }}
image = {{ dirs = ["/app/logs"], ports = [8000], entrypoint = ["/app/server"] }}

[publish]
repository = "{registry}/acme/{repo}"
tags = [{tags}]
platforms = [{platforms}]
timeout = "5s"
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start(user=USER, password=PASSWORD)
    yield server
    server.stop()


def setup_image(project: Any, storage: Path, registry_host: str, *, repo: str,
                user: str = "USER 10001:10001", tags: str = '"v{version}", "latest", '
                '"docker-{engine}", "git-{sha}"', platforms: str = '"linux/amd64"',
                dockerfile: str | None = None) -> None:  # fmt: skip
    image = project.root / "image"
    image.mkdir(exist_ok=True)
    (image / "server").write_text("#!/bin/false\n")
    (image / "Dockerfile").write_text(dockerfile or DOCKERFILE.format(user=user))
    text = (project.root / "gonogo.toml").read_text()
    (project.root / "gonogo.toml").write_text(
        text
        + IMAGE_CONFIG.format(registry=registry_host, repo=repo, tags=tags, platforms=platforms)
    )
    # No Docker engine, whatever the machine has: detection picks buildah, as on CI.
    project.base_env.update(
        CONTAINERS_STORAGE_CONF=str(storage),
        BUILDAH_ISOLATION="chroot",
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    project.commit("image: a FROM-scratch Dockerfile")
    project.git("tag", "v1.2.3")


def creds() -> dict[str, str]:
    return {"GONOGO_REGISTRY_USER": USER, "GONOGO_REGISTRY_PASSWORD": PASSWORD}


def events(project: Any, kind: str) -> list[dict[str, Any]]:
    rows = ledger_rows(project, "SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,))
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def read_back(registry: RegistryServer, repo: str, tag: str) -> str:
    raw = skopeo_inspect(f"{registry.host}/acme/{repo}:{tag}", raw=True,
                         creds=f"{USER}:{PASSWORD}")  # fmt: skip
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def one_line_error(proc: Any) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gonogo:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def assert_no_secret(project: Any) -> None:
    for path in (project.root / ".gonogo").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def mark_verified(project: Any, env: str, sha: str, artifact: str = "sha256:" + "c" * 64) -> None:
    """What a verified deploy leaves in the ledger (the deploy itself is tested elsewhere and
    in test_publish_promotion.py); a provider that releases images records the image digest
    as the release's artifact."""
    ledger = Ledger.open(None, project.root / ".gonogo" / "ledger.db")
    try:
        run_id = f"test-{env}-{sha[:7]}"
        ledger.start_run(run_id, command="deploy", env=env, actor="tester", host="test",
                         pid=os.getpid(), sha=sha)  # fmt: skip
        version = ledger.next_release_version(env)
        ledger.add_release(
            ReleaseRow(
                env,
                version,
                run_id,
                sha,
                artifact,
                {},
                "live",
                "test",
                now_iso(),
                None,
                None,
            ),
            actor="tester",
        )
        ledger.mark_verified(env, version, actor="tester", run_id=run_id)
        ledger.finish_run(run_id, status="succeeded", exit_code=0, summary="ok", actor="tester")
    finally:
        ledger.close()


# -- build -----------------------------------------------------------------------------------


def test_build_records_the_artifact_and_reuses_it(project: Any, storage: Path) -> None:
    setup_image(project, storage, "127.0.0.1:1", repo="build")
    sha = project.head()

    first = project.json("build", "staging", "--builder", "buildah", check=0)
    builder = first["builder"]
    assert builder == {"name": "buildah", "reason": "forced (--builder buildah)", "forced": True}
    art = first["artifact"]
    assert first["reused"] is False and art["kind"] == "oci-image" and art["sha"] == sha
    assert art["digest"].startswith("sha256:") and art["image_id"].startswith("sha256:")
    assert art["platforms"] == [{"platform": "linux/amd64", "image_id": art["image_id"],
                                 "manifest_digest": art["digest"]}]  # fmt: skip
    assert first["build_args"] == {"NODE_ENV": "staging"}
    assert first["checks"]["verdict"] == "GO"
    assert {g["id"] for g in first["checks"]["gates"]} == {
        "image-user", "image-dirs", "image-entrypoint", "image-ports", "image-secrets",
    }  # fmt: skip

    # The ledger has the artifact against the SHA, and the labels are on the manifest.
    rows = ledger_rows(project, "SELECT * FROM artifacts WHERE digest = ?", (art["digest"],))
    assert [(r["sha"], r["kind"], r["location"]) for r in rows] == [
        (sha, "oci-image", art["layout"])
    ]
    built = events(project, "image.built")
    assert len(built) == 1 and built[0]["payload"]["digest"] == art["digest"]
    assert built[0]["env"] == "staging" and built[0]["payload"]["builder"] == "buildah"
    layout = project.root / art["layout"]
    blob = layout / "blobs" / "sha256" / art["digest"].removeprefix("sha256:")
    notes = json.loads(blob.read_text())["annotations"]
    assert notes["org.opencontainers.image.revision"] == sha
    assert notes["org.opencontainers.image.version"] == "1.2.3"
    assert "org.opencontainers.image.created" in notes
    evidence = project.root / first["evidence"]
    assert "STEP 1/" in (evidence / "build.log").read_text()
    config = json.loads((evidence / "image-config.json").read_text())
    assert config["config"]["User"] == "10001:10001"

    # Same inputs again: the layout is intact, so nothing is rebuilt.
    again = project.json("build", "staging", check=0)
    assert again["reused"] is True and again["artifact"]["digest"] == art["digest"]
    assert len(events(project, "image.built")) == 1
    # Other build arguments are another artifact.
    other = project.json("build", "production", check=0)
    assert other["reused"] is False and other["build_args"] == {"NODE_ENV": "production"}
    assert other["artifact"]["digest"] != art["digest"]


def test_builder_choice_and_missing_builders(project: Any, storage: Path, tmp_path: Path) -> None:
    setup_image(project, storage, "127.0.0.1:1", repo="nobuilder")
    plan = project.json("build", "staging", "--dry-run", check=0)
    assert plan["dry_run"] is True and plan["builder"]["name"] == "buildah"
    assert plan["builder"]["reason"].startswith("no Docker engine reachable (docker info:")
    assert plan["builder"]["reason"].endswith("using buildah (daemonless)")
    config = (project.root / "gonogo.toml").read_text()
    (project.root / "gonogo.toml").write_text(
        config.replace('context = "image"', 'context = "image"\nbuilder = "buildah"')
    )
    plan = project.json("build", "staging", "--dry-run", check=0)
    assert plan["builder"] == {
        "name": "buildah", "reason": 'forced ([build].builder = "buildah")', "forced": True,
    }  # fmt: skip
    (project.root / "gonogo.toml").write_text(config)
    assert not (project.root / ".gonogo" / "images").exists()

    # A PATH with git and tar but neither docker nor buildah.
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("git", "tar"):
        found = shutil.which(tool)
        assert found is not None
        (bare / tool).symlink_to(found)
    proc = project.gonogo("build", "staging", env={"PATH": str(bare)}, check=1)
    line = one_line_error(proc)
    assert "no image builder" in line and "apt-get install buildah" in line
    proc = project.gonogo("build", "staging", "--builder", "docker", env={"PATH": str(bare)},
                          check=1)  # fmt: skip
    assert "builder docker was forced but the docker CLI is not installed" in one_line_error(proc)


def test_root_image_is_no_go_for_a_protected_environment(
    project: Any, storage: Path, registry: RegistryServer
) -> None:
    setup_image(project, storage, registry.host, repo="rooted", user="USER root")
    proc = project.gonogo("build", "production", check=2)
    line = one_line_error(proc)
    assert line.startswith("gonogo: NO-GO (image-user):") and "is root" in line
    # Not protected: reported, not enforced.
    doc = project.json("build", "staging", check=0)
    assert doc["checks"]["verdict"] == "NO-GO" and doc["enforced"] is False

    # Staging never verified it: nothing to promote, and nothing is built instead.
    built = len(events(project, "image.built"))
    proc = project.gonogo("publish", "production", env={**GUARD, **creds()}, check=2)
    assert one_line_error(proc).startswith("gonogo: NO-GO (promoted-from): ")
    assert "builder:" not in proc.stdout and len(events(project, "image.built")) == built
    # Overridden, production gets its own build, and the structure checks still refuse it.
    proc = project.gonogo("publish", "production", "--override", "promoted-from", "--reason",
                          "hotfix", env={**GUARD, **creds()}, check=2)  # fmt: skip
    assert "NO-GO (image-user)" in one_line_error(proc)
    assert registry.repository_layers("acme/rooted") == set()  # nothing pushed
    published = events(project, "image.published")
    assert published == []


# -- publish ---------------------------------------------------------------------------------


def test_a_dry_run_whose_gates_say_no_go_builds_nothing(
    project: Any, storage: Path, registry: RegistryServer
) -> None:
    setup_image(project, storage, registry.host, repo="refused")
    config = project.root / "gonogo.toml"
    # ci-passed read from the ledger, where no test step of this SHA was ever recorded
    config.write_text(config.read_text() + '\n[gates.ci-passed]\nsources = ["ledger"]\n')
    project.commit("WO-3: ci-passed from the ledger")
    dry = project.json("publish", "staging", "--dry-run", env=creds(), check=2)
    assert dry["gates"]["verdict"] == "NO-GO" and dry["digest"] is None
    assert dry["gates"]["gates"][0]["id"] == "ci-passed"
    assert "the dry run builds nothing" in project.gonogo(
        "publish", "staging", "--dry-run", env=creds(), check=2
    ).stdout
    assert events(project, "image.built") == []
    assert not (project.root / ".gonogo" / "images").exists() or not list(
        (project.root / ".gonogo" / "images").iterdir()
    )
    assert registry.repository_layers("acme/refused") == set()



def test_publish_tags_read_back_and_a_new_tag_moves_manifests_only(
    project: Any, storage: Path, registry: RegistryServer
) -> None:
    setup_image(project, storage, registry.host, repo="webapp")
    sha = project.head()

    # Not built yet: the dry run builds locally (a recorded build) to name the digest.
    dry = project.json("publish", "staging", "--dry-run", env=creds(), check=0)
    digest = dry["digest"]
    assert dry["dry_run"] is True and digest.startswith("sha256:")
    assert dry["artifact"]["source"] == "built" and "nothing was pushed" in dry["message"]
    assert [(t["tag"], t["action"], t["digest"]) for t in dry["tags"]] == [
        ("v1.2.3", "push", digest), ("latest", "skip", None), ("docker-buildah", "push", digest),
        (f"git-{sha}", "push", digest),
    ]  # fmt: skip
    assert dry["platforms"] == [{"platform": "linux/amd64", "digest": digest}]
    [built] = events(project, "image.built")
    assert built["payload"]["digest"] == digest and built["env"] == "staging"
    [run] = ledger_rows(project, "SELECT command, status FROM runs")
    assert (run["command"], run["status"]) == ("build", "succeeded")
    assert registry.repository_layers("acme/webapp") == set()

    doc = project.json("publish", "staging", env=creds(), check=0)
    assert doc["digest"] == digest and doc["version"] == "1.2.3"
    assert doc["artifact"]["source"] == "reused"  # the dry run's build
    assert len(events(project, "image.built")) == 1
    pushed = [t["tag"] for t in doc["tags"] if t["action"] == "push"]
    assert pushed == ["v1.2.3", "docker-buildah", f"git-{sha}"]
    latest = next(t for t in doc["tags"] if t["tag"] == "latest")
    assert latest["action"] == "skip" and "no verified release on production" in latest["reason"]
    for tag in pushed:
        assert read_back(registry, "webapp", tag) == digest
        assert doc["confirmed"][tag] == digest
    assert doc["platforms"] == [{"platform": "linux/amd64", "digest": digest}]
    assert doc["counters"]["blob_uploads"] == 2  # the one layer and the config
    event = events(project, "image.published")[-1]
    assert event["env"] == "staging" and event["payload"]["digest"] == digest
    assert event["payload"]["tags"] == pushed

    # The dry run now knows the digest, and pushes nothing.
    dry = project.json("publish", "staging", "--dry-run", "--tag", "preview", env=creds(),
                       check=0)  # fmt: skip
    assert dry["digest"] == digest and dry["tags"][0]["digest"] == digest
    with pytest.raises(AssertionError):
        read_back(registry, "webapp", "preview")

    # The same artifact with a new tag: no layer moves, one manifest does.
    again = project.json("publish", "staging", "--tag", "rc-{short_sha}", env=creds(), check=0)
    counters = again["counters"]
    assert again["digest"] == digest and again["artifact"]["source"] == "reused"
    assert counters["blob_uploads"] == 0 and counters["blob_bytes"] == 0
    assert counters["manifest_puts"] == 1 and counters["manifest_bytes"] > 0
    assert read_back(registry, "webapp", f"rc-{sha[:7]}") == digest
    assert_no_secret(project)


def test_latest_waits_for_production_and_promotion_reuses_the_digest(
    project: Any, storage: Path, registry: RegistryServer
) -> None:
    setup_image(project, storage, registry.host, repo="promoted")
    sha = project.head()
    staging = project.json("publish", "staging", env=creds(), check=0)
    digest = staging["digest"]
    # Built and published for staging is not verified there: production refuses it.
    refused = project.gonogo("publish", "production", env={**GUARD, **creds()}, check=2)
    assert one_line_error(refused).startswith("gonogo: NO-GO (promoted-from): ")

    mark_verified(project, "staging", sha, artifact=digest)
    refused = project.gonogo("publish", "production", env=creds(), check=2)
    assert "NO-GO (prod-guard)" in one_line_error(refused)

    prod = project.json("publish", "production", env={**GUARD, **creds()}, check=0)
    assert prod["artifact"]["source"] == "promoted" and prod["artifact"]["from_env"] == "staging"
    assert prod["digest"] == digest  # no rebuild: the staging artifact, by digest
    assert prod["environments"]["published_envs"] == ["production", "staging"]
    assert [v["env"] for v in prod["environments"]["verified"]] == ["staging"]
    assert prod["latest"]["allowed"] is False
    with pytest.raises(AssertionError):
        read_back(registry, "promoted", "latest")
    assert len(events(project, "image.built")) == 1
    only_latest = project.json("publish", "production", "--tag", "latest",
                               env={**GUARD, **creds()}, check=0)  # fmt: skip
    assert only_latest["pushed"] is False
    assert only_latest["message"].startswith("nothing to publish: latest skipped:")

    mark_verified(project, "production", sha)
    moved = project.json("publish", "production", env={**GUARD, **creds()}, check=0)
    latest = next(t for t in moved["tags"] if t["tag"] == "latest")
    assert latest["action"] == "push" and "verified on production" in latest["reason"]
    assert read_back(registry, "promoted", "latest") == digest
    assert moved["counters"]["blob_uploads"] == 0


def test_two_platforms_publish_an_index(
    project: Any, storage: Path, registry: RegistryServer
) -> None:
    setup_image(project, storage, registry.host, repo="multi", tags='"git-{short_sha}"',
                platforms='"linux/amd64", "linux/arm64"')  # fmt: skip
    doc = project.json("publish", "staging", env=creds(), check=0)
    assert doc["artifact"]["kind"] == "oci-index"
    platforms = doc["platforms"]
    assert [p["platform"] for p in platforms] == ["linux/amd64", "linux/arm64"]
    assert len({p["digest"] for p in platforms}) == 2
    assert [p["manifest_digest"] for p in doc["artifact"]["platforms"]] == [
        p["digest"] for p in platforms
    ]
    tag = f"git-{project.head()[:7]}"
    assert read_back(registry, "multi", tag) == doc["digest"]
    index = json.loads(skopeo_inspect(f"{registry.host}/acme/multi:{tag}", raw=True,
                                      creds=f"{USER}:{PASSWORD}"))  # fmt: skip
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["digest"] for m in index["manifests"]] == [p["digest"] for p in platforms]


# -- bad input -------------------------------------------------------------------------------


def test_bad_input_is_one_line_and_pushes_nothing(
    project: Any, storage: Path, registry: RegistryServer
) -> None:
    require_binary(SKOPEO_BIN, "skopeo")
    failing = "FROM scratch\nCOPY server /app/server\nCOPY missing.txt /app/missing.txt\n"
    setup_image(project, storage, registry.host, repo="bad", dockerfile=failing)
    line = one_line_error(project.gonogo("build", "staging", check=1))
    assert re.search(r"image build failed at STEP 3/\d+: COPY missing.txt /app/missing.txt:", line)
    assert "no such file or directory" in line and "build.log" in line

    config = (project.root / "gonogo.toml").read_text()
    (project.root / "gonogo.toml").write_text(config.replace("image/Dockerfile", "nope/Dockerfile"))
    line = one_line_error(project.gonogo("build", "staging", check=1))
    assert line.startswith("gonogo: no Dockerfile at nope/Dockerfile in commit")

    (project.root / "gonogo.toml").write_text(config.replace('"git-{sha}"', '"git-{commit}"'))
    line = one_line_error(project.gonogo("publish", "staging", check=1))
    assert "publish.tags.3: unknown field {commit} (known: version, sha, short_sha" in line
    (project.root / "gonogo.toml").write_text(config)
    line = one_line_error(project.gonogo("publish", "staging", "--tag", "x-{nope}", check=1))
    assert line == ("gonogo: --tag 'x-{nope}': unknown field {nope} "
                    "(known: version, sha, short_sha, engine, env, date)")  # fmt: skip

    # A good image for the registry errors.
    (project.root / "gonogo.toml").write_text(config)
    (project.root / "image" / "Dockerfile").write_text(DOCKERFILE.format(user="USER 1000"))
    project.commit("fix the Dockerfile")
    dead = f"127.0.0.1:{free_port()}"
    (project.root / "gonogo.toml").write_text(config.replace(registry.host, dead))
    started = time.monotonic()
    proc = project.gonogo("publish", "staging", "--tag", "x", env=creds(), check=1)
    # Not built yet: the plan says when the digest is known, and it is before any push.
    assert f"→ {dead}/acme/bad:x  (digest known after the build, before" in proc.stdout
    line = one_line_error(proc)
    assert line.startswith(f"gonogo: registry {dead} cannot be reached")
    assert time.monotonic() - started < 15

    (project.root / "gonogo.toml").write_text(config)
    wrong = {**creds(), "GONOGO_REGISTRY_PASSWORD": "not-the-password"}
    line = one_line_error(project.gonogo("publish", "staging", "--tag", "x", env=wrong, check=1))
    assert f'refused credentials for user "{USER}"' in line and "not-the-password" not in line
    line = one_line_error(project.gonogo("publish", "staging", "--tag", "x", check=1))
    assert "requires authentication" in line
    assert registry.repository_layers("acme/bad") == set()
    assert events(project, "image.published") == []
