"""Two processes at once, with no coordination: what any two-process design can reach here.

``bench/run.py --split`` adds three rows to each round:

- **baseline, 2 processes (half of each file)**: two ``baseline.py`` runs
  started together, each over one half of both logs (split at the middle
  line). Nothing is shared between them, not even a file: the most two
  processes doing the baseline's work can do on this machine, with the sink
  on the same cores.
- **logpipe, 2 processes (one input each)**: two ``logpipe run --once``
  started together, one with the application input, one with the access
  input, each with its own data dir. Also nothing shared: the upper bound of
  any design that gives each input its own process (a real one would also
  merge checkpoints, alerts and metrics in one place). Its speed is that of
  the slower input.
- **logpipe, 2 processes (half of each file)**: two ``logpipe run --once``
  over the baseline pair's halves, each with both inputs. The work split in
  two equal parts with no coordination at all: the bound of any two-process
  logpipe here, whatever its design (per-input processes, or the per-line
  step in workers, as ``workers: N`` does).

For each pair the wall time runs from starting the first to the end of the
second (it includes ~20 ms of the launchers' own start), the CPU is the two
processes' sum, and the peak RSS the sum of the two peaks (both are alive at
once; the sum of the peaks bounds the peak of the sum from above).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from commands import SUMMARY, baseline_argv, install_template, logpipe_argv, pipeline_yaml
from report import Measurement
from servers import BenchError
from workload import Workload

BENCH = Path(__file__).resolve().parent
BASELINE_PAIR = "baseline, 2 processes (half of each file)"
LOGPIPE_PAIR = "logpipe, 2 processes (one input each)"
LOGPIPE_HALVES = "logpipe, 2 processes (half of each file)"


def run_pair(
    argvs: tuple[list[str], list[str]], workdirs: tuple[Path, Path], events: int
) -> Measurement:
    """Start both commands (through bench/measure.py), wait for both; the pair's figures."""
    procs, outputs = [], []
    start = time.perf_counter()
    for argv, workdir in zip(argvs, workdirs, strict=True):
        workdir.mkdir(parents=True, exist_ok=True)
        launcher = [sys.executable, str(BENCH / "measure.py"), str(workdir / "usage.json"), "--"]
        out, err = (workdir / "stdout").open("wb"), (workdir / "stderr").open("wb")
        outputs += [out, err]
        procs.append(
            subprocess.Popen([*launcher, *argv], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        )
    for proc in procs:
        proc.wait()
    wall = time.perf_counter() - start
    for output in outputs:
        output.close()
    cpu, rss = 0.0, 0
    for proc, workdir in zip(procs, workdirs, strict=True):
        usage = orjson.loads((workdir / "usage.json").read_bytes()) if proc.returncode == 0 else {}
        if usage.get("code") != 0:
            tail = (workdir / "stderr").read_text(errors="replace")[-2000:]
            raise BenchError(f"{workdir.name} failed (exit {usage.get('code')}):\n{tail}")
        cpu += usage["cpu"]
        rss += usage["max_rss_kib"]
    return Measurement(events, wall, cpu, rss)


def split_workload(workload: Workload, out_dir: Path) -> tuple[Workload, Workload]:
    """Both logs cut at their middle line: two workloads of half the events each."""
    halves = []
    for part in (1, 2):
        folder = out_dir / f"half-{part}"
        folder.mkdir(parents=True, exist_ok=True)
        halves.append(folder)
    first = workload.events_per_log // 2
    for log in (workload.app_log, workload.access_log):
        lines = log.read_bytes().splitlines(keepends=True)
        (halves[0] / log.name).write_bytes(b"".join(lines[:first]))
        (halves[1] / log.name).write_bytes(b"".join(lines[first:]))
    sizes = (first, workload.events_per_log - first)
    return (
        Workload(halves[0] / workload.app_log.name, halves[0] / workload.access_log.name, sizes[0]),
        Workload(halves[1] / workload.app_log.name, halves[1] / workload.access_log.name, sizes[1]),
    )


Step = Callable[[str, int], Measurement]


def pair_steps(workload: Workload, workdir: Path) -> dict[str, Step]:
    """The three rows' measurements, each given the server URL and the run number."""
    halves = split_workload(workload, workdir / "halves")

    def baselines(url: str, i: int) -> Measurement:
        prefix = f"bench-baseline-pair-{i}"
        install_template(url, prefix)
        dirs = (workdir / f"baseline-pair-{i}-a", workdir / f"baseline-pair-{i}-b")
        argvs = (baseline_argv(halves[0], url, prefix), baseline_argv(halves[1], url, prefix))
        measured = run_pair(argvs, dirs, workload.total)
        created = sum(orjson.loads((d / "stdout").read_bytes())["created"] for d in dirs)
        if created != workload.total:
            raise BenchError(f"{BASELINE_PAIR}: {created} of {workload.total} created")
        return measured

    def logpipes(
        name: str, slug: str, workloads: tuple[Workload, Workload], inputs: list[tuple[str, ...]]
    ) -> Step:
        """Two logpipes at once: each over its workload, reading only its inputs."""

        def step(url: str, i: int) -> Measurement:
            prefix = f"bench-logpipe-{slug}-{i}"
            dirs = (workdir / f"{prefix}-a", workdir / f"{prefix}-b")
            argvs = []
            for folder, part, names in zip(dirs, workloads, inputs, strict=True):
                folder.mkdir(parents=True)
                pipeline = folder / "pipeline.yml"
                pipeline.write_text(pipeline_yaml(part, url, folder / "data", prefix, inputs=names))
                argvs.append(logpipe_argv(pipeline))
            measured = run_pair((argvs[0], argvs[1]), dirs, workload.total)
            for folder, part, names in zip(dirs, workloads, inputs, strict=True):
                found = SUMMARY.search((folder / "stderr").read_text(errors="replace"))
                expected = part.events_per_log * len(names)
                if found is None or int(found[2]) != expected:
                    raise BenchError(f"{name}: {folder.name} did not index its {expected} lines")
            return measured

        return step

    both = ("application", "access")
    return {
        LOGPIPE_PAIR: logpipes(LOGPIPE_PAIR, "inputs", (workload, workload), [both[:1], both[1:]]),
        LOGPIPE_HALVES: logpipes(LOGPIPE_HALVES, "halves", halves, [both, both]),
        BASELINE_PAIR: baselines,
    }
