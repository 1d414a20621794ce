"""Heroku bad input through the real CLI: one line naming the app and what to do, exit 1.

A key Heroku refuses (401), an app that does not exist or that the key cannot see (404), a
key without access to the app (403), and an app that is not a container app: each one is
found by one GET of the app before any image is built or pushed and before anything is
released, and never shows the key. The Platform API is the schema-checked fake on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import ledger_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.heroku_api import API_KEY, FakeHeroku
from fakes.heroku_server import FakeServer
from gonogo.ledger.store import Ledger, ReleaseRow, now_iso

pytestmark = pytest.mark.integration

STAGING, PROD = "acme-staging", "acme-prod"
WRONG_KEY = "HRKU-wrong000-1111-2222-3333-444455556666"
GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}
IMAGE = "0123456789ab"

CONFIG = """\
[project]
name = "webapp-test"

[migrations]
config = "alembic.ini"

[environments.staging]
provider = "heroku"
app = "{staging}"
url = "http://127.0.0.1:9"
heroku = {{ {settings} }}

[environments.production]
provider = "heroku"
app = "{prod}"
url = "http://127.0.0.1:9"
protected = true
promote_from = "staging"
gates = ["prod-guard"]
heroku = {{ {settings} }}
"""


@dataclass(frozen=True)
class Case:
    """One kind of bad input: how the fake (and the key) are set up, what the line says."""

    key: str
    setup: Callable[[FakeHeroku, str], None]
    says: Callable[[str, str], list[str]]  # (app, env) -> phrases of the one line


def _add(**options: Any) -> Callable[[FakeHeroku, str], None]:
    return lambda fake, app: fake.add_app(app, **options) and None


CASES = {
    "wrong-key": Case(
        WRONG_KEY,
        _add(),
        lambda app, env: [
            f"the API key in HEROKU_API_KEY was refused for app {app}",
            "401 unauthorized",
            "`heroku auth:token`",
        ],
    ),
    "no-such-app": Case(
        API_KEY,
        lambda fake, app: None,
        lambda app, env: [
            f"app {app} (environment {env}) does not exist or the API key in HEROKU_API_KEY "
            "cannot see it",
            f"environments.{env}.app",
        ],
    ),
    "no-access": Case(
        API_KEY,
        _add(forbidden=True),
        lambda app, env: [
            f"the API key in HEROKU_API_KEY has no access to app {app}",
            "403 forbidden",
        ],
    ),
    "not-a-container-app": Case(
        API_KEY,
        _add(stack="heroku-22"),
        lambda app, env: [
            f"app {app} (environment {env}) is on stack heroku-22, not container",
            f"`heroku stack:set container -a {app}`",
        ],
    ),
}


@dataclass
class Setup:
    project: Any
    fake: FakeHeroku

    def gonogo(self, key: str, *args: str, check: int | None = None, **extra: str) -> Any:
        return self.project.gonogo(*args, env={"HEROKU_API_KEY": key, **extra}, check=check)


@pytest.fixture
def setup(project: Any, api_server: FakeServer) -> Iterator[Setup]:
    fake = api_server.fresh()
    settings = f'api_url = "{api_server.url}", registry = "127.0.0.1:1", api_timeout = "6s"'
    project.write_config(CONFIG.format(staging=STAGING, prod=PROD, settings=settings))
    yield Setup(project, fake)
    fake.close()
    assert not fake.violations, fake.violations


def seed_releases(project: Any, env: str) -> None:
    """Two verified ledger releases, as two deploys would leave them (v2 live), so that
    rollback and migrate apply get as far as asking the provider."""
    sha = project.head()
    ledger = Ledger.open(None, project.root / ".gonogo" / "ledger.db")
    try:
        run_id = f"seed-{env}"
        ledger.start_run(run_id, command="deploy", env=env, actor="tester", host="test",
                         pid=os.getpid(), sha=sha)  # fmt: skip
        for version in (1, 2):
            ledger.add_release(
                ReleaseRow(env, version, run_id, sha, "sha256:" + "c" * 64, {}, "pending",
                           f"heroku v{version + 1}: deploy {sha[:7]} (image {IMAGE})",
                           now_iso(), None, None),
                actor="tester",
            )  # fmt: skip
            ledger.set_live(env, version, actor="tester", run_id=run_id)
            ledger.mark_verified(env, version, actor="tester", run_id=run_id)
        ledger.finish_run(run_id, status="succeeded", exit_code=0, summary="ok", actor="tester")
    finally:
        ledger.close()


def assert_refused_in_one_line(setup: Setup, proc: Any, case: Case, app: str, env: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for phrase in case.says(app, env):
        assert phrase in lines[0], (phrase, lines[0])
    assert "Traceback" not in proc.stdout + proc.stderr
    for key in (API_KEY, WRONG_KEY):
        assert key not in proc.stdout + proc.stderr
        for path in (setup.project.root / ".gonogo").rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path


def assert_nothing_changed(setup: Setup, app: str, releases_before: int) -> None:
    fake = setup.fake
    # One GET of the app, and no other request: nothing read further, nothing changed.
    assert [(s.method, s.path) for s in fake.requests] == [("GET", f"/apps/{app}")]
    if app in fake.apps:
        assert len(fake.releases_of(app)) == releases_before
    project = setup.project
    built = ledger_rows(project, "SELECT * FROM events WHERE kind = 'image.built'")
    assert built == []
    assert ledger_rows(project, "SELECT * FROM steps") == []


@pytest.mark.parametrize("case_id", list(CASES))
@pytest.mark.parametrize(
    ("env", "app", "extra"),
    [("staging", STAGING, {}), ("production", PROD, GUARD)],
    ids=["staging-all-gates", "production-prod-guard-only"],
)
def test_deploy_with_bad_heroku_input_is_one_line_exit_1_before_anything_is_built(
    setup: Setup, case_id: str, env: str, app: str, extra: dict[str, str]
) -> None:
    case = CASES[case_id]
    case.setup(setup.fake, app)
    proc = setup.gonogo(case.key, "deploy", env, check=1, **extra)
    assert_refused_in_one_line(setup, proc, case, app, env)
    assert_nothing_changed(setup, app, releases_before=1)
    assert ledger_rows(setup.project, "SELECT * FROM runs") == []  # refused before a run


@pytest.mark.parametrize("case_id", list(CASES))
@pytest.mark.parametrize(
    "command",
    [("rollback", "staging"), ("rollback", "staging", "--to", "v2"),
     ("migrate", "staging", "apply")],
    ids=["rollback", "rollback-to", "migrate-apply"],
)  # fmt: skip
def test_rollback_and_migrate_with_bad_heroku_input_are_one_line_exit_1(
    setup: Setup, case_id: str, command: tuple[str, ...]
) -> None:
    case = CASES[case_id]
    case.setup(setup.fake, STAGING)
    seed_releases(setup.project, "staging")
    runs_before = ledger_rows(setup.project, "SELECT id FROM runs")
    proc = setup.gonogo(case.key, *command, check=1)
    assert_refused_in_one_line(setup, proc, case, STAGING, "staging")
    assert [(s.method, s.path) for s in setup.fake.requests] == [("GET", f"/apps/{STAGING}")]
    if STAGING in setup.fake.apps:
        assert len(setup.fake.releases_of(STAGING)) == 1
    assert ledger_rows(setup.project, "SELECT id FROM runs") == runs_before
    assert ledger_rows(setup.project, "SELECT * FROM migrations") == []


def test_status_shows_the_same_line_and_still_reports_the_other_environments(
    setup: Setup,
) -> None:
    setup.fake.add_app(STAGING)
    setup.fake.add_app(PROD, forbidden=True)
    proc = setup.gonogo(API_KEY, "status", check=0)
    assert f"the API key in HEROKU_API_KEY has no access to app {PROD}" in proc.stdout
    assert proc.stdout.startswith("staging") and "\nproduction" in proc.stdout
    assert API_KEY not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
