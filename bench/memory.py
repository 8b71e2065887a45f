"""Does logpipe's memory stay flat through a sink outage and the catch-up after it?

    .venv/bin/python bench/memory.py [--bytes 1G] [--outage-seconds 30]
        [--outages lost,503,refused] [--interval 0.5] [--no-record]

A backlog of ``--bytes`` (decimal: 200M = 200,000,000) of bench/workload.py
lines, half application JSON, half nginx, is written before logpipe starts.
Then, for each outage kind, logpipe runs as a sidecar (``python -m logpipe run
PIPELINE``, fresh data dir) over it:

- ``lost``: bench/null_es.py answers, but bulk requests get 503 (``--down``)
  until logpipe has connected; then the server is killed, so for the rest of
  the outage every connection is refused;
- ``503``: the server answers every bulk request 503 for the whole outage;
- ``refused``: nothing listens on the port from the start.

After ``--outage-seconds`` the server comes (back) up on the same port and
the clock runs until its counter has every event. The logpipe process's VmRSS
is read from ``/proc/<pid>/status`` every ``--interval`` s throughout; VmHWM
(the kernel's own peak) is read at the end. Prints a markdown section and
appends it to bench/RESULTS.md (unless ``--no-record``). See bench/README.md.
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

from report import machine, publish
from servers import BenchError, null_server, null_stats, request
from sidecar import (
    Input,
    LoadWatch,
    RssSampler,
    Sidecar,
    cpu_seconds,
    hwm_kib,
    mib,
    pipeline_yaml,
)
from workload import access_lines, app_lines

from logpipe.devservers import free_port

BENCH = Path(__file__).resolve().parent
OUTAGES = ("lost", "503", "refused")
TARGET_MIB = 80
FLAT_MIB = 5  # the last quarter of the catch-up may peak this much above the second
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}


@dataclass(frozen=True, slots=True)
class Backlog:
    app_log: Path
    access_log: Path
    lines: int
    size: int  # bytes

    @property
    def inputs(self) -> list[Input]:
        return [
            Input("application", self.app_log, "app_json", "erp.application"),
            Input("access", self.access_log, "nginx", "nginx.access"),
        ]


def parse_size(text: str) -> int:
    """``1G`` -> 1,000,000,000; ``200M``, ``64K``, plain digits."""
    text = text.strip().upper().removesuffix("B")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    return int(float(text.removesuffix(unit) if unit else text) * _UNITS[unit])


def write_backlog(out_dir: Path, size: int, pool: int = 20_000) -> Backlog:
    """About ``size`` bytes of workload lines, half per log: a pool of lines, repeated.

    Repeats are harmless: logpipe's document ids come from the file and offset.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = 0
    paths = []
    for name, make in (("application.log", app_lines), ("access.log", access_lines)):
        chunk_lines = [(line + "\n").encode() for line in make(pool)]
        chunk = b"".join(chunk_lines)
        path = out_dir / name
        left = size // 2
        with path.open("wb") as out:
            while left >= len(chunk):
                out.write(chunk)
                left -= len(chunk)
                lines += len(chunk_lines)
            for line in chunk_lines:
                if left < len(line):
                    break
                out.write(line)
                left -= len(line)
                lines += 1
        paths.append(path)
    total = sum(p.stat().st_size for p in paths)
    return Backlog(paths[0], paths[1], lines, total)


@dataclass(frozen=True, slots=True)
class Result:
    outage: str
    outage_seconds: float
    outage_peak_kib: int
    outage_end_kib: int
    catchup_peak_kib: int
    quarters_kib: list[int]  # peak of each quarter of the catch-up
    after_kib: int  # a few seconds after the catch-up
    hwm_kib: int
    catchup_seconds: float
    catchup_cpu: float
    received: int
    summary: str


def run_outage(outage: str, backlog: Backlog, args: argparse.Namespace, workdir: Path) -> Result:
    """One sidecar run: outage, then catch-up; see the module docstring."""
    workdir.mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pipeline = workdir / "pipeline.yml"
    prefix = f"bench-memory-{outage}"
    pipeline.write_text(pipeline_yaml(backlog.inputs, url, workdir / "data", prefix))
    down_server = contextlib.ExitStack()  # answering 503; closed early for "lost"
    with down_server, contextlib.ExitStack() as up_server:
        if outage != "refused":
            down_server.enter_context(null_server(workdir, port, ["--down"]))
        with Sidecar(pipeline, workdir) as logpipe:
            sampler = RssSampler(logpipe.pid, args.interval, "outage")
            sampler.start()
            if outage == "lost":
                logpipe.wait_for_log("elasticsearch_connected")
                time.sleep(2.0)  # let the readers fill the queue and the bulk retries start
                down_server.close()  # connections refused from here on
            _wait(logpipe, logpipe.started + args.outage_seconds)
            outage_end = rss_now(sampler)
            outage_took = time.monotonic() - logpipe.started
            sampler.phase = "catch-up"
            if outage == "503":
                request(url, "POST", "/_null/up")
            else:
                up_server.enter_context(null_server(workdir, port))
            began, cpu_before = time.monotonic(), cpu_seconds(logpipe.pid)
            received = _await_all(url, backlog.lines, logpipe, args.catchup_timeout)
            catchup, cpu = time.monotonic() - began, cpu_seconds(logpipe.pid) - cpu_before
            sampler.phase = "after"
            time.sleep(max(2.0, 4 * args.interval))
            hwm = hwm_kib(logpipe.pid)
            sampler.stop()
            received = int(null_stats(url)["docs"])
        if logpipe.code != 0:
            raise BenchError(f"logpipe exited {logpipe.code}:\n{logpipe.stderr_tail()}")
    samples = [(t, kib) for t, phase, kib in sampler.samples if phase == "catch-up"]
    return Result(
        outage, outage_took, max(sampler.of("outage")), outage_end,
        max(sampler.of("catch-up")), quarter_peaks(samples), max(sampler.of("after")), hwm,
        catchup, cpu, received, logpipe.summary,
    )  # fmt: skip


def rss_now(sampler: RssSampler) -> int:
    return sampler.samples[-1][2] if sampler.samples else 0


def quarter_peaks(samples: list[tuple[float, int]]) -> list[int]:
    """The peak reading of each quarter (by time) of ``samples`` ``(time, kib)``."""
    if not samples:
        return []
    start, end = samples[0][0], samples[-1][0]
    span = (end - start) or 1.0
    peaks = [0, 0, 0, 0]
    for at, kib in samples:
        quarter = min(3, int((at - start) / span * 4))
        peaks[quarter] = max(peaks[quarter], kib)
    return peaks


def _wait(logpipe: Sidecar, until: float) -> None:
    while time.monotonic() < until:
        logpipe.check_alive()
        time.sleep(0.1)


def _await_all(url: str, events: int, logpipe: Sidecar, timeout: float) -> int:
    """Poll the null server's counter until it has ``events``; what it has."""
    deadline = time.monotonic() + timeout
    while True:
        logpipe.check_alive()
        with contextlib.suppress(OSError):  # the server may still be starting
            docs = int(null_stats(url)["docs"])
            if docs >= events or time.monotonic() > deadline:
                return docs
        time.sleep(0.1)


# -- report -----------------------------------------------------------------------------

HEADER = (
    "| outage | outage s | peak RSS in outage MiB | RSS at end of outage MiB "
    "| peak RSS in catch-up MiB | catch-up peaks by quarter MiB | RSS after MiB | VmHWM MiB "
    "| catch-up s | events/s | MB/s | CPU-s / M events | events arrived |\n"
    "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
)


def row(r: Result, backlog: Backlog) -> str:
    quarters = " / ".join(f"{mib(q):.0f}" for q in r.quarters_kib)
    arrived = f"{r.received:,} of {backlog.lines:,}"
    arrived += " ✓" if r.received == backlog.lines else " **✗**"
    return (
        f"| {r.outage} | {r.outage_seconds:.0f} "
        f"| {mib(r.outage_peak_kib):.0f} | {mib(r.outage_end_kib):.0f} "
        f"| {mib(r.catchup_peak_kib):.0f} | {quarters} | {mib(r.after_kib):.0f} "
        f"| {mib(r.hwm_kib):.0f} | {r.catchup_seconds:.1f} "
        f"| {backlog.lines / r.catchup_seconds:,.0f} "
        f"| {backlog.size / 1e6 / r.catchup_seconds:.1f} "
        f"| {r.catchup_cpu * 1e6 / backlog.lines:.1f} | {arrived} |"
    )


def verdicts(results: list[Result]) -> list[str]:
    out = []
    for r in results:
        peak = mib(max(r.outage_peak_kib, r.catchup_peak_kib, r.hwm_kib))
        q = r.quarters_kib
        growth = mib(q[3] - q[1]) if len(q) == 4 else 0.0
        flat = growth < FLAT_MIB
        out.append(
            f"{r.outage}: peak {peak:.0f} MiB (VmHWM included) — "
            f"{'under' if peak < TARGET_MIB else '**over**'} {TARGET_MIB} MiB; catch-up "
            f"{'flat' if flat else '**not flat**'} (last quarter's peak {growth:+.0f} MiB "
            f"against the second's); `{r.summary}`"
        )
    return out


def section(
    command: str, backlog: Backlog, results: list[Result], args: argparse.Namespace, load: str
) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    settings = [
        f"backlog: {backlog.size / 1e6:,.0f} MB, {backlog.lines:,} events (half the bytes "
        "application JSON, half nginx), written before logpipe starts; logpipe sidecar with "
        "default queue and batch settings, null sink",
        f"outage ~{args.outage_seconds:g} s: `lost` = 503 until logpipe connected, then "
        "connection refused; `503` = every bulk request answered 503; `refused` = nothing "
        "listening from the start. Then null_es (back) up on the same port",
        f"RSS: VmRSS from /proc every {args.interval:g} s; VmHWM at the end; catch-up: from "
        "the server up to its counter holding every event",
        f"target: peak RSS < {TARGET_MIB} MiB and flat (here: the last quarter of the "
        f"catch-up peaks < {FLAT_MIB} MiB above the second: early growth, while batches "
        "and buffers reach their size, is allowed; growth to the end is not)",
    ]
    notes = "".join(f"- {s}\n" for s in [*settings, *verdicts(results), load])
    rows = "\n".join(row(r, backlog) for r in results)
    return (
        f"## {stamp} — memory through an outage (bench/memory.py)\n\n{machine()}\n"
        f"- command: `{command}`\n{notes}\n{HEADER}\n{rows}\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=parse_size, default=10**9, help="backlog, e.g. 200M, 1G")
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--outages", default=",".join(OUTAGES), help=", ".join(OUTAGES))
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between readings")
    parser.add_argument(
        "--catchup-timeout", type=float, default=None, help="default: 600 s + 1 s per 2 MB"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.outages = [o.strip() for o in args.outages.split(",") if o.strip()]
    if set(args.outages) - set(OUTAGES):
        parser.error(f"--outages: {', '.join(OUTAGES)}")
    if args.catchup_timeout is None:
        args.catchup_timeout = 600 + args.bytes / 2e6
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: list[Result] = []
    load = LoadWatch()
    with tempfile.TemporaryDirectory(prefix="logpipe-memory-", dir=args.workdir) as tmp:
        root = Path(tmp)
        backlog = write_backlog(root / "backlog", args.bytes)
        print(f"backlog: {backlog.size / 1e6:,.0f} MB, {backlog.lines:,} events", flush=True)
        for outage in args.outages:
            r = run_outage(outage, backlog, args, root / outage)
            results.append(r)
            print(
                f"  {outage}: peak RSS outage {mib(r.outage_peak_kib):.0f} MiB, catch-up "
                f"{mib(r.catchup_peak_kib):.0f} MiB, VmHWM {mib(r.hwm_kib):.0f} MiB; catch-up "
                f"{r.catchup_seconds:.1f} s; {r.received:,} of {backlog.lines:,} arrived",
                flush=True,
            )
    command = "python bench/memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = section(command.strip(), backlog, results, args, load.note())
    publish(text, args.results, record=not args.no_record)


if __name__ == "__main__":
    main()
