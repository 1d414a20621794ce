"""Score the implicit-migration detector on its corpus (tests/detect_corpus/).

Usage: python benchmarks/detector_corpus.py [--repeat N] [--out PATH]
(default PATH: benchmarks/results/detector_corpus.json)

Each case folder is a small repository tree plus expected.json ({"implicit": bool,
"findings": [{"file", "line"}], "note"}). The script scans every case, compares the verdict
and the exact set of file:line findings, times each scan (best of N), writes a JSON summary
and prints one line. Exit 1 if any verdict is wrong (a false positive or a false negative).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gonogo.detect import scan  # noqa: E402

CORPUS = ROOT / "tests" / "detect_corpus"


def run_case(case: Path, repeat: int) -> dict[str, object]:
    expected = json.loads((case / "expected.json").read_text())
    times: list[float] = []
    result = scan(case)
    for _ in range(repeat):
        started = time.perf_counter()
        result = scan(case)
        times.append(time.perf_counter() - started)
    want = {(f["file"], f["line"]) for f in expected["findings"]}
    got = {(f.file, f.line) for f in result.findings}
    verdict_ok = result.implicit == expected["implicit"]
    return {
        "case": case.name,
        "expected_implicit": expected["implicit"],
        "implicit": result.implicit,
        "verdict_correct": verdict_ok,
        "false_positive": result.implicit and not expected["implicit"],
        "false_negative": expected["implicit"] and not result.implicit,
        "exact_findings": verdict_ok and got == want,
        "missing": sorted(f"{f}:{n}" for f, n in want - got),
        "extra": sorted(f"{f}:{n}" for f, n in got - want),
        "problems": list(result.problems),
        "scan_ms": round(min(times) * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed scans per case (best of)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector_corpus.json"
    )
    args = parser.parse_args()
    cases = sorted(p for p in CORPUS.iterdir() if (p / "expected.json").is_file())
    rows = [run_case(case, max(1, args.repeat)) for case in cases]
    times = [float(str(r["scan_ms"])) for r in rows]
    median = round(statistics.median(times), 3)
    summary = {
        "benchmark": "implicit-migration detector corpus",
        "cases": len(rows),
        "implicit_cases": sum(1 for r in rows if r["expected_implicit"]),
        "safe_cases": sum(1 for r in rows if not r["expected_implicit"]),
        "correct_verdicts": sum(1 for r in rows if r["verdict_correct"]),
        "false_positives": sum(1 for r in rows if r["false_positive"]),
        "false_negatives": sum(1 for r in rows if r["false_negative"]),
        "exact_findings_matches": sum(1 for r in rows if r["exact_findings"]),
        "cases_with_problems": sum(1 for r in rows if r["problems"]),
        "scan_ms": {
            "min": min(times),
            "median": median,
            "max": max(times),
            "total": round(sum(times), 3),
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    wrong = [r["case"] for r in rows if not r["verdict_correct"]]
    print(
        f"detector corpus: {summary['correct_verdicts']}/{summary['cases']} verdicts correct "
        f"({summary['false_positives']} false positives, {summary['false_negatives']} false "
        f"negatives), {summary['exact_findings_matches']}/{summary['cases']} exact file:line "
        f"matches, median {median} ms/scan"
        + (f"; WRONG: {', '.join(map(str, wrong))}" if wrong else "")
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
