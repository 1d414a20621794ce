"""`gonogo migrate lint`: squawk on PostgreSQL, gonogo's own checks everywhere, via the CLI."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from support import INDEX_TITLE_UP, revision_file

from conftest import EXAMPLE_APP, config_text

pytestmark = pytest.mark.integration

NO_DOWNGRADE = revision_file(
    "0004_index_title", "index without a way back", INDEX_TITLE_UP, "pass"
)


def test_sqlite_environment_reports_own_checks_and_no_squawk(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    doc = project.json("migrate", "staging", "lint", check=0)
    assert doc["dialect"] == "sqlite" and doc["squawk"] is None
    assert [r["revision"] for r in doc["revisions"]] == doc["pending"]
    rules = {f["rule"] for r in doc["revisions"] for f in r["findings"]}
    assert rules == {"lossy-operation"}


def test_missing_downgrade_is_no_go(project: Any) -> None:
    (project.root / "migrations" / "versions" / "0004_index_title.py").write_text(NO_DOWNGRADE)
    project.commit("WO-4: index")
    project.gonogo(
        "deploy", "staging", "--override", "rollback-feasible", "--reason", "index only",
        check=0,
    )
    proc = project.gonogo("migrate", "staging", "lint", check=2)
    assert "missing-downgrade" in proc.stdout and "0004_index_title" in proc.stdout


def test_postgresql_environment_runs_squawk_per_revision(project: Any, pg_url: str) -> None:
    section = "[environments.staging]\n"
    project.write_config(
        config_text(project.staging_port, project.production_port).replace(
            section, section + 'database_url_env = "STAGING_DATABASE_URL"\n'
        )
    )
    env = {"STAGING_DATABASE_URL": pg_url}
    project.gonogo("deploy", "staging", env=env, check=0)
    doc = project.json("migrate", "staging", "lint", env=env, check=0)
    assert doc["dialect"] == "postgresql" and doc["squawk"]["version"]
    by_rev = {r["revision"]: r for r in doc["revisions"]}
    body = by_rev["0002_add_notes_body"]
    assert body["squawk_ran"] is True
    assert "lock-timeout-not-set" in {f["rule"] for f in body["findings"]}
    sources = {f["source"] for r in doc["revisions"] for f in r["findings"]}
    assert sources == {"squawk", "gonogo"}
    # squawk judges for the server's own version unless told otherwise
    from gonogo.migrations.alembic import server_version

    live = server_version(pg_url)
    assert live is not None and live.split(".")[0].isdigit()
    assert (doc["squawk"]["pg_version"], doc["pg_version_source"]) == (live, "the server")
    told = project.json("migrate", "staging", "lint", "--pg-version", "10", env=env, check=0)
    assert (told["squawk"]["pg_version"], told["pg_version_source"]) == ("10", "--pg-version")
    # A project's .squawk.toml pg_version is squawk's to apply: gonogo passes none then.
    (project.root / ".squawk.toml").write_text('pg_version = "11.0"\n')
    project.commit("WO-5: squawk config")
    project.gonogo("deploy", "staging", env=env, check=0)
    own = project.json("migrate", "staging", "lint", env=env, check=0)
    assert (own["squawk"]["pg_version"], own["pg_version_source"]) == (None, ".squawk.toml")


def test_lint_without_gonogo_toml() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gonogo", "migrate", "lint", "--alembic-ini",
         str(EXAMPLE_APP / "alembic.ini"), "--dialect", "postgresql"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "squawk" in proc.stdout and "0003_create_audit_log" in proc.stdout
    assert proc.stdout.count("revisions linted") + proc.stderr.count("revisions linted") == 1


def test_configured_rule_levels_apply(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    config = project.root / "gonogo.toml"
    base = config.read_text()
    rules = '[migrations]\nlint.{} = ["lossy-operation"]\n'
    config.write_text(base.replace("[migrations]\n", rules.format("errors")))
    proc = project.gonogo("migrate", "staging", "lint", check=2)
    assert "ERROR" in proc.stdout and "lossy-operation" in proc.stdout
    config.write_text(base.replace("[migrations]\n", rules.format("ignore")))
    doc = project.json("migrate", "staging", "lint", check=0)
    assert doc["rules"] == {"errors": [], "ignore": ["lossy-operation"]}
    assert [f for r in doc["revisions"] for f in r["findings"]] == []


def test_timeouts_the_connection_sets_are_not_reported(project: Any, pg_url: str) -> None:
    section = "[environments.staging]\n"
    project.write_config(
        config_text(project.staging_port, project.production_port).replace(
            section, section + 'database_url_env = "STAGING_DATABASE_URL"\n'
        )
    )
    env = {"STAGING_DATABASE_URL": pg_url + "?options=-c%20lock_timeout%3D5s"}
    project.gonogo("deploy", "staging", env=env, check=0)
    doc = project.json("migrate", "staging", "lint", env=env, check=0)
    assert doc["connection_timeouts"] == ["lock_timeout"]
    rules = {f["rule"] for r in doc["revisions"] for f in r["findings"]}
    assert "lock-timeout-not-set" not in rules and "statement-timeout-not-set" in rules
