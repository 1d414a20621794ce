"""Measure `gonogo demo` end to end (target: under 60 s on a 2-core machine).

Usage: python benchmarks/demo_time.py [--runs N] [--out benchmarks/results/demo_time.json]

Each run is a fresh `python -m gonogo demo --json` in a new temporary workspace; the script
records wall time of the whole command and the seconds of each demo step, then writes a
JSON summary (min/median/max) and exits 1 if the median misses the target.
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

TARGET_S = 60.0


def one_run() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="gonogo-bench-") as tmp:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "gonogo", "demo", "--json", "--workspace", f"{tmp}/ws"],
            capture_output=True, text=True, timeout=300, check=False,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"demo failed (exit {proc.returncode}):\n{proc.stderr}")
    doc = json.loads(proc.stdout)
    return {"wall_s": round(wall, 2),
            "steps": {s["title"]: s["seconds"] for s in doc["steps"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "demo_time.json")
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    walls = [float(r["wall_s"]) for r in runs]  # type: ignore[arg-type]
    summary = {
        "benchmark": "gonogo demo wall time",
        "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "min_s": min(walls), "median_s": statistics.median(walls), "max_s": max(walls),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"demo: median {summary['median_s']}s over {len(runs)} runs "
          f"(min {summary['min_s']}s, max {summary['max_s']}s; target < {TARGET_S}s)")
    return 0 if summary["median_s"] < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
