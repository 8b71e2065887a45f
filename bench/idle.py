"""What does an idle logpipe sidecar cost? CPU over a quiet minute, from /proc.

    .venv/bin/python bench/idle.py [--seconds 60] [--warmup 10] [--events 5000]
        [--variants plain,alerts] [--window 10] [--no-record]

For each variant, logpipe runs as a sidecar (``python -m logpipe run
PIPELINE``, fresh data dir) against bench/null_es.py over bench/workload.py's
two logs (``--events`` lines each). Once the server has every event, and
``--warmup`` more seconds have passed, nothing is written for ``--seconds``:
the CPU logpipe used over that window (utime + stime of all its threads, from
``/proc/<pid>/stat``) is reported as a percentage of one core, with the spread
over ``--window``-second slices of it; also its context switches per second
(all threads, from ``/proc/<pid>/task/*/status``: how often it wakes up), its
threads, its RSS, and any request it sent the server meanwhile.

Variants: ``plain`` is the two inputs, static fields and the null sink;
``alerts`` adds e-mail alerts (as in pipelines/erp.yml) pointed at a
:class:`~logpipe.devservers.smtp.RecordingSMTP` in this process. Prints a
markdown section and appends it to bench/RESULTS.md (unless ``--no-record``).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from report import Spread, machine, publish
from servers import BenchError, null_server, null_stats
from sidecar import (
    Input,
    LoadWatch,
    Sidecar,
    context_switches,
    cpu_seconds,
    mib,
    pipeline_yaml,
    rss_kib,
    threads,
)
from workload import write_workload

from logpipe.devservers.smtp import RecordingSMTP

BENCH = Path(__file__).resolve().parent
VARIANTS = ("plain", "alerts")
TARGET_PERCENT = 0.5


@dataclass(frozen=True, slots=True)
class Result:
    variant: str
    seconds: float  # the measured window
    cpu: float  # CPU-s over it
    slices: list[float]  # % of a core in each slice of the window
    switches_per_second: float
    threads: int
    rss_kib: int
    requests: int  # requests the sink got during the window
    caught_up_after: float  # s from start to every event acknowledged

    @property
    def percent(self) -> float:
        return self.cpu / self.seconds * 100


def alerts_yaml(smtp_port: int) -> str:
    return f"""\
alerts:
  email:
    levels: [error, critical]
    to: ["ops-team@example.com"]
    from: logpipe@example.com
    smtp:
      host: 127.0.0.1
      port: {smtp_port}
"""


def run_variant(variant: str, args: argparse.Namespace, workdir: Path, logs: list[Input]) -> Result:
    """One sidecar: catch up, warm up, then measure a quiet window."""
    workdir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(null_server(workdir))
        extra = ""
        if variant == "alerts":
            extra = alerts_yaml(stack.enter_context(RecordingSMTP()).port)
        pipeline = workdir / "pipeline.yml"
        prefix = f"bench-idle-{variant}"
        pipeline.write_text(pipeline_yaml(logs, url, workdir / "data", prefix, extra))
        total = 2 * args.events
        with Sidecar(pipeline, workdir) as logpipe:
            deadline = time.monotonic() + 300
            while null_stats(url)["docs"] < total:
                logpipe.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"not caught up in 300 s:\n{logpipe.stderr_tail()}")
                time.sleep(0.1)
            caught_up = time.monotonic() - logpipe.started
            time.sleep(args.warmup)
            pid = logpipe.pid
            requests_before = null_stats(url)["requests"]
            switches_before = context_switches(pid)
            began, cpu_before = time.monotonic(), cpu_seconds(pid)
            slices, last_t, last_cpu = [], began, cpu_before
            while (now := time.monotonic()) < began + args.seconds:
                time.sleep(min(args.window, began + args.seconds - now))
                logpipe.check_alive()
                t, cpu = time.monotonic(), cpu_seconds(pid)
                slices.append((cpu - last_cpu) / (t - last_t) * 100)
                last_t, last_cpu = t, cpu
            seconds = last_t - began
            switches = (context_switches(pid) - switches_before) / seconds
            result = Result(
                variant, seconds, last_cpu - cpu_before, slices, switches, threads(pid),
                rss_kib(pid), sent_since(url, requests_before), caught_up,
            )  # fmt: skip
        if logpipe.code != 0:
            raise BenchError(f"logpipe exited {logpipe.code}:\n{logpipe.stderr_tail()}")
    return result


def sent_since(url: str, before: int) -> int:
    """Requests logpipe sent the null server since its counter read ``before``.

    The server counts a stats request before answering it, so ``before``
    included the request that read it, and the one made here counts once more.
    """
    return int(null_stats(url)["requests"]) - before - 1


HEADER = (
    "| variant | window s | CPU s | % of one core | slices: median (min..max) % "
    "| context switches / s | threads | RSS MiB | requests to the sink | < 0.5 % |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def row(r: Result) -> str:
    meets = "yes" if r.percent < TARGET_PERCENT else "**no**"
    return (
        f"| {r.variant} | {r.seconds:.0f} | {r.cpu:.2f} | {r.percent:.2f} "
        f"| {Spread.of(r.slices).cell('.2f')} | {r.switches_per_second:.1f} | {r.threads} "
        f"| {mib(r.rss_kib):.0f} | {r.requests} | {meets} |"
    )


def section(command: str, results: list[Result], args: argparse.Namespace, load: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    notes = [
        f"logpipe sidecar over bench/workload.py's two logs ({args.events:,} lines each), null "
        f"sink; measured once every event was acknowledged (after "
        + ", ".join(f"{r.caught_up_after:.1f} s" for r in results)
        + f") and {args.warmup:g} s more; nothing written during the window",
        "CPU: utime + stime of all of logpipe's threads (/proc/PID/stat) over the window; "
        f"slices of {args.window:g} s; `alerts` = e-mail alerts on, SMTP catcher up",
        f"target: < {TARGET_PERCENT} % of one core",
        load,
    ]
    extra = "".join(f"- {n}\n" for n in notes)
    rows = "\n".join(row(r) for r in results)
    return (
        f"## {stamp} — idle sidecar (bench/idle.py)\n\n{machine()}\n- command: `{command}`\n"
        f"{extra}\n{HEADER}\n{rows}\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the quiet window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after catching up")
    parser.add_argument("--events", type=int, default=5000, help="lines per log to catch up on")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=", ".join(VARIANTS))
    parser.add_argument("--window", type=float, default=10.0, help="seconds per slice")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(args.variants) - set(VARIANTS):
        parser.error(f"--variants: {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = []
    load = LoadWatch()
    with tempfile.TemporaryDirectory(prefix="logpipe-idle-") as tmp:
        root = Path(tmp)
        workload = write_workload(root / "logs", args.events)
        logs = [
            Input("application", workload.app_log, "app_json", "erp.application"),
            Input("access", workload.access_log, "nginx", "nginx.access"),
        ]
        for variant in args.variants:
            r = run_variant(variant, args, root / variant, logs)
            results.append(r)
            print(
                f"  {variant}: {r.percent:.2f} % of a core over {r.seconds:.0f} s, "
                f"{r.switches_per_second:.1f} context switches/s",
                flush=True,
            )
    command = "python bench/idle.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = section(command.strip(), results, args, load.note())
    publish(text, args.results, record=not args.no_record)


if __name__ == "__main__":
    main()
