"""Run the fault suite and print its results as a markdown table.

    python tests/faults/report.py                 # runs pytest tests/faults, then prints
    python tests/faults/report.py --scale 3       # bigger: LOGPIPE_FAULTS_SCALE=3
    python tests/faults/report.py --from FILE     # only format results already recorded

Each scenario's verdict is one JSON line appended by the harness to the file
named by ``LOGPIPE_FAULTS_RESULTS``; this script sets it, runs pytest, and
formats what was recorded (a scenario that failed before its verdict shows up
in pytest's output, not in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of scenario verdicts, in the order they ran."""
    rows = [
        "| scenario | lines written | lost | duplicated | dead-lettered "
        "| recovery s | peak RSS MiB | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        recovery = "—" if r["recovery_seconds"] is None else f"{r['recovery_seconds']:.1f}"
        rss = "—" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}"
        rows.append(
            f"| {r['scenario']} | {r['written']:,} | {r['lost']} | {r['duplicated']} "
            f"| {r['dead_lettered']} | {recovery} | {rss} | {r.get('notes', '')} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="LOGPIPE_FAULTS_SCALE")
    parser.add_argument("--from", dest="source", type=Path, help="format this results file")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    code = 0
    if args.source is not None:
        results_file = args.source
    else:
        results_file = Path(tempfile.mkstemp(prefix="faults-", suffix=".jsonl")[1])
        env = {
            **os.environ,
            "LOGPIPE_FAULTS_RESULTS": str(results_file),
            "LOGPIPE_FAULTS_SCALE": str(args.scale),
        }
        timeout = str(max(120, int(120 * args.scale)))
        command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "--timeout", timeout]
        code = subprocess.run([*command, *args.pytest_args], cwd=REPO, env=env).returncode
    print(f"\nScale {args.scale:g}; results in {results_file}\n")
    print(table(load(results_file)))
    return code


if __name__ == "__main__":
    sys.exit(main())
