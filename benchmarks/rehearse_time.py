"""Measure `rehearse` over a generated 50-revision alembic history on SQLite (target: < 15 s).

Usage: python benchmarks/rehearse_time.py [--revisions N] [--runs N] [--rows N]
                                          [--skip-per-command]
                                          [--out benchmarks/results/rehearse_time.json]

Writes an alembic project into a temporary folder: revision 1 creates a table, every later
one adds a column to it (``op.add_column`` / ``op.drop_column``), and an ``env.py`` that
takes its URL from ``DATABASE_URL``. The "real" database starts empty, or with ``--rows``
rows after the first revision. Then it times, end to end (copy, history, every step):

- ``batch`` (the default mode): one child process runs every alembic command in turn through
  ``alembic.config.main``;
- ``per-command``: one child process per alembic command, as ``python -m alembic`` per step
  would cost. Measured once, it is the slow alternative.

Every revision gets ``upgrade``, ``downgrade``, ``upgrade`` again, then the head gets
``stamp`` back one and ``upgrade head``: 3 x N + 2 alembic commands. The re-apply of the
head fails (adding a column that exists), which is reported, as for any non-idempotent
revision; the round trips must all pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gonogo.migrations.pending import MigrationTarget
from gonogo.migrations.rehearse import Mode, Rehearsal, rehearse

TARGET_S = 15.0

ENV_PY = """from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

url = os.environ["DATABASE_URL"]
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url, poolclass=pool.NullPool).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
"""

FIRST = '''"""create t"""

import sqlalchemy as sa
from alembic import op

revision = "r000"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "t",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
    )


def downgrade():
    op.drop_table("t")
'''

ADD_COLUMN = '''"""add t.c{i}"""

import sqlalchemy as sa
from alembic import op

revision = "r{i:03d}"
down_revision = "r{p:03d}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("t", sa.Column("c{i}", sa.{type_}, nullable=True))


def downgrade():
    op.drop_column("t", "c{i}")
'''

TYPES = ["Integer()", "String(50)", "Text()", "Boolean()", "DateTime()", "Numeric(10, 2)"]


def write_project(root: Path, count: int) -> None:
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (versions / "r000_create_t.py").write_text(FIRST)
    for i in range(1, count):
        text = ADD_COLUMN.format(i=i, p=i - 1, type_=TYPES[i % len(TYPES)])
        (versions / f"r{i:03d}_add_c{i}.py").write_text(text)


def seed(root: Path, url: str, rows: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "r000"],
        cwd=root,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        con.executemany(
            "INSERT INTO t (id, name) VALUES (?, ?)", ((n, f"row {n}") for n in range(rows))
        )
    con.close()


def run(root: Path, url: str, workdir: Path, mode: Mode) -> tuple[float, Rehearsal]:
    target = MigrationTarget(
        cwd=root,
        environ={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url},
        database_url=url,
        ini="alembic.ini",
    )
    started = time.perf_counter()
    result = rehearse(target, workdir=workdir, mode=mode)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=0, help="rows in the table before")
    parser.add_argument("--skip-per-command", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "rehearse_time.json"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gonogo-bench-rehearse-") as tmp:
        root = Path(tmp) / "proj"
        write_project(root, args.revisions)
        db = Path(tmp) / "real.db"
        url = f"sqlite:///{db}"
        if args.rows:
            seed(root, url, args.rows)
        before = hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None

        batch: list[float] = []
        result: Rehearsal | None = None
        for n in range(args.runs):
            seconds, result = run(root, url, Path(tmp) / f"batch{n}", "batch")
            batch.append(seconds)
        assert result is not None
        expected = args.revisions - (1 if args.rows else 0)
        assert result.ok and len(result.rehearsed) == expected, result.summary
        assert len(result.steps) == 3 * expected + 2, len(result.steps)

        per_command: float | None = None
        if not args.skip_per_command:
            per_command, single = run(root, url, Path(tmp) / "single", "per-command")
            assert single.ok and len(single.steps) == len(result.steps), single.summary

        after = hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None
        assert after == before, "the real database changed"

    steps = len(result.steps)
    step_seconds = [s.seconds for s in result.steps]
    data = {
        "benchmark": f"rehearse over a generated {args.revisions}-revision history (SQLite)",
        "target_s": TARGET_S,
        "revisions": args.revisions,
        "rows": args.rows,
        "alembic_commands": steps,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "batch_median_s": round(statistics.median(batch), 3),
        "batch_max_s": round(max(batch), 3),
        "batch_runs": args.runs,
        "alembic_command_median_ms": round(1000 * statistics.median(step_seconds), 2),
        "per_command_s": None if per_command is None else round(per_command, 3),
        "per_command_per_step_ms": (
            None if per_command is None else round(1000 * per_command / steps, 1)
        ),
        "mode_chosen": "batch",
        "reapply_ok": result.reapply_ok,
        "summary": result.summary,
        "real_database_unchanged": True,
        "met_target": max(batch) < TARGET_S,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    return 0 if data["met_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
