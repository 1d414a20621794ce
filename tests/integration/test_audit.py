"""`gonogo audit verify | export` on real ledgers: after real deploys, migrations and
rollbacks (SQLite and a PostgreSQL team ledger), tampered, and exported for auditors.

The command functions are called with a Context; the tests at the end drive the CLI
(`python -m gonogo audit ...`) and run once `audit` is wired into gonogo/cli.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gonogo.commands.audit import COLUMNS, export, verify
from gonogo.config import load_config
from gonogo.context import Context
from gonogo.errors import GonogoError
from gonogo.ledger import chain
from gonogo.output import Output

pytestmark = pytest.mark.integration

CONFIG = """\
[project]
name = "audit-test"

[environments.staging]
provider = "local"
port = 18201
"""


def make_ctx(
    root: Path, *, environ: dict[str, str] | None = None, json_mode: bool = False
) -> Context:
    path = root / "gonogo.toml"
    if not path.exists():
        path.write_text(CONFIG)
    return Context(
        root=root,
        config=load_config(path),
        config_path=path,
        out=Output(json_mode=json_mode, stdout=io.StringIO(), stderr=io.StringIO()),
        environ={"GONOGO_ACTOR": "tester", **(environ or {})},
    )


def stdout(ctx: Context) -> str:
    return ctx.out._stdout.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = make_ctx(tmp_path)
    try:
        yield context
    finally:
        context.close()


def some_history(ctx: Context) -> None:
    led = ctx.ledger
    led.start_run("r1", command="deploy", env="staging", actor="tester", host="h", pid=1)
    sid = led.step_started("r1", 1, "build", "build", actor="tester")
    led.step_finished(sid, status="ok", detail={"ms": 1.5, "ünï": "cödé"}, actor="tester")
    led.record("gate.override", actor="tester", env="staging", payload={"gate": "in-scope"})
    led.finish_run("r1", status="succeeded", exit_code=0, summary="done", actor="tester")


def recomputed(row: dict[str, Any], payload_text: str) -> str:
    """An auditor's own hash: sha256(prev_hash + canonical JSON of the hashed fields)."""
    fields = {k: row[k] for k in ("ts", "kind", "env", "run_id", "actor")}
    canonical = json.dumps(
        {**fields, "payload": payload_text},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((row["prev_hash"] + canonical).encode()).hexdigest()


# -- verify --------------------------------------------------------------------------------------


def test_verify_intact_ledger_is_exit_0(ctx: Context) -> None:
    some_history(ctx)
    result = verify(ctx)
    assert result.exit_code == 0
    assert result.message.startswith(f"ledger {ctx.ledger.location} is intact: 5 events, head ")
    assert result.data["intact"] is True
    assert result.data["chain"] is None and result.data["mismatches"] == []
    assert result.data["head"] == ctx.ledger.events()[-1]["hash"]


def test_verify_tampered_ledger_is_exit_2_naming_the_event(ctx: Context) -> None:
    some_history(ctx)
    victim = ctx.ledger.events()[2]
    conn = sqlite3.connect(ctx.state_dir / "ledger.db", isolation_level=None)
    conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = ?", (victim["seq"],))
    conn.execute("DELETE FROM steps")
    conn.close()
    result = verify(ctx)
    assert result.exit_code == 2
    assert "\n" not in result.message
    assert result.message == (
        f"ledger {ctx.ledger.location} is broken: event seq {victim['seq']} (step.finished, "
        f"{victim['ts']}, run r1) altered: its content does not match its hash"
    )
    assert result.data["chain"]["problem"] == "altered"
    assert result.data["chain"]["seq"] == victim["seq"]
    # the deleted step row is listed too, for whoever digs in
    assert result.data["mismatch_count"] == 1
    assert "rows that disagree with their events:\n  steps run r1 step 1 build: row missing" in (
        stdout(ctx)
    )


def test_verify_where_nothing_ever_ran_creates_no_ledger(ctx: Context) -> None:
    result = verify(ctx)
    assert result.exit_code == 0
    assert result.data["events"] == 0
    assert not (ctx.state_dir / "ledger.db").exists()


# -- export --------------------------------------------------------------------------------------


def test_export_jsonl_is_one_event_a_line_and_every_hash_recomputes(
    ctx: Context, tmp_path: Path
) -> None:
    some_history(ctx)
    target = tmp_path / "audit.jsonl"
    result = export(ctx, "jsonl", target)
    assert result.exit_code == 0
    head = ctx.ledger.events()[-1]["hash"]
    assert result.message == (
        f"exported 5 events of ledger {ctx.ledger.location} to {target} (jsonl); head {head[:12]}"
    )
    lines = target.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [list(r) for r in rows] == [list(COLUMNS)] * 5
    assert [r["kind"] for r in rows] == [
        "run.started",
        "step.started",
        "step.finished",
        "gate.override",
        "run.finished",
    ]
    assert rows[2]["payload"]["detail"] == {"ms": 1.5, "ünï": "cödé"}  # parsed, not a string
    prev = chain.GENESIS
    for row in rows:
        assert row["prev_hash"] == prev
        assert recomputed(row, chain.canonical_json(row["payload"])) == row["hash"]
        prev = row["hash"]
    assert prev == head
    assert not list(tmp_path.glob(".audit.jsonl.*"))  # no temporary file left behind


def test_export_csv_has_a_header_and_the_stored_payloads(ctx: Context, tmp_path: Path) -> None:
    some_history(ctx)
    target = tmp_path / "audit.csv"
    assert export(ctx, "csv", target).exit_code == 0
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(COLUMNS)
    events = ctx.ledger.events()
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in events]
    assert [r["payload"] for r in rows] == [e["payload"] for e in events]
    for row in rows:
        fields = {**row, "env": row["env"] or None, "run_id": row["run_id"] or None}
        assert recomputed(fields, row["payload"]) == row["hash"]


def test_export_to_stdout_prints_the_events_and_nothing_else(ctx: Context) -> None:
    some_history(ctx)
    result = export(ctx, "jsonl", None)
    assert result.message == ""
    assert result.data["events"] == 5
    out = stdout(ctx).splitlines()
    assert [json.loads(line)["seq"] for line in out] == [e["seq"] for e in ctx.ledger.events()]


def test_export_streams_a_large_ledger_in_order(ctx: Context) -> None:
    led = ctx.ledger
    with led.tx() as conn:
        for i in range(1234):
            led._append(conn, "tick", actor="tester", payload={"i": i})
    export(ctx, "csv", None)
    lines = stdout(ctx).splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 1235
    assert lines[-1].startswith("1234,")


def test_export_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    with pytest.raises(GonogoError, match="unknown export format 'xml'"):
        export(ctx, "xml", None)
    with pytest.raises(GonogoError, match=r"folder .* does not exist"):
        export(ctx, "csv", tmp_path / "missing" / "out.csv")
    ctx.close()
    as_json = make_ctx(tmp_path, json_mode=True)
    with pytest.raises(GonogoError, match="with --json give --output"):
        export(as_json, "jsonl", None)
    as_json.close()


# -- after real runs -----------------------------------------------------------------------------


def real_history(project: Any, env: dict[str, str] | None = None) -> None:
    """Deploys, an approved migration, a second release, a rollback and a refusal."""
    project.gonogo("deploy", "staging", env=env, check=0)
    project.gonogo("migrate", "staging", "approve", "--note", "dba ok", env=env, check=0)
    project.gonogo("migrate", "staging", "apply", env=env, check=0)
    (project.root / "README.md").write_text("second\n")
    project.commit("WO-2: second change")
    project.gonogo("deploy", "staging", env=env, check=0)
    project.gonogo("rollback", "staging", env=env, check=0)
    project.gonogo("deploy", "production", env=env, check=2)  # refused, recorded


def test_a_real_ledger_verifies_intact_and_a_tampered_release_is_named(project: Any) -> None:
    real_history(project)
    ctx = make_ctx(project.root)
    try:
        result = verify(ctx)
        assert result.exit_code == 0, result.data
        assert result.data["events"] > 30
        conn = sqlite3.connect(project.root / ".gonogo" / "ledger.db", isolation_level=None)
        conn.execute(
            "UPDATE releases SET sha = ? WHERE env = 'staging' AND version = 1", ("0" * 40,)
        )
        conn.close()
        broken = verify(ctx)
        assert broken.exit_code == 2
        assert "releases staging v1: sha is '0000000" in broken.message
    finally:
        ctx.close()


def test_a_team_ledger_on_postgres_records_real_runs_and_verifies(
    project: Any, pg_url: str
) -> None:
    team = {"GONOGO_LEDGER_URL": pg_url}
    real_history(project, team)
    assert not (project.root / ".gonogo" / "ledger.db").exists()
    ctx = make_ctx(project.root, environ=team)
    try:
        result = verify(ctx)
        assert result.exit_code == 0, result.data
        kinds = {e["kind"] for e in ctx.ledger.events()}
        assert {"release.created", "migration.applied", "rollback", "lock.acquired"} <= kinds
        from sqlalchemy import create_engine, text

        from gonogo.migrations.alembic import normalise_url

        raw = create_engine(normalise_url(pg_url))
        with raw.begin() as conn:
            seq = conn.execute(
                text("SELECT min(seq) FROM events WHERE kind = 'migration.applied'")
            ).scalar_one()
            conn.execute(text("DELETE FROM events WHERE seq = :s"), {"s": seq})
        raw.dispose()
        broken = verify(ctx)
        assert broken.exit_code == 2
        assert broken.data["chain"]["problem"] == "removed"
        assert broken.data["chain"]["seq"] == seq
    finally:
        ctx.close()


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_audit_verify_exit_codes_and_json(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    ok = project.gonogo("audit", "verify", check=0)
    assert ok.stdout.strip().splitlines()[-1].startswith("ledger ")
    assert "is intact" in ok.stdout
    doc = project.json("audit", "verify", check=0)
    assert doc["intact"] is True and doc["exit_code"] == 0

    conn = sqlite3.connect(project.root / ".gonogo" / "ledger.db", isolation_level=None)
    seq = conn.execute("SELECT min(seq) FROM events WHERE kind = 'release.created'").fetchone()[0]
    conn.execute("UPDATE events SET payload = '{}' WHERE seq = ?", (seq,))
    conn.close()
    broken = project.gonogo("audit", "verify", check=2)
    both = broken.stdout + broken.stderr
    assert "Traceback" not in both
    assert f"event seq {seq} (release.created" in both and "altered" in both
    doc = project.json("audit", "verify", check=2)
    assert doc["chain"]["seq"] == seq and doc["exit_code"] == 2


def test_cli_audit_export_to_stdout_and_to_a_file(project: Any) -> None:
    project.gonogo("deploy", "staging", check=0)
    out = project.gonogo("audit", "export", "--format", "jsonl", check=0)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows and all(list(r) == list(COLUMNS) for r in rows)
    target = project.root / "ledger.csv"
    done = project.gonogo("audit", "export", "--format", "csv", "--output", str(target), check=0)
    assert f"to {target} (csv)" in done.stdout
    assert target.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert len(target.read_text().splitlines()) == len(rows) + 1


# -- bad input: not a ledger, a damaged one, a server that is not there --------------------------


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    import subprocess
    import sys

    from conftest import hermetic_environ

    environ = hermetic_environ()
    return subprocess.run(
        [sys.executable, "-m", "gonogo", *args],
        cwd=root,
        env={**environ, "GONOGO_ACTOR": "tester", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def other_apps_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    conn.commit()
    conn.close()


NOT_LEDGERS = {
    "random-bytes": lambda p: p.write_bytes(bytes(range(256)) * 40),
    "a-text-file": lambda p: p.write_text("these are my notes\n" * 50),
    "another-apps-sqlite-db": other_apps_database,
    "a-folder": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("make", NOT_LEDGERS.values(), ids=NOT_LEDGERS.keys())
def test_a_ledger_file_that_is_not_a_gonogo_ledger_is_one_line_and_exit_1(
    tmp_path: Path, make: Any
) -> None:
    (tmp_path / "gonogo.toml").write_text(CONFIG)
    path = tmp_path / ".gonogo" / "ledger.db"
    path.parent.mkdir()
    make(path)
    before = path.read_bytes() if path.is_file() else None
    for args in (
        ("audit", "verify"),
        ("audit", "export", "--format", "jsonl"),
        ("status", "staging"),
    ):
        proc = cli(tmp_path, *args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith(f"gonogo: {path} is ") or lines[0].startswith(
            f"gonogo: ledger {path} is a folder"
        )
        assert "move it out of the way" in lines[0]
    doc = json.loads(cli(tmp_path, "audit", "verify", "--json").stdout)
    assert doc["exit_code"] == 1 and str(path) in doc["error"]
    if before is not None:  # nothing written into someone else's file
        assert path.read_bytes() == before
        assert (
            not path.with_name("ledger.db-wal").exists()
            or path.with_name("ledger.db-wal").stat().st_size == 0
        )


def test_a_damaged_ledger_is_one_line_and_exit_1(tmp_path: Path) -> None:
    from gonogo.ledger import Ledger
    from gonogo.ledger.store import NewEvent

    (tmp_path / "gonogo.toml").write_text(CONFIG)
    path = tmp_path / ".gonogo" / "ledger.db"
    led = Ledger.open(None, path)
    led.record_many(
        NewEvent("tick", actor="t", payload={"i": i, "pad": "x" * 400}) for i in range(3000)
    )
    led.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        handle.write(bytes(range(256)) * 64)
    proc = cli(tmp_path, "audit", "verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"gonogo: {line}"
        for line in proc.stderr.removeprefix("gonogo: ").splitlines()
        if line.startswith(f"ledger {path} is damaged (")
    ]
    assert proc.stderr.rstrip().endswith("restore it from a backup")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://team:hunter2@127.0.0.1:{port}/ledger",
        "postgres://team@127.0.0.1:{port}/ledger?password=hunter2&sslmode=disable",
    ],
    ids=["password-in-userinfo", "password-in-query"],
)
def test_a_postgres_ledger_that_cannot_be_reached_is_one_line_without_its_password(
    tmp_path: Path, url: str
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    (tmp_path / "gonogo.toml").write_text(CONFIG)
    for args in (("audit", "verify"), ("status", "staging")):
        proc = cli(tmp_path, *args, env={"GONOGO_LEDGER_URL": url.format(port=port)})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout == ""
        (line,) = proc.stderr.splitlines()
        assert line.startswith("gonogo: cannot open ledger postgres")
        assert f"127.0.0.1:{port}/ledger" in line and "<redacted>" in line
        assert "hunter2" not in proc.stderr
        assert "GONOGO_LEDGER_URL" in line
    assert not (tmp_path / ".gonogo" / "ledger.db").exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://team:hunter2@127.0.0.1:abc/ledger",
        "postgresql://team:hunter2@[::1/ledger",
        "mysql://team:hunter2@127.0.0.1/ledger",
    ],
    ids=["port-not-a-number", "unclosed-bracket", "not-postgresql"],
)
def test_a_malformed_ledger_url_is_one_line_exit_1(tmp_path: Path, url: str) -> None:
    (tmp_path / "gonogo.toml").write_text(CONFIG)
    for args in (("audit", "verify"), ("status", "staging")):
        proc = cli(tmp_path, *args, env={"GONOGO_LEDGER_URL": url})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        (line,) = proc.stderr.splitlines()
        assert "GONOGO_LEDGER_URL" in line and "internal error" not in line, line
        assert "hunter2" not in proc.stderr


def test_audit_of_a_ledger_path_that_does_not_exist_is_an_error_not_a_clean_audit(
    tmp_path: Path,
) -> None:
    (tmp_path / "gonogo.toml").write_text(CONFIG)
    missing = tmp_path / "typo" / "ledger.db"
    for args in (("audit", "verify"), ("audit", "export", "--format", "csv")):
        proc = cli(tmp_path, *args, env={"GONOGO_LEDGER_URL": f"sqlite:///{missing}"})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        (line,) = proc.stderr.splitlines()
        assert str(missing) in line and "no ledger there" in line
    assert not missing.parent.exists()  # nothing created at the mistyped path


def test_a_sqlite_ledger_url_with_options_names_the_file_before_the_query(tmp_path: Path) -> None:
    from gonogo.ledger import Ledger
    from gonogo.ledger.store import NewEvent

    (tmp_path / "gonogo.toml").write_text(CONFIG)
    path = tmp_path / "team" / "ledger.db"
    led = Ledger.open(f"sqlite:///{path}", tmp_path / "unused.db")
    led.record_many([NewEvent("tick", actor="t", payload={"i": 1})])
    led.close()
    proc = cli(tmp_path, "audit", "verify", env={"GONOGO_LEDGER_URL": f"sqlite:///{path}?mode=ro"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 event" in proc.stdout or "intact" in proc.stdout
    assert not list(tmp_path.glob("team/ledger.db?*"))
