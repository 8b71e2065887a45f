"""CPU per event as instructions counted, not seconds: logpipe against the baseline.

    .venv/bin/python bench/instructions.py [--events 10000] [--no-record]

Wall-clock and CPU-second figures on a shared VM drift by ±25 % within the
hour, and did so between two runs of bench/run.py an hour apart: the ratio
logpipe / baseline moved from x1.16 to x1.43 with the same code. Valgrind's
callgrind counts the instructions a process executes, which repeats to a few
parts per million run after run, whatever else the machine is doing.

For logpipe (``run --once``) and bench/baseline.py, each under callgrind,
over the null sink: once over the workload (``--events`` lines per log, twice
that many events) and once over empty files. The difference, divided by the
events, is the instructions per event, free of start-up (imports, connecting,
shutdown), which is reported apart as the empty run's count. Threads count:
callgrind follows all of them. Callgrind runs ~50x slower than the process
itself, so the workload is small; 20,000 events take a minute or two.

Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from commands import baseline_argv, pipeline_yaml
from report import machine, publish
from servers import BenchError, null_server
from workload import Workload, write_workload

BENCH = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected : (\d+)")


def counted(argv: list[str], workdir: Path) -> int:
    """Instructions ``argv`` executed, all threads, per callgrind."""
    out = workdir / "callgrind.out"
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise BenchError(
            f"{shlex.join(argv)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
        )
    return int(found[1])


def logpipe_count(workload: Workload, url: str, workdir: Path) -> int:
    workdir.mkdir(parents=True)
    pipeline = workdir / "pipeline.yml"
    pipeline.write_text(pipeline_yaml(workload, url, workdir / "data", workdir.name))
    argv = [sys.executable, "-m", "logpipe", "run", str(pipeline), "--once", "--no-progress"]
    return counted(argv, workdir)


def baseline_count(workload: Workload, url: str, workdir: Path) -> int:
    workdir.mkdir(parents=True)
    return counted(baseline_argv(workload, url, workdir.name), workdir)


def measure(events: int, workdir: Path) -> dict[str, tuple[int, int]]:
    """``{implementation: (instructions over the workload, over empty files)}``."""
    full = write_workload(workdir / "workload", events)
    empty = write_workload(workdir / "empty", 0)
    found: dict[str, tuple[int, int]] = {}
    with null_server(workdir) as url:
        for name, count in (("logpipe", logpipe_count), ("baseline", baseline_count)):
            print(f"  {name}: workload, then empty files ...", flush=True)
            found[name] = (
                count(full, url, workdir / f"{name}-full"),
                count(empty, url, workdir / f"{name}-empty"),
            )
    return found


def report(command: str, events: int, found: dict[str, tuple[int, int]]) -> str:
    total = 2 * events
    per_event = {name: (full - empty) / total for name, (full, empty) in found.items()}
    rows = "\n".join(
        f"| {name} | {total:,} | {full:,} | {empty:,} | {per_event[name]:,.0f} |"
        for name, (full, empty) in found.items()
    )
    ratio = per_event["logpipe"] / per_event["baseline"]
    fixed = found["logpipe"][1] / found["baseline"][1]
    return (
        f"## {_stamp()} — instructions per event (bench/instructions.py)\n\n{machine()}\n"
        f"- command: `{command}`\n"
        f"- callgrind (valgrind), all threads; null sink; per event = (workload - empty files)"
        f" / events\n\n"
        "| implementation | events | instructions, workload | instructions, empty files"
        " | per event |\n|---|---:|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"- **logpipe / baseline: instructions per event x{ratio:.2f}**; start-up and"
        f" shutdown x{fixed:.1f}\n"
    )


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=10_000, help="lines per log file")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="logpipe-instructions-") as tmp:
        found = measure(args.events, Path(tmp))
    command = "python bench/instructions.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    publish(report(command.strip(), args.events, found), args.results, not args.no_record)


if __name__ == "__main__":
    main()
