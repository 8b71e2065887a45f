"""Run one command and write its own wall time, CPU time and peak RSS as JSON.

    python bench/measure.py RESULT.json -- COMMAND [ARG...]

The command inherits this process's stdin, stdout and stderr; its exit code is
in the result (this launcher exits 0 unless it could not run it).

Why a separate launcher: on Linux a child's ``ru_maxrss`` starts from its
parent's resident set at ``fork`` (the high-water mark survives ``exec``), so a
command started directly by the runner — which holds prebuilt bulk bodies and
grows during a session — would report the runner's memory as its own. This
process imports nothing beyond the standard library and stays ~10 MiB, below
any Python command's own peak, so the figure is the command's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def measure(argv: list[str]) -> dict[str, float | int]:
    """Run ``argv`` to completion; its exit code, wall s, user+sys CPU s and ru_maxrss KiB."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {
        "code": proc.returncode,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "max_rss_kib": usage.ru_maxrss,
    }


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(f"usage: {sys.argv[0]} RESULT.json -- COMMAND [ARG...]")
    result = measure(sys.argv[3:])
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
