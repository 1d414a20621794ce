"""Measure `gonogo check staging` on the example repository (target: well under 1 s).

Usage: python benchmarks/check_time.py [--runs N] [--out benchmarks/results/check_time.json]

Builds the demo's example repository once (no processes started), then times the whole
CLI, `python -m gonogo check staging --json`, N times: interpreter start, config load, and
every gate (git, the implicit-migration detector, the ledger). No remote calls are made.
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

TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "check_time.json")
    args = parser.parse_args()
    from gonogo.commands.demo import make_workspace

    with tempfile.TemporaryDirectory(prefix="gonogo-bench-") as tmp:
        root = make_workspace(Path(tmp) / "ws")
        walls, gate_ms = [], {}
        for _ in range(args.runs):
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "gonogo", "check", "staging", "--json"],
                                  cwd=root, capture_output=True, text=True, check=False)
            walls.append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise SystemExit(f"check failed (exit {proc.returncode}):\n{proc.stdout}")
            for gate in json.loads(proc.stdout)["gates"]:
                gate_ms.setdefault(gate["id"], []).append(gate["duration_ms"])
    summary = {
        "benchmark": "gonogo check staging wall time (example repo, no remote calls)",
        "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "gate_median_ms": {k: statistics.median(v) for k, v in gate_ms.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"check: median {summary['median_s']}s over {args.runs} runs "
          f"(min {summary['min_s']}s, max {summary['max_s']}s; target < {TARGET_S}s); "
          f"gates: {summary['gate_median_ms']}")
    return 0 if summary["median_s"] < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
