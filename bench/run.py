"""Benchmark ``logpipe run --once`` against a plain-Python baseline and the server itself.

    .venv/bin/python bench/run.py [--events 500000] [--noida-events 10000] [--runs 3]
                                  [--sinks null,noida] [--profile] [--no-record]

For each sink (``null``: bench/null_es.py, a bulk endpoint that stores nothing;
``noida``: the noida-db Elasticsearch-compatible server), K times in alternating
order: ``logpipe run PIPELINE --once`` over a generated workload (fresh data
dir, so everything is re-read; a new index prefix per run) and
``bench/baseline.py`` over the same files, each as a child process whose CPU
and peak RSS come from ``os.wait4`` (in bench/measure.py); then the server
ceiling: prebuilt bulk bodies of the same documents POSTed with ``http.client``
(wall time only), once with the baseline's request size and once with the size
logpipe's requests grow to while a backlog waits. noida-db is started afresh
for every measurement.
Prints a markdown table and appends it to bench/RESULTS.md with the machine.
See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pstats
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from baseline import BulkPoster, bulk_bodies, documents
from commands import (
    BATCH,
    SUMMARY,
    baseline_argv,
    install_template,
    logpipe_argv,
    pipeline_yaml,
)
from report import Measurement, Row, publish, section
from servers import BenchError, indexed_total, noida_server, null_cpu, null_server
from split import Step, pair_steps
from workload import Workload, write_workload

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
_SITE = str(Path(orjson.__file__).parent.parent) + "/"  # site-packages, trimmed from profiles
# logpipe's default batch.backlog_max_events: while a backlog waits its requests grow to
# this, so the server's ceiling is measured at this request size too.
BATCH_LARGE = 8000
LARGE_CEILING = f"server ceiling, {BATCH_LARGE}/request"
CEILINGS = ("server ceiling", LARGE_CEILING)


@dataclass(frozen=True, slots=True)
class Child:
    """A finished child process: its exit code, output and resource usage."""

    code: int
    stdout: str
    stderr: str
    wall: float
    cpu: float
    max_rss_kib: int


def run_child(argv: list[str], workdir: Path) -> Child:
    """Run ``argv`` to completion through bench/measure.py (see there for why)."""
    out_path, err_path, result_path = (workdir / n for n in ("stdout", "stderr", "usage.json"))
    launcher = [sys.executable, str(BENCH / "measure.py"), str(result_path), "--"]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        subprocess.run(
            [*launcher, *argv], stdout=out, stderr=err, stdin=subprocess.DEVNULL, check=True
        )
    usage = orjson.loads(result_path.read_bytes())
    return Child(
        usage["code"],
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        usage["wall"],
        usage["cpu"],
        usage["max_rss_kib"],
    )


def prepare_logpipe(
    workload: Workload, url: str, workdir: Path, prefix: str, workers: int = 0
) -> Path:
    """Write a pipeline file with a fresh data dir under ``workdir``; return its path."""
    workdir.mkdir(parents=True)
    pipeline = workdir / "pipeline.yml"
    pipeline.write_text(pipeline_yaml(workload, url, workdir / "data", prefix, workers))
    return pipeline


def run_logpipe(
    workload: Workload, url: str, workdir: Path, prefix: str, workers: int = 0
) -> Measurement:
    """One ``logpipe run --once``; every line must be reported indexed.

    With ``workers``, the CPU and RSS are those of logpipe and its worker
    processes together (they are its children, waited for before it exits):
    CPU summed, RSS the largest of them (``ru_maxrss`` is a maximum, not a sum).
    """
    pipeline = prepare_logpipe(workload, url, workdir, prefix, workers)
    child = run_child(logpipe_argv(pipeline), workdir)
    found = SUMMARY.search(child.stderr)
    if child.code != 0 or found is None or int(found[2]) != workload.total:
        raise BenchError(f"logpipe run failed (exit {child.code}):\n{child.stderr[-2000:]}")
    return Measurement(workload.total, child.wall, child.cpu, child.max_rss_kib)


def run_baseline(workload: Workload, url: str, workdir: Path, prefix: str) -> Measurement:
    """One bench/baseline.py run; every document must be answered created."""
    workdir.mkdir(parents=True)
    install_template(url, prefix)  # the same mappings logpipe installs for itself
    child = run_child(baseline_argv(workload, url, prefix), workdir)
    created = orjson.loads(child.stdout)["created"] if child.code == 0 else -1
    if created != workload.total:
        raise BenchError(f"baseline failed (exit {child.code}):\n{child.stderr[-2000:]}")
    return Measurement(workload.total, child.wall, child.cpu, child.max_rss_kib)


def run_ceiling(workload: Workload, url: str, prefix: str, batch: int = BATCH) -> Measurement:
    """POST prebuilt bulk bodies of ``batch`` documents; only the POSTs are timed."""
    install_template(url, prefix)
    docs = (
        doc
        for path, kind in ((workload.app_log, "app"), (workload.access_log, "access"))
        for doc in documents(path, kind, prefix)
    )
    bodies = [body for body, _ in bulk_bodies(docs, batch)]
    poster = BulkPoster(url)
    start = time.perf_counter()
    try:
        for body in bodies:
            poster.post(body)
    finally:
        poster.close()
    wall = time.perf_counter() - start
    if poster.created != workload.total:
        raise BenchError(f"server ceiling: {poster.created} of {workload.total} created")
    return Measurement(workload.total, wall)


def workers_name(workers: int) -> str:
    """The row of logpipe with ``workers: N``."""
    return f"logpipe, {workers} worker{'s' if workers > 1 else ''}"


def make_steps(
    workload: Workload, workdir: Path, workers: int = 0, split: bool = False
) -> dict[str, Step]:
    """The measurements, each given the server URL and the run number."""

    def logpipe(url: str, i: int) -> Measurement:
        return run_logpipe(workload, url, workdir / f"logpipe-{i}", f"bench-logpipe-{i}")

    def logpipe_workers(url: str, i: int) -> Measurement:
        prefix = f"bench-logpipe-w{workers}-{i}"
        return run_logpipe(workload, url, workdir / f"logpipe-w{workers}-{i}", prefix, workers)

    def baseline(url: str, i: int) -> Measurement:
        return run_baseline(workload, url, workdir / f"baseline-{i}", f"bench-baseline-{i}")

    def ceiling(url: str, i: int) -> Measurement:
        return run_ceiling(workload, url, f"bench-ceiling-{i}")

    def large_ceiling(url: str, i: int) -> Measurement:
        return run_ceiling(workload, url, f"bench-ceiling-large-{i}", BATCH_LARGE)

    steps = {"logpipe": logpipe, "baseline": baseline}
    if workers:
        steps[workers_name(workers)] = logpipe_workers
    if split:
        steps.update(pair_steps(workload, workdir / "pairs"))
    return {**steps, "server ceiling": ceiling, LARGE_CEILING: large_ceiling}


def bench_sink(
    sink: str, workload: Workload, runs: int, workdir: Path, workers: int = 0, split: bool = False
) -> list[Row]:
    """K alternating logpipe / baseline runs, each followed by a ceiling run; one row each.

    With ``workers``, logpipe with that many worker processes runs too, between
    the two (logpipe, workers, baseline; then baseline, workers, logpipe); with
    ``split``, so do the two pairs of bench/split.py.

    The null server is shared (it keeps no state). noida-db is started afresh
    for every measurement: it slows down as it holds more documents, which
    would otherwise favour whatever ran first.
    """
    steps = make_steps(workload, workdir, workers, split)
    rows = {name: Row(sink, name, []) for name in steps}
    middle = [name for name in steps if name not in ("logpipe", "baseline", *CEILINGS)]
    with contextlib.ExitStack() as shared:
        null_url = shared.enter_context(null_server(workdir)) if sink == "null" else None
        for i in range(runs):
            order = ["logpipe", *middle, "baseline"]
            order = order if i % 2 == 0 else order[::-1]
            for step, name in enumerate([*order, *CEILINGS]):
                server = (
                    contextlib.nullcontext(null_url)
                    if null_url is not None
                    else noida_server(workdir / f"noida-{i}-{step}")
                )
                with server as url:
                    before = indexed_total(sink, url) if sink == "null" else 0
                    cpu_before = null_cpu(url) if sink == "null" else 0.0
                    measured = steps[name](url, i)
                    if sink == "null" and measured.cpu is not None:
                        sink_cpu = null_cpu(url) - cpu_before
                        measured = replace(measured, sink_cpu=sink_cpu)
                    held = indexed_total(sink, url) - before
                if held != workload.total:
                    raise BenchError(
                        f"{sink} got {held} documents from {name}, not {workload.total}"
                    )
                rows[name].runs.append(measured)
                print(
                    f"  {sink} {name} run {i + 1}/{runs}: {measured.wall:.2f} s wall, "
                    f"{measured.rate:,.0f} events/s",
                    flush=True,
                )
    return list(rows.values())


def profile_logpipe(workload: Workload, url: str, workdir: Path, top: int = 10) -> str:
    """One ``logpipe run --once`` under cProfile, as markdown: where the time goes."""
    pipeline = prepare_logpipe(workload, url, workdir, "bench-profile")
    stats_file = workdir / "logpipe.prof"
    child = run_child(logpipe_argv(pipeline, stats_file), workdir)
    if child.code != 0:
        raise BenchError(f"profiled logpipe run failed:\n{child.stderr[-2000:]}")
    # By cumulative time only logpipe's own functions (click and runpy frames would
    # fill the list); by own time, everything, since that is where the CPU goes.
    cumulative = _pstats_lines(stats_file, "cumulative", r"/logpipe/", top)
    own = _pstats_lines(stats_file, "tottime", None, top)
    return (
        f"cProfile of one logpipe run on the null sink ({workload.total:,} events; "
        f"profiled wall {child.wall:.2f} s):\n\n"
        f"logpipe functions by cumulative time:\n\n```\n{cumulative}\n```\n\n"
        f"all functions by own time:\n\n```\n{own}\n```"
    )


def _pstats_lines(stats_file: Path, sort: str, restrict: str | None, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=out)
    stats.sort_stats(sort).print_stats(*([restrict] if restrict else []), top)
    text = out.getvalue()
    lines = text[text.index("   ncalls") :].rstrip().splitlines()
    return "\n".join(line.replace(str(REPO) + "/", "").replace(_SITE, "") for line in lines)


def fixed_cost(url: str, workdir: Path, runs: int) -> Measurement:
    """logpipe over empty files: start-up, connect, template, shutdown (median run)."""
    empty = write_workload(workdir / "empty-workload", 0)
    measured = [
        run_logpipe(empty, url, workdir / f"empty-{i}", f"bench-empty-{i}") for i in range(runs)
    ]
    return sorted(measured, key=lambda m: m.wall)[len(measured) // 2]


def fixed_cost_note(fixed: Measurement, rows: list[Row]) -> str:
    """The fixed cost, and logpipe's CPU per event once it is taken out."""
    logpipe = next(row for row in rows if row.impl == "logpipe")
    cpu = logpipe.spread("cpu")
    assert cpu is not None and fixed.cpu is not None and fixed.max_rss_kib is not None
    net = (cpu.median - fixed.cpu) * 1_000_000 / logpipe.runs[0].events
    return (
        f"fixed cost of one `logpipe run --once` over empty files (interpreter start, "
        f"imports, connect, template, shutdown): {fixed.wall:.2f} s wall, {fixed.cpu:.2f} "
        f"CPU-s, {fixed.max_rss_kib / 1024:.0f} MiB peak RSS; net of it, logpipe spends "
        f"{net:.1f} CPU-s per million events on the {logpipe.sink} sink"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark logpipe run --once.")
    parser.add_argument(
        "--events",
        type=int,
        default=500_000,
        help="lines per log file (x2 events) for the null sink",
    )
    parser.add_argument(
        "--noida-events",
        type=int,
        default=10_000,
        help="lines per log file for noida-db (slow: 3-7k docs/s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per implementation")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="also run logpipe with `workers: N` (the per-line step in N processes)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="also run two processes at once: two baselines over halves, two logpipes"
        " with an input each (bench/split.py)",
    )
    parser.add_argument("--sinks", default="null,noida", help="comma list: null, noida")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one logpipe run on the null sink (cProfile)",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.sinks = [s.strip() for s in args.sinks.split(",") if s.strip()]
    unknown = set(args.sinks) - {"null", "noida"}
    if unknown:
        parser.error(f"unknown sinks: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = {"null": args.events, "noida": args.noida_events}
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="logpipe-bench-") as tmp:
        root = Path(tmp)
        for sink in args.sinks:
            workload = write_workload(root / f"workload-{sizes[sink]}", sizes[sink])
            print(f"{sink}: {workload.total:,} events x {args.runs} runs", flush=True)
            (root / sink).mkdir()
            sink_rows = bench_sink(sink, workload, args.runs, root / sink, args.workers, args.split)
            rows += sink_rows
            if sink == "null":
                notes += null_extras(workload, sink_rows, args, root / "extras")
    command = "python bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    settings = (
        f"events per run: {', '.join(f'{s} {sizes[s] * 2:,}' for s in args.sinks)}; "
        f"{args.runs} runs per implementation, medians (min..max); "
        f"baseline and server ceiling: {BATCH} docs per request (and {BATCH_LARGE})"
    )
    text = section(command.strip(), settings, rows, notes)
    publish(text, args.results, record=not args.no_record)


def null_extras(
    workload: Workload, rows: list[Row], args: argparse.Namespace, workdir: Path
) -> list[str]:
    """Notes measured on the null sink: logpipe's fixed cost, and the profile if asked."""
    workdir.mkdir()
    with null_server(workdir) as url:
        notes = [fixed_cost_note(fixed_cost(url, workdir, args.runs), rows)]
        if args.profile:
            notes.append(profile_logpipe(workload, url, workdir / "profile"))
    return notes


if __name__ == "__main__":
    main()
