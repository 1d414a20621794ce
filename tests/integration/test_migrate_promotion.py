"""`migrate production apply` after staging: the same SQL must have run there first, judged
per revision, and no override can skip the approval or that test."""

from __future__ import annotations

from typing import Any

import pytest
from support import INDEX_TITLE_DOWN, INDEX_TITLE_UP, ledger_rows, revision_file

pytestmark = pytest.mark.integration

GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}
INDEX = revision_file("0004_index_title", "index notes.title", INDEX_TITLE_UP, INDEX_TITLE_DOWN)


def migrate(project: Any, env: str, *, check: int = 0) -> Any:
    extra = GUARD if env == "production" else {}
    project.gonogo("migrate", env, "approve", "--note", "reviewed", env=extra, check=0)
    return project.gonogo("migrate", env, "apply", env=extra, check=check)


def add_index_revision(project: Any) -> None:
    (project.root / "migrations" / "versions" / "0004_index_title.py").write_text(INDEX)
    project.commit("WO-2: index notes.title")
    project.gonogo("deploy", "staging", check=0)


def test_production_applies_what_staging_ran_in_several_applies(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    migrate(project, "staging")  # base -> 0003
    add_index_revision(project)
    migrate(project, "staging")  # 0003 -> 0004: staging never ran base -> 0004 as one
    project.gonogo("verify", "staging", check=0)
    project.gonogo("deploy", "production", env=GUARD, check=0)

    proc = migrate(project, "production")
    assert "0004_index_title" in proc.stdout
    applied = ledger_rows(
        project,
        "SELECT env, to_revision, sql_sha256 FROM migrations WHERE status = 'ok' ORDER BY id",
    )
    by_env: dict[str, dict[str, str]] = {}
    for row in applied:
        by_env.setdefault(row["env"], {})[row["to_revision"]] = row["sql_sha256"]
    # Each revision's SQL is the same on both, whichever revision each apply started from.
    assert by_env["production"] == by_env["staging"]
    assert len(by_env["production"]) == 4 and all(by_env["production"].values())


def test_a_revision_staging_never_ran_is_refused_and_only_that_can_be_overridden(
    project: Any,
) -> None:
    project.gonogo("deploy", "staging", check=0)
    migrate(project, "staging")  # base -> 0003 only
    add_index_revision(project)  # deployed (and verified) on staging, not migrated there
    project.gonogo("deploy", "production", env=GUARD, check=0)

    refused = migrate(project, "production", check=2)
    message = refused.stderr.strip()
    assert "migration-tested-upstream" in message
    assert "0004_index_title never ran on staging" in message
    assert "0003_create_audit_log" not in message.split(":", 2)[2].split(";")[0]
    assert ledger_rows(project, "SELECT * FROM migrations WHERE env = 'production'") == []

    # The approval can never be overridden; the upstream test only with a recorded reason.
    unapproved = project.gonogo(
        "migrate", "production", "apply", "--override", "migration-approved",
        "--reason", "in a hurry", env=GUARD, check=1,
    )
    assert "migration-approved: this gate cannot be overridden" in unapproved.stderr
    assert "Traceback" not in unapproved.stderr
    assert ledger_rows(project, "SELECT * FROM migrations WHERE env = 'production'") == []

    project.gonogo(
        "migrate", "production", "apply", "--override", "migration-tested-upstream",
        "--reason", "index only, staging copy restored from backup", env=GUARD, check=0,
    )
    done = ledger_rows(
        project, "SELECT to_revision FROM migrations WHERE env = 'production' AND status = 'ok'"
    )
    assert [r["to_revision"] for r in done][-1] == "0004_index_title" and len(done) == 4
    (override,) = ledger_rows(project, "SELECT * FROM events WHERE kind = 'gate.override'")
    assert "migration-tested-upstream" in override["payload"]
