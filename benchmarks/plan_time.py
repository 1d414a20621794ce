"""Time `gonogo migrate ENV plan` and `gonogo migrate classify` on 50 pending revisions.

Usage: python benchmarks/plan_time.py [--revisions N] [--runs N]
                                      [--out benchmarks/results/plan_time.json]

Target (issue 5): each under 2 s, measured as a user runs them: a fresh `gonogo` process
per run (interpreter start-up, imports, reading the ledger and the database included).

Builds a git repository of the example app whose migration history is replaced by the
generated N-revision history of `classify_time.py` (every operation kind the classifier
records), deploys it to a local `staging` environment (not timed), then times the two
commands. `plan` renders the offline SQL of every pending revision for the database's
dialect and classifies each one; `classify` reads the whole history without gonogo.toml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from classify_time import HEADER, TEMPLATES

TARGET_S = 2.0
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "webapp"
GIT = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_versions(versions: Path, count: int) -> None:
    shutil.rmtree(versions)
    versions.mkdir()
    down: str | None = None
    table = 0
    for i in range(count):
        if i % len(TEMPLATES) == 0:
            table = i
        rev = f"r{i:03d}"
        text = HEADER.format(doc=f"revision {i}", rev=rev, down=repr(down))
        (versions / f"{rev}_step.py").write_text(text + TEMPLATES[i % len(TEMPLATES)].format(
            i=i, p=table))
        down = rev


def make_project(root: Path, count: int) -> dict[str, str]:
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    write_versions(root / "migrations" / "versions", count)
    (root / ".gitignore").write_text(".gonogo/\n__pycache__/\n*.db\n")
    (root / "gonogo.toml").write_text(
        '[project]\nname = "bench"\n\n[migrations]\nconfig = "alembic.ini"\n\n'
        f'[environments.staging]\nprovider = "local"\nport = {free_port()}\n'
    )
    env = {**os.environ, **GIT, "GONOGO_ACTOR": "bench"}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(argv, cwd=root, env=env, check=True)
    return env


def gonogo(root: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gonogo", *args, "--json"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"gonogo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "plan_time.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gonogo-bench-plan-") as tmp:
        root = Path(tmp) / "app"
        env = make_project(root, args.revisions)
        gonogo(root, env, "deploy", "staging", "--override", "rollback-feasible",
               "--reason", "benchmark history")
        try:
            plans, classifies = [], []
            pending = 0
            for _ in range(args.runs):
                wall, doc = gonogo(root, env, "migrate", "staging", "plan")
                pending = len(doc["revisions"])  # type: ignore[arg-type]
                plans.append(wall)
                wall, _ = gonogo(root, env, "migrate", "classify")
                classifies.append(wall)
        finally:
            subprocess.run([sys.executable, "-m", "gonogo", "down", "staging"], cwd=root,
                           env=env, capture_output=True, timeout=60, check=False)
    if pending != args.revisions:
        raise SystemExit(f"plan showed {pending} pending revisions, expected {args.revisions}")
    summary = {
        "benchmark": f"gonogo migrate plan / classify CLI on {args.revisions} pending revisions",
        "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "plan_median_s": round(statistics.median(plans), 3),
        "plan_max_s": round(max(plans), 3),
        "classify_median_s": round(statistics.median(classifies), 3),
        "classify_max_s": round(max(classifies), 3),
        "runs": args.runs,
    }
    summary["met_target"] = max(summary["plan_median_s"], summary["classify_median_s"]) < TARGET_S
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"plan: median {summary['plan_median_s']}s, classify: median "
          f"{summary['classify_median_s']}s over {args.runs} runs (target < {TARGET_S}s)")
    return 0 if summary["met_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
