"""The heroku provider end to end: the real CLI against a Heroku made of real parts.

The Platform API is the schema-checked fake; images are built by real buildah (a
FROM-scratch Dockerfile) and pushed to a real docker-registry as `_` with the API key; the
fake asks that registry whether an image was pushed; one-off dynos really run alembic
against a real PostgreSQL (the app's DATABASE_URL config var); web dynos are the example
app under uvicorn with the SHA of the image Heroku runs (see tests/heroku_env.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import IDEMPOTENT_HEAD, ledger_rows, revision_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.heroku_api import API_KEY, DOCKER_VARIANT, DynoScript, ReleaseScript
from fakes.heroku_server import FakeServer
from heroku_env import (
    PROD_APP,
    STAGING_APP,
    HerokuFake,
    Registry,
    WebDynos,
    cli_env,
    install_fake,
    stub_image,
    two_apps,
    web_dynos,
)
from pg_server import PgServer
from registry_server import RegistryServer

pytestmark = pytest.mark.integration

STAGING, PROD = STAGING_APP, PROD_APP
DB_PASSWORD = "pw-heroku-db-Zx81"
GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}

CONFIG = """\
[project]
name = "webapp-test"

[migrations]
config = "alembic.ini"

[verify]
deadline = "20s"

[build]
dockerfile = "image/Dockerfile"
context = "image"

"""


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start(user="_", password=API_KEY)
    yield server
    server.stop()


@dataclass
class World:
    project: Any
    fake: HerokuFake
    dynos: dict[str, WebDynos]
    registry: Registry
    pg: PgServer
    database: str
    env: dict[str, str]

    def gonogo(self, *args: str, check: int | None = None, **extra: str) -> Any:
        return self.project.gonogo(*args, env={**self.env, **extra}, check=check)

    def json(self, *args: str, check: int | None = None, **extra: str) -> dict[str, Any]:
        proc = self.gonogo(*args, "--json", check=check, **extra)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def heroku_versions(self, app: str = STAGING) -> list[int]:
        return [r.version for r in self.fake.releases_of(app)]


@pytest.fixture
def world(
    project: Any,
    storage: Path,
    registry: RegistryServer,
    api_server: FakeServer,
    pg_server: PgServer,
    tmp_path: Path,
) -> Iterator[World]:
    fake = install_fake(api_server, registry.host)
    reader = fake.registry
    database = pg_server.create_database()
    db_url = pg_server.url(database, password=DB_PASSWORD).replace("postgresql://", "postgres://")
    for app in (STAGING, PROD):
        fake.add_app(app, config={"DATABASE_URL": db_url, "MODE": "a"})
    stub_image(project.root)
    with web_dynos(fake, [STAGING, PROD], project.root, tmp_path / "dynos") as dynos:
        settings = (
            f'api_url = "{api_server.url}", registry = "{registry.host}", '
            'release_timeout = "10s", migrate_timeout = "8s", api_timeout = "6s"'
        )
        project.write_config(CONFIG + two_apps(dynos, settings), commit=False)
        project.commit("WO-1: deploy to heroku")
        yield World(project, fake, dynos, reader, pg_server, database, cli_env(storage))
    fake.close()
    assert not fake.violations, fake.violations


def events(project: Any, kind: str) -> list[dict[str, Any]]:
    rows = ledger_rows(project, "SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,))
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def releases(project: Any, env: str = "staging") -> list[dict[str, Any]]:
    rows = ledger_rows(project, "SELECT * FROM releases WHERE env = ? ORDER BY version", (env,))
    return [dict(r) for r in rows]


def assert_no_secrets(world: World, *outputs: Any) -> None:
    secrets = (API_KEY, DB_PASSWORD)
    for path in (world.project.root / ".gonogo").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, (secret, path)
    for proc in outputs:
        for secret in secrets:
            assert secret not in proc.stdout + proc.stderr


# -- deploy -----------------------------------------------------------------------------


def test_deploy_pushes_releases_follows_and_verifies(world: World) -> None:
    fake, project = world.fake, world.project
    fake.script_next_release(STAGING, ReleaseScript(output=["release phase: echo only"]))
    sha = project.head()
    proc = world.gonogo("deploy", "staging", check=0)
    assert "is live and verified" in proc.stdout + proc.stderr

    # The image went to <registry>/<app>/web as `_` with the key, and the formation names
    # its config digest (the image id) with the docker-releases variant.
    image_id = world.registry.image_id(f"{STAGING}/web")
    assert image_id is not None and image_id.startswith("sha256:")
    assert world.registry.revision(f"{STAGING}/web", image_id) == sha
    [patch] = fake.seen("PATCH", r"/formation$")
    assert patch.headers["accept"].endswith(f"version={DOCKER_VARIANT}")
    assert patch.body == {"updates": [{"type": "web", "docker_image": image_id}]}
    assert world.heroku_versions() == [1, 2]
    [made] = fake.new_releases(STAGING, 1)
    assert made.status == "succeeded" and made.current

    # The ledger: v1, live and verified, naming Heroku release v2 and the image.
    [rel] = releases(project)
    assert rel["version"] == 1 and rel["state"] == "live" and rel["verified_at"]
    assert rel["sha"] == sha
    assert rel["description"] == f"heroku v2: deploy {sha[:7]} (image {image_id[7:19]})"
    steps = ledger_rows(project, "SELECT name, status FROM steps ORDER BY id")
    names = [(s["name"], s["status"]) for s in steps]
    assert names[-5:] == [
        ("image", "ok"), ("push", "ok"), ("release", "ok"), ("follow", "ok"), ("verify", "ok"),
    ]  # fmt: skip
    [run] = ledger_rows(project, "SELECT evidence, status, exit_code FROM runs WHERE command = ?",
                        ("deploy",))  # fmt: skip
    assert (run["status"], run["exit_code"]) == ("succeeded", 0)
    log = (project.root / run["evidence"] / "release-v2.log").read_text()
    assert log == "release phase: echo only\n"
    assert world.dynos[STAGING].serving == sha

    status = world.json("status", "staging", check=0)["environments"][0]
    assert status["running"] is True and status["release"] == "v1" and "warning" not in status
    assert_no_secrets(world, proc)


def test_promotion_releases_the_same_image_id_and_preboot_waits_for_new_dynos(
    world: World,
) -> None:
    fake = world.fake
    world.gonogo("deploy", "staging", check=0)
    fake.apps[PROD].features["preboot"] = True
    world.dynos[PROD].preboot = True
    world.dynos[PROD].preboot_delay_s = 1.5  # old dynos answer for a while after release
    fake.add_release(PROD, {"web": "sha256:" + "0a" * 32})  # something older runs there

    done = world.json("deploy", "production", check=0, **GUARD)
    staging_patch, prod_patch = fake.seen("PATCH", r"/formation$")
    assert prod_patch.body == staging_patch.body  # the same image id on both apps
    assert len(events(world.project, "image.built")) == 1  # built once, promoted as is
    assert done["verification"]["ok"] is True
    assert done["verification"]["rounds"] > 1  # the old dyno's SHA did not pass
    [rel] = releases(world.project, "production")
    assert rel["state"] == "live" and rel["description"].startswith("heroku v3: ")
    steps = ledger_rows(world.project, "SELECT detail FROM steps WHERE name = 'follow' "
                        "ORDER BY id")  # fmt: skip
    assert json.loads(steps[-1]["detail"])["preboot"] is True


def test_missing_api_key_is_one_line_naming_the_variable(world: World) -> None:
    env = {k: v for k, v in world.env.items() if k != "HEROKU_API_KEY"}
    proc = world.project.gonogo("deploy", "staging", env=env, check=1)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "HEROKU_API_KEY is not set" in lines[0], proc.stderr
    assert world.fake.seen("PATCH") == []

    # Settings are validated with the key path of the mistake.
    text = (world.project.root / "gonogo.toml").read_text()
    bad = text.replace('release_timeout = "10s"', 'migrate_command = "alembic upgrade head"', 1)
    (world.project.root / "gonogo.toml").write_text(bad)
    proc = world.gonogo("config", "validate", check=1)
    assert "environments.staging.heroku.migrate_command" in proc.stderr
    assert "{revision}" in proc.stderr


def second_commit(world: World, text: str = "v2") -> str:
    (world.project.root / "CHANGES.txt").write_text(text + "\n")
    return str(world.project.commit(f"WO-1: {text}"))


def test_a_failed_release_exits_3_with_its_output_and_puts_the_good_release_back(
    world: World,
) -> None:
    fake, project = world.fake, world.project
    first = project.head()
    world.gonogo("deploy", "staging", check=0)
    second_commit(world)
    output = ["Running release command...", 'ERROR: relation "notes" already exists']

    # Heroku keeps the previous release when the release phase fails: nothing to put back.
    fake.script_next_release(STAGING, ReleaseScript(outcome="failed", output=output))
    proc = world.gonogo("deploy", "staging", check=3)
    assert "Heroku release v3 failed in its release phase" in proc.stderr
    assert 'ERROR: relation "notes" already exists' in proc.stderr
    assert "nothing to roll back" in proc.stderr
    rows = releases(project)
    assert [(r["version"], r["state"]) for r in rows] == [(1, "live"), (2, "failed")]
    [current] = [r for r in fake.releases_of(STAGING) if r.current]
    assert current.version == 2
    run = ledger_rows(project, "SELECT * FROM runs ORDER BY started_at")[-1]
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    evidence = project.root / run["evidence"]
    assert (evidence / "release-v3.log").read_text().splitlines() == output

    # Someone released another image meanwhile; a failed release now puts back the last
    # good one through the API.
    fake.add_release(STAGING, {"web": "sha256:" + "0e" * 32})  # v4, not gonogo's
    fake.script_next_release(STAGING, ReleaseScript(outcome="failed", output=["boom"]))
    proc = world.gonogo("deploy", "staging", check=3)
    assert "Rolled back through the API" in proc.stderr
    assert "external configuration changes with this rollback: none" in proc.stderr
    made = fake.new_releases(STAGING, 4)
    assert [(r.version, r.status, r.description) for r in made] == [
        (5, "failed", made[0].description),
        (6, "succeeded", "Rollback to v2"),
    ]
    assert made[1].current
    rows = releases(project)
    assert [(r["version"], r["state"]) for r in rows] == [(1, "live"), (2, "failed"), (3, "failed")]
    assert [e["payload"]["to"] for e in events(project, "rollback.automatic")] == ["v1"]
    assert rows[0]["sha"] == first


def test_failed_verification_rolls_back_through_the_api(world: World) -> None:
    fake, project = world.fake, world.project
    first = project.head()
    world.gonogo("deploy", "staging", check=0)  # heroku v2
    config = project.root / "gonogo.toml"
    config.write_text(config.read_text().replace('deadline = "20s"', 'deadline = "3s"'))
    second = second_commit(world)
    world.dynos[STAGING].faults[second] = {"WEBAPP_HEALTH_500": "1"}
    proc = world.gonogo("deploy", "staging", check=3)
    assert "failed verification" in proc.stderr and "Rolled back automatically" in proc.stderr
    made = fake.new_releases(STAGING, 2)
    assert [(r.version, r.description[:11], r.current) for r in made] == [
        (3, "Deployed we", False),
        (4, "Rollback to", True),
    ]
    assert made[1].description == "Rollback to v2"
    rows = releases(project)
    assert [(r["version"], r["state"]) for r in rows] == [(1, "live"), (2, "failed")]
    assert world.dynos[STAGING].serving == first
    steps = ledger_rows(project, "SELECT name, status FROM steps ORDER BY id")
    assert [(s["name"], s["status"]) for s in steps][-3:] == [
        ("heroku-rollback", "ok"), ("follow", "ok"), ("verify", "ok"),
    ]  # fmt: skip


def test_rollback_shows_config_var_names_never_values_and_makes_a_rollback_release(
    world: World,
) -> None:
    from gonogo.context import Context
    from gonogo.providers.registry import provider_for

    fake, project = world.fake, world.project
    first = project.head()
    world.gonogo("deploy", "staging", check=0)  # ledger v1 = heroku v2
    second_commit(world)
    world.gonogo("deploy", "staging", check=0)  # ledger v2 = heroku v3
    fake.set_config(STAGING, MODE="mode-b-value", NEW_FLAG="flag-on-value")  # heroku v4

    dry = world.gonogo("rollback", "staging", "--dry-run", check=0)
    line = "external configuration changes with this rollback: removed: NEW_FLAG; changed: MODE"
    assert line in dry.stdout
    assert world.heroku_versions() == [1, 2, 3, 4]

    done = world.json("rollback", "staging", check=0)
    assert done["to"] == "v1" and done["verification"]["ok"] is True
    made = fake.new_releases(STAGING, 4)
    assert [(r.version, r.description, r.current) for r in made] == [(5, "Rollback to v2", True)]
    assert made[0].config["MODE"] == "a" and "NEW_FLAG" not in made[0].config
    rows = releases(project)
    assert [(r["version"], r["state"]) for r in rows] == [(1, "live"), (2, "retired")]
    assert world.dynos[STAGING].serving == first
    run = ledger_rows(project, "SELECT * FROM runs WHERE command = 'rollback'")[-1]
    evidence = project.root / run["evidence"]
    diff = json.loads((evidence / "config-diff-v2.json").read_text())
    assert (diff["removed"], diff["changed"], diff["added"]) == (["NEW_FLAG"], ["MODE"], [])
    assert line in (evidence / "log.txt").read_text()
    for path in (project.root / ".gonogo").rglob("*"):
        if path.is_file():
            assert b"mode-b-value" not in path.read_bytes(), path
            assert b"flag-on-value" not in path.read_bytes(), path

    # `--to vNNN` names Heroku's release: v4 (a config change on v3's image) is ledger v2,
    # and a rollback then copies Heroku's v4 exactly; v1 was never gonogo's.
    ctx = Context.load(project.root, environ={**project.base_env, **world.env})
    try:
        provider: Any = provider_for(ctx, "staging")
        row = provider.resolve_release("staging", "v4")
        assert (row.version, row.sha) == (2, project.head())
        from gonogo.providers.base import ActivateIntent

        plan = provider.plan_activate(ActivateIntent("staging", row, None))
        assert plan.steps[0].params["heroku_version"] == 4
        assert "Heroku release v4" in plan.steps[0].description
        assert provider.resolve_release("staging", "v5").version == 1  # Rollback to v2
        with pytest.raises(Exception, match="was not released by gonogo"):
            provider.resolve_release("staging", "v1")
        with pytest.raises(Exception, match="has no release v99"):
            provider.resolve_release("staging", "v99")
        listed = provider.heroku_releases("staging")
        assert [(r["version"], r["ledger"], r["current"]) for r in listed] == [
            ("v5", "v1", True),
            ("v4", "v2", False),
            ("v3", "v2", False),
            ("v2", "v1", False),
            ("v1", None, False),
        ]
        assert listed[0]["sha"] == first and listed[0]["image"] == listed[3]["image"]
        # Probes that name a config var read it from the live Heroku release (v5 copied
        # v2's MODE back); only the names asked for, never DATABASE_URL with its password.
        probe_context = provider.verify_context("staging", row, {"MODE", "NOT_SET"})
        assert probe_context["vars.MODE"] == "a" and probe_context["heroku_release"] == "v5"
        assert not [k for k in probe_context if k.startswith("vars.") and k != "vars.MODE"]
    finally:
        ctx.close()

    # The same list through the CLI, beside the ledger's own releases.
    doc = world.json("releases", "staging", check=0)
    assert [(r["version"], r["ledger"]) for r in doc["platform"]] == [
        ("v5", "v1"), ("v4", "v2"), ("v3", "v2"), ("v2", "v1"), ("v1", None),
    ]
    assert [r["version"] for r in doc["releases"]] == ["v2", "v1"]
    text = world.gonogo("releases", "staging", check=0).stdout
    assert "v1  succeeded  image" in text and "not made by gonogo" in text


# -- migrations through one-off dynos ----------------------------------------------------


def approve(world: World) -> None:
    world.fake.dyno_cwd = world.project.root  # the released commit's files
    world.gonogo("deploy", "staging", check=0)
    world.gonogo("migrate", "staging", "approve", check=0)


def migrations(project: Any) -> list[tuple[str | None, str | None, str]]:
    rows = ledger_rows(project, "SELECT * FROM migrations ORDER BY id")
    return [(r["from_revision"], r["to_revision"], r["status"]) for r in rows]


def test_migrate_apply_runs_each_revision_in_a_one_off_dyno_and_stops_at_exit_1(
    world: World,
) -> None:
    approve(world)
    proc = world.gonogo("migrate", "staging", "apply", "--json", check=0)
    done = json.loads(proc.stdout)
    assert done["after"] == ["0003_create_audit_log"]
    assert world.fake.dyno_commands == [
        f"python -m alembic -c alembic.ini upgrade {rev}"
        for rev in ("0001_create_notes", "0002_add_notes_body", "0003_create_audit_log")
    ]
    [create, *_] = world.fake.seen("POST", r"/dynos$")
    assert create.body["attach"] is False and create.body["type"] == "run"
    rows = world.pg.execute("SELECT version_num FROM alembic_version", world.database)
    assert rows == [("0003_create_audit_log",)]
    assert migrations(world.project) == [
        (None, "0001_create_notes", "ok"),
        ("0001_create_notes", "0002_add_notes_body", "ok"),
        ("0002_add_notes_body", "0003_create_audit_log", "ok"),
    ]
    run = ledger_rows(world.project, "SELECT * FROM runs WHERE command = 'migrate apply'")[-1]
    log = (world.project.root / run["evidence"] / "migrate.log").read_text()
    assert "Running upgrade 0002_add_notes_body -> 0003_create_audit_log" in log
    assert "Process exited with status 0" in log
    assert_no_secrets(world, proc)

    # status and verify read the same database through the app's DATABASE_URL.
    status = world.json("migrate", "staging", "status", check=0)
    assert status["current"] == ["0003_create_audit_log"] and status["pending"] == []
    verified = world.json("verify", "staging", check=0)
    assert verified["schema"]["current"] == ["0003_create_audit_log"]

    # A revision whose dyno exits 1: exit 3, naming it and where the database is.
    versions = world.project.root / "migrations" / "versions"
    (versions / "0004_boom.py").write_text(
        revision_file("0004_boom", "fails", 'op.execute("SELECT no_such_function()")', "pass")
    )
    world.project.commit("WO-1: a migration that fails")
    approve(world)
    proc = world.gonogo("migrate", "staging", "apply", check=3)
    assert "migration 0004_boom failed on staging (exit 1)" in proc.stderr
    assert "The database is at 0003_create_audit_log" in proc.stderr
    assert "no_such_function" in proc.stderr
    assert migrations(world.project)[-1] == ("0003_create_audit_log", "0003_create_audit_log",
                                             "failed")  # fmt: skip
    assert world.fake.dyno_commands[-1].endswith("upgrade 0004_boom")


def test_no_exit_status_is_a_failure_never_a_success(world: World) -> None:
    config = world.project.root / "gonogo.toml"
    config.write_text(
        config.read_text().replace('migrate_timeout = "8s"', 'migrate_timeout = "2s"')
    )
    world.project.commit("WO-1: a short wait for exit lines")
    approve(world)
    world.fake.script_next_dyno(STAGING, DynoScript(output=["working..."], exit_code=None))
    proc = world.gonogo("migrate", "staging", "apply", check=3)
    assert "migration 0001_create_notes failed on staging (exit None)" in proc.stderr
    assert "unknown exit status" in proc.stderr
    assert migrations(world.project) == [(None, None, "failed")]
    absent = world.pg.execute("SELECT to_regclass('alembic_version')", world.database)
    assert absent == [(None,)]


# -- faults ---------------------------------------------------------------------------


def test_429_storms_503s_and_timeouts_during_deploy_still_release_once(world: World) -> None:
    fake = world.fake
    fake.fail_next(8, "429", retry_after=0.2)
    fake.fail_next(2, "429", method="PATCH", retry_after=0.1)
    fake.fail_next(3, "503", path=r"/releases$")
    fake.fail_next(1, "slow", method="GET", path=rf"^/apps/{STAGING}/releases/", delay=2.5)
    proc = world.gonogo("deploy", "staging", check=0)
    assert "is live and verified" in proc.stdout + proc.stderr
    assert [r.version for r in fake.new_releases(STAGING, 1)] == [2]
    assert len(fake.seen("PATCH", r"/formation$")) == 3  # two rate-limited, one applied
    [rel] = releases(world.project)
    assert rel["state"] == "live" and rel["verified_at"]


def test_connection_dropped_mid_release_makes_exactly_one_release(world: World) -> None:
    fake = world.fake
    lines = [f"step {n}" for n in range(5)]
    # Still running when the stream is resumed: the client reads on after a drop only while
    # the release is pending.
    fake.script_next_release(STAGING, ReleaseScript(output=lines, duration_s=2.0))
    fake.fail_next(1, "drop", method="PATCH", path=r"/formation$")
    fake.drop_release_stream(after_lines=2)
    world.gonogo("deploy", "staging", check=0)
    assert [r.version for r in fake.new_releases(STAGING, 1)] == [2]
    assert len(fake.seen("PATCH", r"/formation$")) == 1  # the retry found it made
    detail = ledger_rows(world.project, "SELECT detail FROM steps WHERE name = 'release'")
    assert json.loads(detail[0]["detail"])["reconciled"] == 1
    run = ledger_rows(world.project, "SELECT * FROM runs WHERE command = 'deploy'")[-1]
    log = world.project.root / run["evidence"] / "release-v2.log"
    assert log.read_text().splitlines() == lines  # resumed, nothing twice


# -- a change Heroku is still making when the request times out --------------------------
# The provider's request timeout is api_timeout / 3 = 2 s and it looks for the effect of a
# change whose answer was lost for twice that (4 s): a `slow` fault of 3 s is found and
# adopted, one of 9 s is not, and is never sent a second time either way.


def eventually(what: Any, *, within: float = 8.0) -> Any:
    """`what()` once it is truthy (the fake acts on a held request late), bounded."""
    until = time.monotonic() + within
    while True:
        value = what()
        if value or time.monotonic() >= until:
            return value
        time.sleep(0.1)


def one_line(proc: Any) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return lines[0]


def last_run(project: Any, command: str) -> dict[str, Any]:
    rows = ledger_rows(project, "SELECT * FROM runs WHERE command = ? ORDER BY started_at",
                       (command,))  # fmt: skip
    return dict(rows[-1])


def test_a_release_still_being_made_when_the_request_times_out_is_adopted_once(
    world: World,
) -> None:
    fake = world.fake
    fake.fail_next(1, "slow", method="PATCH", path=r"/formation$", delay=3.0)
    world.gonogo("deploy", "staging", check=0)
    assert len(fake.seen("PATCH", r"/formation$")) == 1
    assert [r.version for r in fake.new_releases(STAGING, 1)] == [2]
    detail = ledger_rows(world.project, "SELECT detail FROM steps WHERE name = 'release'")
    assert json.loads(detail[0]["detail"])["reconciled"] == 1
    [rel] = releases(world.project)
    assert rel["state"] == "live" and rel["description"].startswith("heroku v2: ")


def test_a_release_whose_outcome_stays_unknown_exits_3_and_is_never_requested_twice(
    world: World,
) -> None:
    fake = world.fake
    fake.fail_next(1, "slow", method="PATCH", path=r"/formation$", delay=9.0)
    proc = world.gonogo("deploy", "staging", check=3)
    line = one_line(proc)
    assert "whether it was done is unknown; it was not sent again" in line
    assert f"PATCH /apps/{STAGING}/formation" in line
    assert f"`heroku releases -a {STAGING}`" in line and "`gonogo status staging`" in line
    run = last_run(world.project, "deploy")
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    steps = ledger_rows(world.project, "SELECT name, status FROM steps ORDER BY id")
    assert [(s["name"], s["status"]) for s in steps][-1] == ("release", "failed")
    assert releases(world.project) == []  # the ledger does not claim a release it cannot see
    # Heroku finishes the one request it was sent: one release, never a second.
    assert [r.version for r in eventually(lambda: fake.new_releases(STAGING, 1))] == [2]
    assert len(fake.seen("PATCH", r"/formation$")) == 1
    assert_no_secrets(world, proc)


def test_a_rollback_still_being_made_when_the_request_times_out_is_adopted_once(
    world: World,
) -> None:
    fake = world.fake
    world.gonogo("deploy", "staging", check=0)  # heroku v2
    second_commit(world)
    world.gonogo("deploy", "staging", check=0)  # heroku v3
    fake.fail_next(1, "slow", method="POST", path=r"/releases$", delay=3.0)
    world.gonogo("rollback", "staging", check=0)
    assert len(fake.seen("POST", r"/releases$")) == 1
    made = fake.new_releases(STAGING, 3)
    assert [(r.version, r.description, r.current) for r in made] == [(4, "Rollback to v2", True)]


def test_a_rollback_whose_outcome_stays_unknown_exits_3_and_is_never_requested_twice(
    world: World,
) -> None:
    fake = world.fake
    world.gonogo("deploy", "staging", check=0)  # heroku v2
    second_commit(world)
    world.gonogo("deploy", "staging", check=0)  # heroku v3
    fake.fail_next(1, "slow", method="POST", path=r"/releases$", delay=9.0)
    proc = world.gonogo("rollback", "staging", check=3)
    line = one_line(proc)
    assert "Whether Heroku made the rollback release is unknown" in line
    assert f"`heroku releases -a {STAGING}`" in line and "`gonogo status staging`" in line
    run = last_run(world.project, "rollback")
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    made = eventually(lambda: fake.new_releases(STAGING, 3))
    assert [(r.version, r.description) for r in made] == [(4, "Rollback to v2")]
    assert len(fake.seen("POST", r"/releases$")) == 1


def test_a_migration_dyno_still_starting_when_the_request_times_out_runs_once(
    world: World,
) -> None:
    approve(world)
    world.fake.fail_next(1, "slow", method="POST", path=r"/dynos$", delay=3.0)
    done = world.json("migrate", "staging", "apply", check=0)
    assert done["after"] == ["0003_create_audit_log"]
    # One dyno per revision: the first one, whose answer was lost, was adopted, not re-run.
    assert world.fake.dyno_commands == [
        f"python -m alembic -c alembic.ini upgrade {rev}"
        for rev in ("0001_create_notes", "0002_add_notes_body", "0003_create_audit_log")
    ]
    assert len(world.fake.seen("POST", r"/dynos$")) == 3
    assert [m[2] for m in migrations(world.project)] == ["ok", "ok", "ok"]


def test_a_migration_dyno_whose_start_stays_unknown_exits_3_and_is_never_started_twice(
    world: World,
) -> None:
    approve(world)
    world.fake.fail_next(1, "slow", method="POST", path=r"/dynos$", delay=9.0)
    proc = world.gonogo("migrate", "staging", "apply", check=3)
    line = one_line(proc)
    assert "migration 0001_create_notes failed on staging" in line
    assert "whether the one-off dyno started is unknown (it was not started twice)" in line
    assert f"`heroku ps -a {STAGING}`" in line and "`gonogo migrate staging status`" in line
    assert "not applied: 0002_add_notes_body, 0003_create_audit_log" in line
    run = last_run(world.project, "migrate apply")
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    assert migrations(world.project) == [(None, None, "failed")]
    # Heroku starts the one dyno it was asked for, late; nothing asked for a second.
    assert eventually(lambda: world.fake.dyno_commands) == [
        "python -m alembic -c alembic.ini upgrade 0001_create_notes"
    ]
    [dyno] = world.fake.apps[STAGING].dynos.values()
    assert eventually(lambda: dyno.exit_code is not None, within=30)  # it ran, once
    assert len(world.fake.seen("POST", r"/dynos$")) == 1
    assert_no_secrets(world, proc)


# -- observing ------------------------------------------------------------------------


def test_release_phase_check_recent_logs_and_status(world: World) -> None:
    from gonogo.context import Context
    from gonogo.providers.registry import provider_for

    fake = world.fake
    ctx = Context.load(world.project.root, environ={**world.project.base_env, **world.env})
    try:
        provider: Any = provider_for(ctx, "staging")
        phase = provider.release_phase("staging")
        assert phase.flagged is False and phase.command is None
        with fake.lock:
            entry = fake._formation_entry("release", 0, "2026-11-26T00:00:00Z")
            entry["command"] = 'echo "Release phase disabled"'
            fake.apps[STAGING].formation["release"] = entry
        assert provider.release_phase("staging").flagged is False
        with fake.lock:
            entry["command"] = "python -m alembic upgrade head"
        phase = provider.release_phase("staging")
        assert phase.flagged and "alembic upgrade head" in phase.reason
        with fake.lock:
            entry["command"] = "echo ok && alembic upgrade head"
        assert provider.release_phase("staging").flagged

        fake.add_log(STAGING, "app", "web.1", "GET /api/health 200")
        fake.add_log(STAGING, "heroku", "router", "at=error code=H10 status=503")
        logs = provider.recent_logs("staging", 2)
        assert [line.split(": ", 1)[1] for line in logs.lines] == [
            "GET /api/health 200",
            "at=error code=H10 status=503",
        ]
        assert "log session" in logs.source
        assert provider.recent_logs("staging", 0).lines == []

        status = provider.status("staging")
        assert status.running is True and status.detail["heroku_release"] == "v1"
        assert status.detail["preboot"] is False and status.version is None
        assert provider.base_url("staging") == world.dynos[STAGING].url
    finally:
        ctx.close()


# -- ship and certify on Heroku ------------------------------------------------------------


def test_ship_then_certify_on_heroku(world: World) -> None:
    project, fake = world.project, world.fake
    config = project.root / "gonogo.toml"
    text = config.read_text().replace(
        "[build]", '[test]\ncommand = "echo 3 passed"\n\n[gates.ci-passed]\nsources = ["ledger"]\n'
        "\n[build]", 1,
    )
    config.write_text(text)
    (project.root / "migrations" / "versions" / "0004_certify_marks.py").write_text(IDEMPOTENT_HEAD)
    sha = project.commit("WO-9: ship to heroku")
    fake.dyno_cwd = project.root  # one-off dynos (migrations) run the released commit

    shipped = world.json("ship", "staging", check=0)
    assert shipped["work_order"] == "WO-9" and shipped["release"] == "v1"
    folder = project.root / shipped["evidence"]
    assert "3 passed" in (folder / "test.log").read_text()
    assert world.dynos[STAGING].serving == sha

    world.gonogo("migrate", "staging", "approve", check=0)
    world.gonogo("migrate", "staging", "apply", check=0)
    fake.add_log(STAGING, "app", "web.1", "GET /api/health 200")
    cert = world.json("certify", "staging", check=0)
    assert [c["verdict"] for c in cert["checks"]] == ["GO"] * len(cert["checks"])
    written = project.root / cert["certificate"]
    statement = json.loads(written.read_text())
    text_cert = json.dumps(statement)
    assert sha in text_cert and STAGING in text_cert

    # A traceback in the app's recent logs: certify refuses, nothing new is written.
    written.unlink()
    fake.add_log(STAGING, "app", "web.1", "Traceback (most recent call last):")
    refused = world.gonogo("certify", "staging", check=2)
    assert "traceback" in refused.stderr.lower() and not written.exists()
    assert_no_secrets(world, refused)
