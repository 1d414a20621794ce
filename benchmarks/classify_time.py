"""Measure `classify_project` over a generated 50-revision alembic history (target: < 2 s).

Usage: python benchmarks/classify_time.py [--revisions N] [--runs N] [--dialect sqlite]
                                          [--out benchmarks/results/classify_time.json]

Writes an alembic project with N revisions into a temporary folder (a mix of every
operation kind the classifier records: create/drop table, add/drop column, indexes,
constraints, narrowing and widening alter_column, batch_alter_table, raw SQL UPDATE/DELETE,
bulk_insert, empty and raising downgrades), then times, per run:

- ``in_process``: ``classify_project(ini)``: reading the ini, importing every revision file,
  running each upgrade() and downgrade() offline and classifying it;
- ``cold_cli_like``: the same in a fresh interpreter (``python -c``), which adds importing
  alembic, SQLAlchemy and sqlglot: what ``gonogo migrate classify`` pays.

No database is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0

HEADER = '''"""{doc}"""

import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None


'''

# Each template gets {i} (a unique number) and produces upgrade() and downgrade().
TEMPLATES = [
    """def upgrade():
    op.create_table(
        "t{i}",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("amount", sa.Numeric(12, 4)),
    )


def downgrade():
    op.drop_table("t{i}")
""",
    """def upgrade():
    op.add_column("t{p}", sa.Column("note{i}", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("t{p}", "note{i}")
""",
    """def upgrade():
    op.create_index("ix_t{p}_name_{i}", "t{p}", ["name"])


def downgrade():
    op.drop_index("ix_t{p}_name_{i}", table_name="t{p}")
""",
    """def upgrade():
    op.alter_column("t{p}", "name", existing_type=sa.String(255), type_=sa.String(100))


def downgrade():
    op.alter_column("t{p}", "name", existing_type=sa.String(100), type_=sa.String(255))
""",
    """def upgrade():
    with op.batch_alter_table("t{p}") as batch:
        batch.alter_column("amount", existing_type=sa.Numeric(12, 4), nullable=False)
        batch.create_unique_constraint("uq_t{p}_{i}", ["name"])


def downgrade():
    with op.batch_alter_table("t{p}") as batch:
        batch.drop_constraint("uq_t{p}_{i}", type_="unique")
        batch.alter_column("amount", existing_type=sa.Numeric(12, 4), nullable=True)
""",
    """def upgrade():
    op.execute(sa.text("UPDATE t{p} SET name = lower(name) WHERE amount > 0"))
    op.execute("DELETE FROM t{p} WHERE amount IS NULL")


def downgrade():
    pass
""",
    """T = sa.table("t{p}", sa.column("id", sa.Integer()), sa.column("name", sa.String()))


def upgrade():
    op.bulk_insert(T, [{{"id": n, "name": "row %d" % n}} for n in range(20)])


def downgrade():
    op.execute("DELETE FROM t{p} WHERE id < 20")
""",
    """def upgrade():
    op.add_column("t{p}", sa.Column("flag{i}", sa.Boolean(), nullable=True))


def downgrade():
    raise NotImplementedError("one way")
""",
    """def upgrade():
    op.create_foreign_key("fk_t{p}_{i}", "t{p}", "t{p}", ["id"], ["id"])


def downgrade():
    op.drop_constraint("fk_t{p}_{i}", "t{p}", type_="foreignkey")
""",
    """def upgrade():
    op.create_index("ix_t{p}_amount_{i}", "t{p}", ["amount"])


def downgrade():
    pass
""",
]


def write_project(root: Path, count: int) -> Path:
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (root / "migrations" / "env.py").write_text("# never run by the classifier\n")
    down: str | None = None
    table = 0
    for i in range(count):
        template = TEMPLATES[i % len(TEMPLATES)]
        if i % len(TEMPLATES) == 0:
            table = i
        rev = f"r{i:03d}"
        text = HEADER.format(doc=f"revision {i}", rev=rev, down=repr(down))
        text += template.format(i=i, p=table)
        (versions / f"{rev}_step.py").write_text(text)
        down = rev
    return root / "alembic.ini"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dialect", default="sqlite")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "classify_time.json"
    )
    args = parser.parse_args()
    from gonogo.migrations.classify import classify_project

    with tempfile.TemporaryDirectory(prefix="gonogo-bench-classify-") as tmp:
        ini = write_project(Path(tmp) / "proj", args.revisions)
        in_process: list[float] = []
        result = None
        for _ in range(args.runs):
            started = time.perf_counter()
            result = classify_project(ini, dialect=args.dialect)
            in_process.append(time.perf_counter() - started)
        assert result is not None and len(result.revisions) == args.revisions
        code = (
            "import sys; from gonogo.migrations.classify import classify_project; "
            "r = classify_project(sys.argv[1], dialect=sys.argv[2]); print(len(r.revisions))"
        )
        cold: list[float] = []
        for _ in range(max(3, args.runs // 2)):
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", code, str(ini), args.dialect],
                capture_output=True,
                text=True,
                check=True,
            )
            cold.append(time.perf_counter() - started)
            assert proc.stdout.strip() == str(args.revisions), proc.stderr

    counts = result.counts()
    data = {
        "benchmark": f"classify_project over a generated {args.revisions}-revision history",
        "target_s": TARGET_S,
        "dialect": args.dialect,
        "revisions": args.revisions,
        "classes": counts,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "in_process_median_s": round(statistics.median(in_process), 3),
        "in_process_max_s": round(max(in_process), 3),
        "cold_cli_like_median_s": round(statistics.median(cold), 3),
        "cold_cli_like_max_s": round(max(cold), 3),
        "per_revision_ms": round(1000 * statistics.median(in_process) / args.revisions, 2),
        "met_target": max(cold) < TARGET_S,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    return 0 if data["met_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
