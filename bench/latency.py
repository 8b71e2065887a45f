"""How long from a line written to its document acknowledged, or searchable? Measure it.

    .venv/bin/python bench/latency.py [--rates 1000,10000] [--seconds 60] [--sinks null,noida]
        [--runs 1] [--warmup 2] [--segment-docs 1000] [--poll-interval 0.1]
        [--drain-timeout 120] [--no-record]

For each sink and rate: logpipe runs as a sidecar (``python -m logpipe run
PIPELINE``, one ``app_json`` input, a fresh data dir) while a writer thread in
this process appends application lines (bench/workload.py's, numbered and
stamped by bench/livelog.py) to the file at a fixed rate, each write flushed
at once. Latency per line:

- ``null`` (bench/null_es.py ``--record-field bench_seq``): **written ->
  acknowledged**, from the write to null_es answering the bulk request that
  carried the line (it records its clock per document);
- ``noida`` (a fresh noida-db): **written -> searchable**, from the write to the
  answer of the first ``_count`` that counts the line. noida-db refreshes an
  index every ``index.refresh_interval`` (1 s in logpipe's template), only once
  it has been searched, and its reads are slow and stall its indexing; so lines
  carry a fake day that advances every ``--segment-docs`` lines (one daily
  index each), every index is created and searched before the writer starts,
  and a poller counts, every ``--poll-interval`` s, only the indices not yet
  complete (bench/noida_visibility.py). The refresh itself is probed, and
  reported, before each run.

The first ``--warmup`` seconds of lines are left out. Prints a markdown section
and appends it to bench/RESULTS.md (unless ``--no-record``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from livelog import (
    SEQ_FIELD,
    LineMaker,
    Writer,
    latencies_from_arrivals,
    latencies_from_polls,
    percentile,
)
from noida_visibility import Refresh, VisibilityPoller, prepare_noida
from report import Spread, machine, publish
from servers import BenchError, noida_server, null_server, null_stats, request
from sidecar import Input, LoadWatch, Sidecar, cpu_seconds, hwm_kib, mib, pipeline_yaml

BENCH = Path(__file__).resolve().parent
TARGET_P99 = 1.0  # seconds, at 1,000 lines/s (issue #5)
# logpipe's bulk_settled event, and elastic_transport's line for each request.
_SETTLED = re.compile(r'"message":"bulk_settled","logpipe":\{"items":(\d+)')
_BULK_REQUEST = re.compile(r"/_bulk\S* \[status:\d+ duration:([\d.]+)s\]")


@dataclass(frozen=True, slots=True)
class Result:
    sink: str
    rate: int
    latencies: list[float]  # seconds, after warm-up; inf: not seen within the drain time
    cpu_share: float  # logpipe's CPU-s per second of the run
    hwm_kib: int
    writer_lag: float
    writer_rate: float
    lines_per_write: float
    poll_rtt: float | None  # median _count round trip (noida)
    refresh: Refresh | None  # noida
    bulks: Bulks
    summary: str

    @property
    def missing(self) -> int:
        return sum(math.isinf(x) for x in self.latencies)


@dataclass(frozen=True, slots=True)
class Bulks:
    """logpipe's bulk requests during a run, from its debug log."""

    items: list[int]  # documents per request
    seconds: list[float]  # how long the server took to answer each

    @classmethod
    def from_log(cls, text: str) -> Bulks:
        """Parse logpipe's ``bulk_settled`` events and the client's request lines."""
        items = [int(n) for n in _SETTLED.findall(text)]
        return cls(items, [float(s) for s in _BULK_REQUEST.findall(text)])

    def describe(self) -> str:
        if not self.items or not self.seconds:
            return "n/a (not in logpipe's debug log)"
        items, secs = Spread.of([float(n) for n in self.items]), Spread.of(self.seconds)
        return (
            f"{len(self.seconds)} requests, {items.median:,.0f} documents each (median; max "
            f"{items.high:,.0f}), answered in {secs.median * 1000:,.0f} ms (median; max "
            f"{secs.high * 1000:,.0f} ms)"
        )


def null_arrivals(url: str) -> list[tuple[float, int]]:
    """Every (time, bench_seq) null_es recorded, fetched page by page."""
    out: list[tuple[float, int]] = []
    start = 0
    while True:
        page = orjson.loads(request(url, "GET", f"/_null/arrivals?from={start}")[1])
        out += [(float(t), int(n)) for t, n in page["arrivals"]]
        start = page["next"]
        if start >= page["total"]:
            return out


@contextlib.contextmanager
def sink_server(sink: str, workdir: Path) -> Iterator[str]:
    if sink == "null":
        with null_server(workdir, options=["--record-field", SEQ_FIELD]) as url:
            yield url
    else:
        with noida_server(workdir) as url:
            yield url


def run_once(sink: str, rate: int, args: argparse.Namespace, workdir: Path) -> Result:
    """One sidecar run at ``rate`` lines/s against ``sink``; see the module docstring."""
    (workdir / "logs").mkdir(parents=True)
    log = workdir / "logs" / "application.log"
    log.touch()  # before logpipe starts, so it opens the file at once
    maker = LineMaker(args.segment_docs)
    writer = Writer(log, maker, rate, args.seconds)
    prefix = f"bench-latency-{workdir.name}"
    poller: VisibilityPoller | None = None
    refresh = None
    with sink_server(sink, workdir) as url:
        inputs = [Input("application", log, "app_json", "erp.application")]
        pipeline = workdir / "pipeline.yml"
        pipeline.write_text(pipeline_yaml(inputs, url, workdir / "data", prefix))
        # At debug level logpipe logs each bulk request (a few lines a second).
        with Sidecar(pipeline, workdir, log_level="debug") as logpipe:
            logpipe.wait_for_log("elasticsearch_connected")
            if sink == "noida":
                refresh = prepare_noida(url, prefix, maker, writer.total)
                poller = VisibilityPoller(
                    url, maker, prefix, writer.total, lambda: len(writer.written),
                    args.poll_interval,
                )  # fmt: skip
            time.sleep(1.0)  # let the tailer settle on the empty file
            cpu_share = _write(writer, poller, logpipe.pid)
            _await_delivery(url, poller, writer.total, args.drain_timeout, logpipe)
            peak = hwm_kib(logpipe.pid)
            if poller is not None:
                poller.stop()
            arrivals = null_arrivals(url) if poller is None else []
        if logpipe.code != 0:
            raise BenchError(f"logpipe exited {logpipe.code}:\n{logpipe.stderr_tail()}")
    written = writer.written
    rtt = None
    if poller is None:
        lat = latencies_from_arrivals(written, arrivals)
    else:
        lat = latencies_from_polls(written, [(p.received, p.first, p.count) for p in poller.polls])
        rtt = statistics.median(p.received - p.sent for p in poller.polls)
    kept = [x for x, w in zip(lat, written, strict=True) if w - written[0] >= args.warmup]
    return Result(
        sink, rate, kept, cpu_share, peak, writer.max_lag, writer.achieved_rate,
        len(written) / max(1, writer.writes), rtt, refresh,
        Bulks.from_log(logpipe.stderr_text()), logpipe.summary,
    )  # fmt: skip


def _write(writer: Writer, poller: VisibilityPoller | None, pid: int) -> float:
    """Run the writer (and the poller) to the writer's end; logpipe's CPU share meanwhile."""
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    writer.start()
    if poller is not None:
        poller.start()
    writer.join()
    if writer.error is not None:
        raise writer.error
    return (cpu_seconds(pid) - cpu_before) / (time.monotonic() - began)


def _await_delivery(
    url: str,
    poller: VisibilityPoller | None,
    total: int,
    timeout: float,
    logpipe: Sidecar,
) -> None:
    """Wait until every line is acknowledged (null) or seen (noida), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logpipe.check_alive()
        if poller is not None and poller.failure is not None:
            raise BenchError(f"polling noida-db failed: {poller.failure!r}")
        done = poller.visible if poller is not None else null_stats(url)["docs"]
        if done >= total:
            return
        time.sleep(0.1)


# -- report -----------------------------------------------------------------------------

HEADER = (
    "| sink | measured | lines/s | runs | lines measured | p50 ms | p90 ms | p99 ms | max ms "
    "| p99 < 1 s | logpipe CPU % of a core, while writing | logpipe peak RSS MiB "
    "| writer: lines/s, lines per write, max lag ms |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
)
MEASURED = {"null": "written → acked", "noida": "written → searchable"}


def _ms(seconds: float, timeout: float) -> str:
    return f"> {timeout * 1000:,.0f}" if math.isinf(seconds) else f"{seconds * 1000:,.0f}"


def _cell(values: list[float], fmt: str) -> str:
    """One value, or the median (min..max) of several runs."""
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return Spread.of(values).cell(fmt)


def _ms_cell(values: list[float], timeout: float) -> str:
    if any(math.isinf(v) for v in values):
        return " / ".join(_ms(v, timeout) for v in values)
    return _cell([v * 1000 for v in values], ",.0f")


def table(results: list[Result], timeout: float) -> str:
    lines = [HEADER]
    for sink, rate in dict.fromkeys((r.sink, r.rate) for r in results):
        rs = [r for r in results if (r.sink, r.rate) == (sink, rate)]
        q = {p: [percentile(r.latencies, p) for r in rs] for p in (50, 90, 99, 100)}
        meets = "yes" if all(v < TARGET_P99 for v in q[99]) else "**no**"
        lines.append(
            f"| {sink} | {MEASURED[sink]} | {rate:,} | {len(rs)} "
            f"| {_cell([len(r.latencies) for r in rs], ',.0f')} "
            + "".join(f"| {_ms_cell(q[p], timeout)} " for p in (50, 90, 99, 100))
            + f"| {meets} | {_cell([r.cpu_share * 100 for r in rs], '.1f')} "
            f"| {_cell([mib(r.hwm_kib) for r in rs], '.0f')} "
            f"| {_cell([r.writer_rate for r in rs], ',.0f')}, "
            f"{_cell([r.lines_per_write for r in rs], '.1f')}, "
            f"{_cell([r.writer_lag * 1000 for r in rs], '.0f')} |"
        )
    return "\n".join(lines)


def notes(results: list[Result], args: argparse.Namespace) -> list[str]:
    out = [
        f"each run: logpipe sidecar (`logpipe run PIPELINE --log-level debug`, which logs "
        "each bulk request; default batch settings: max_age 0.5 s, 2000 events), one app_json "
        "input; the writer writes the lines due every ~1 ms (one per `write()` at 1,000/s) "
        f"for {args.seconds:g} s, "
        f"the first {args.warmup:g} s of lines left out; percentiles nearest-rank over the "
        f"lines; lines not seen within {args.drain_timeout:g} s after the writer stopped "
        "count as infinite",
    ]
    if any(r.sink == "null" for r in results):
        out.append(
            "**null: written → acknowledged**: from the writer's `write()` to bench/null_es.py "
            "answering the bulk request holding the line (no refresh: nothing is searchable)"
        )
    noida = [r for r in results if r.sink == "noida"]
    if noida:
        rtt = statistics.median(r.poll_rtt for r in noida if r.poll_rtt is not None)
        probes = [r.refresh for r in noida if r.refresh is not None]
        setting = ", ".join(sorted({p.setting for p in probes}))
        period = statistics.median(p.period for p in probes)
        lag = statistics.median(p.lag_median for p in probes)
        lag_max = max(p.lag_max for p in probes)
        out.append(
            f"**noida: written → searchable**: to the answer of the first `_count` that "
            f"counted the line, polled every {args.poll_interval:g} s (median round trip "
            f"{rtt * 1000:.0f} ms); one fake day (daily index) per {args.segment_docs:,} "
            "lines, every index created and searched before writing (noida-db refreshes "
            "only indices searched once)"
        )
        out.append(
            f"noida-db's refresh: `index.refresh_interval` {setting} (logpipe's template); "
            f"probed before each run (one document every 0.1 s, `_count` every 10 ms): new "
            f"documents became visible every {period:.2f} s (median), a document "
            f"{lag * 1000:.0f} ms (median; max {lag_max * 1000:.0f} ms) after its bulk "
            "request was answered — that much of the latency is the server's"
        )
    for r in results:
        out.append(f"{r.sink} {r.rate:,}/s: logpipe's bulk requests: {r.bulks.describe()}")
    for r in results:
        if r.missing or " 0 dead-lettered" not in r.summary:
            out.append(f"{r.sink} {r.rate:,}/s: {r.missing:,} lines not seen; `{r.summary}`")
    return out


def section(command: str, results: list[Result], args: argparse.Namespace, load: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    extra = "".join(f"- {n}\n" for n in [*notes(results, args), load])
    return (
        f"## {stamp} — latency (bench/latency.py)\n\n{machine()}\n- command: `{command}`\n"
        f"{extra}\nTarget: p99 < 1 s at 1,000 lines/s.\n\n{table(results, args.drain_timeout)}\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,10000", help="lines/s, comma list")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the writer writes")
    parser.add_argument("--sinks", default="null,noida", help="comma list: null, noida")
    parser.add_argument("--runs", type=int, default=1, help="runs per (sink, rate)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of lines left out")
    parser.add_argument(
        "--segment-docs", type=int, default=1000, help="lines per fake day (0: one day)"
    )
    parser.add_argument("--poll-interval", type=float, default=0.1, help="noida _count period")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    args.sinks = [s.strip() for s in args.sinks.split(",") if s.strip()]
    if set(args.sinks) - {"null", "noida"}:
        parser.error("--sinks: null, noida")
    if args.seconds <= args.warmup:
        parser.error("--seconds must be more than --warmup")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: list[Result] = []
    load = LoadWatch()
    with tempfile.TemporaryDirectory(prefix="logpipe-latency-") as tmp:
        for sink in args.sinks:
            for rate in args.rates:
                for i in range(args.runs):
                    r = run_once(sink, rate, args, Path(tmp) / f"{sink}-{rate}-{i}")
                    results.append(r)
                    print(
                        f"  {sink} {rate:,}/s run {i + 1}: p50 "
                        f"{percentile(r.latencies, 50) * 1000:,.0f} ms, p99 "
                        f"{percentile(r.latencies, 99) * 1000:,.0f} ms, max "
                        f"{max(r.latencies) * 1000:,.0f} ms, CPU {r.cpu_share * 100:.1f}%, "
                        f"missing {r.missing}",
                        flush=True,
                    )
    command = "python bench/latency.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = section(command.strip(), results, args, load.note())
    publish(text, args.results, record=not args.no_record)


if __name__ == "__main__":
    main()
