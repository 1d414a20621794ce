"""The migration procedure against a real PostgreSQL database, through the CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import config_text
from pg_server import PgServer

pytestmark = pytest.mark.integration

PASSWORD = "pg-s3cret-pw"


def use_postgres(project: Any, url: str) -> dict[str, str]:
    """Point staging's database at `url` through STAGING_DATABASE_URL; returns the env."""
    section = "[environments.staging]\n"
    text = config_text(project.staging_port, project.production_port).replace(
        section, section + 'database_url_env = "STAGING_DATABASE_URL"\n'
    )
    project.write_config(text)
    return {"STAGING_DATABASE_URL": url}


def test_status_plan_approve_apply_verify_on_postgresql(
    project: Any, pg_server: PgServer
) -> None:
    name = pg_server.create_database()
    env = use_postgres(project, pg_server.url(name, password=PASSWORD))
    project.gonogo("deploy", "staging", env=env, check=0)

    status = project.json("migrate", "staging", "status", env=env, check=0)
    assert status["current"] == [] and len(status["pending"]) == 3

    plan = project.json("migrate", "staging", "plan", env=env, check=0)
    # Offline SQL for PostgreSQL's dialect, not SQLite's.
    assert "CREATE TABLE notes" in plan["sql"]
    assert "SERIAL" in plan["sql"] or "nextval" in plan["sql"] or "IDENTITY" in plan["sql"]

    project.gonogo("migrate", "staging", "approve", env=env, check=0)
    applied = project.json("migrate", "staging", "apply", env=env, check=0)
    assert applied["after"] == ["0003_create_audit_log"]
    rows = pg_server.execute("SELECT version_num FROM alembic_version", name)
    assert rows == [("0003_create_audit_log",)]

    # The app runs against PostgreSQL and verify sees the database at the release's head.
    verified = project.json("verify", "staging", env=env, check=0)
    assert verified["verification"]["ok"] is True
    assert verified["schema"]["current"] == ["0003_create_audit_log"]

    # The password never reaches the ledger or the evidence.
    for path in (project.root / ".gonogo").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".txt", ".sql", ".db", ""):
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_unset_variable_and_unreachable_database_are_one_line_errors(
    project: Any, pg_url: str
) -> None:
    bad = use_postgres(project, "postgresql://u:pw-hidden@127.0.0.1:9/nowhere")
    # A database gonogo cannot read is a NO-GO for deploy (rollback-feasible), named.
    proc = project.gonogo("deploy", "staging", env=bad, check=2)
    assert "cannot read alembic_version from postgresql://u:<redacted>@127.0.0.1:9" in proc.stderr
    assert "pw-hidden" not in proc.stderr

    project.gonogo("deploy", "staging", env={"STAGING_DATABASE_URL": pg_url}, check=0)
    proc = project.gonogo("migrate", "staging", "status", check=1)
    assert "STAGING_DATABASE_URL" in proc.stderr and "Traceback" not in proc.stderr
    proc = project.gonogo("migrate", "staging", "status", env=bad, check=1)
    assert "cannot read alembic_version" in proc.stderr
    assert "pw-hidden" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    # A URL that is malformed, or names a driver gonogo does not ship: one line, exit 1.
    for url, why in (
        ("postgresql://u:pw-hidden@127.0.0.1:5432x/db", "is not usable"),
        ("mysql://u:pw-hidden@127.0.0.1/db", "driver is not installed"),
    ):
        proc = project.gonogo("migrate", "staging", "status", env={"STAGING_DATABASE_URL": url})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert why in line and "internal error" not in line, line
        assert "pw-hidden" not in proc.stderr


def test_rehearse_uses_a_scratch_database_and_drops_it(
    project: Any, pg_server: PgServer
) -> None:
    name = pg_server.create_database()
    env = use_postgres(project, pg_server.url(name, password=PASSWORD))
    project.gonogo("deploy", "staging", env=env, check=0)
    doc = project.json("migrate", "staging", "rehearse", env=env, check=0)
    assert doc["ok"] is True and doc["basis"].startswith("pg_dump --schema-only")
    assert len(doc["revisions"]) == 3
    assert not [d for d in pg_server.databases() if d.startswith("gonogo_rehearse_")]
    # The environment's own database was not migrated by the rehearsal.
    assert pg_server.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alembic_version'",
        name,
    ) == [(0,)]
    assert PASSWORD not in json.dumps(doc)
