"""Checks that keep the benchmark honest (no timings asserted here).

    .venv/bin/pytest bench/test_bench.py

- the workload is deterministic and shaped as documented;
- the null server satisfies the official Elasticsearch client;
- the baseline writes the same ECS field names as logpipe for the same lines,
  so "logpipe vs baseline" compares the same output;
- the pieces of the sidecar benchmarks (latency.py, memory.py, idle.py,
  startup.py): the latency arithmetic, the rate writer, null_es's arrival
  record and down switch, the /proc readers, the backlog writer.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from baseline import documents
from commands import pipeline_yaml
from instructions import report as instructions_report
from livelog import (
    LineMaker,
    Writer,
    first_arrivals,
    latencies_from_arrivals,
    latencies_from_polls,
    percentile,
)
from memory import parse_size, quarter_peaks, write_backlog
from report import Measurement, Row, ratio_lines, table
from run import workers_name
from servers import request
from sidecar import RssSampler, context_switches, cpu_seconds, hwm_kib, rss_kib
from split import BASELINE_PAIR, LOGPIPE_HALVES, LOGPIPE_PAIR, split_workload
from startup import import_costs
from workload import access_lines, app_lines, write_workload

from logpipe.config import EnrichConfig, InputConfig
from logpipe.devservers import free_port
from logpipe.enrich.static import Enricher, static_fields
from logpipe.event import Event
from logpipe.parsers.app_json import make_app_json_parser
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import IndexNamer

BENCH = Path(__file__).resolve().parent


def test_workload_is_deterministic_and_realistic(tmp_path: Path) -> None:
    first = write_workload(tmp_path / "a", 2000)
    second = write_workload(tmp_path / "b", 2000)
    assert first.app_log.read_bytes() == second.app_log.read_bytes()
    assert first.access_log.read_bytes() == second.access_log.read_bytes()
    records = [orjson.loads(line) for line in app_lines(5000)]
    errors = [r for r in records if r["level"] == "ERROR"]
    assert 20 <= len(errors) <= 80  # about 1%
    assert all(r["exception"].startswith("Traceback (most recent call last):") for r in errors)
    assert all("exception" not in r for r in records if r["level"] != "ERROR")
    assert list(records[0])[:7] == [
        "timestamp", "level", "logger", "message", "module", "function", "line",
    ]  # fmt: skip
    assert all('+0700] "' in line for line in access_lines(500))


def test_empty_workload_writes_empty_files(tmp_path: Path) -> None:
    empty = write_workload(tmp_path, 0)
    assert empty.app_log.read_bytes() == empty.access_log.read_bytes() == b""


@contextlib.contextmanager
def _null_es(*options: str) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(BENCH / "null_es.py"), "--port", str(port), *options]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()  # "null-es listening on ..." once bound
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture
def null_es_url() -> Iterator[str]:
    with _null_es() as url:
        yield url


def test_null_server_satisfies_the_official_client(null_es_url: str) -> None:
    from elasticsearch import Elasticsearch, NotFoundError

    with Elasticsearch(null_es_url) as client:
        assert client.info()["version"]["number"] == "8.15.3"
        with pytest.raises(NotFoundError):
            client.indices.get_index_template(name="bench")
        assert client.indices.put_index_template(name="bench", index_patterns=["b-*"])[
            "acknowledged"
        ]
        operations: list[dict[str, Any]] = [
            {"create": {"_index": "b-1", "_id": "x"}},
            {"a": 1},
            {"index": {}},
            {},
        ]
        response = client.bulk(operations=operations, index="b-2")
    assert not response["errors"]
    assert response["items"] == [
        {"create": _created("b-1", "x")},
        {"index": _created("b-2", "null-0")},
    ]
    assert orjson.loads(request(null_es_url, "GET", "/_null/stats")[1])["docs"] == 2


def test_null_server_trims_bulk_answers_to_filter_path_as_elasticsearch_does(
    null_es_url: str,
) -> None:
    from elasticsearch import Elasticsearch

    operations: list[dict[str, Any]] = [{"create": {"_index": "b-1", "_id": "x"}}, {"a": 1}]
    with Elasticsearch(null_es_url) as client:
        trimmed = client.bulk(operations=operations, filter_path="errors,items.*.status")
        nothing = client.bulk(operations=operations, filter_path="no_such_field")
        whole = client.bulk(operations=operations, filter_path="items")
    assert trimmed.body == {"errors": False, "items": [{"create": {"status": 201}}]}
    assert nothing.body == {}
    assert whole.body == {"items": [{"create": _created("b-1", "x")}]}


def _created(index: str, doc_id: str) -> dict[str, Any]:
    result = {"_index": index, "_id": doc_id, "_version": 1, "result": "created"}
    return {**result, "status": 201, "_seq_no": 0, "_primary_term": 1}


def _paths(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        out |= _paths(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


@pytest.mark.parametrize(
    ("kind", "parser", "dataset"),
    [("app", "app_json", "erp.application"), ("access", "nginx", "nginx.access")],
)
def test_baseline_writes_the_fields_logpipe_writes(
    tmp_path: Path, kind: str, parser: str, dataset: str
) -> None:
    workload = write_workload(tmp_path, 1000)
    path = workload.app_log if kind == "app" else workload.access_log
    enrich = EnrichConfig(fields={"service.environment": "production", "cloud.region": "x"})
    process = LineProcessor(
        InputConfig.model_validate({"paths": [str(path)], "parser": parser, "dataset": dataset}),
        Enricher(static_fields(enrich, {})),
        IndexNamer("bench"),
    )
    theirs: set[str] = set()
    for raw in path.read_bytes().splitlines():
        doc = process(Event("id", 0, str(path), 0, len(raw) + 1, raw, kind)).document()
        assert "tags" not in doc, raw
        theirs |= _paths(doc)
    ours: set[str] = set()
    for _, doc in documents(path, kind, "bench"):
        doc["event"]["ingested"] = "set per batch"
        assert "tags" not in doc
        ours |= _paths(doc)
    assert ours == theirs


# -- the sidecar benchmarks' pieces -------------------------------------------------------


def test_latency_from_arrivals_takes_each_line_at_its_first_arrival() -> None:
    written = [10.0, 10.0, 11.0, 12.0]
    arrivals = [(10.5, 0), (10.7, 1), (10.6, 0), (12.0, 2), (11.0, 2), (13.0, 99)]
    assert first_arrivals(4, arrivals) == [10.5, 10.7, 11.0, None]
    assert latencies_from_arrivals(written, arrivals) == pytest.approx([0.5, 0.7, 0.0, math.inf])


def test_latency_from_polls_attributes_each_index_prefix_to_the_first_poll_seeing_it() -> None:
    written = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # two indices: lines 0-2 and 3-5
    polls = [(1.0, 0, 1), (1.0, 3, 2), (2.0, 0, 3), (2.0, 3, 2), (3.0, 0, 2)]
    assert latencies_from_polls(written, polls) == pytest.approx(
        [1.0, 1.9, 1.8, 0.7, 0.6, math.inf]
    )


def test_percentile_is_nearest_rank_and_keeps_infinity() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, math.inf], 99) == math.inf
    with pytest.raises(ValueError):
        percentile([], 50)


def test_live_lines_carry_their_number_write_time_and_segment_day() -> None:
    maker = LineMaker(segment_docs=3)
    parse = make_app_json_parser()
    for seq in (0, 2, 3, 7):
        text = maker.line(seq, 1_795_000_000.25).decode()
        assert text.endswith("}\n")
        record = orjson.loads(text)
        assert record["bench_seq"] == seq and record["bench_written"] == 1_795_000_000.25
        assert record["timestamp"].startswith(maker.day(seq).isoformat() + "T")
        parsed = parse(text.rstrip("\n"))
        assert parsed.fields["app"]["bench_seq"] == seq, parsed.fields
    assert maker.day(2) == maker.day(0) != maker.day(3)
    assert [maker.segments(n) for n in (1, 3, 4, 7)] == [1, 1, 2, 3]


def test_writer_appends_lines_in_order_at_about_the_rate(tmp_path: Path) -> None:
    log = tmp_path / "application.log"
    writer = Writer(log, LineMaker(), rate=2000, seconds=0.5)
    began = time.monotonic()
    writer.start()
    writer.join(10)
    took = time.monotonic() - began
    assert writer.error is None
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [r["bench_seq"] for r in records] == list(range(1000))
    assert [r["bench_written"] for r in records] == pytest.approx(list(writer.written), abs=1e-5)
    assert list(writer.written) == sorted(writer.written)
    assert 0.4 < took < 5.0  # generous: a busy machine may fall behind, never run ahead
    assert 500 < writer.achieved_rate < 2100


def test_null_server_records_arrivals_and_can_be_down() -> None:
    bulk = b"".join(
        orjson.dumps(line) + b"\n"
        for line in (
            {"create": {"_index": "b-1", "_id": "a"}},
            {"app": {"bench_seq": 7}, "message": "x"},
            {"create": {"_index": "b-1", "_id": "b"}},
            {"message": "no number here"},
            {"create": {"_index": "b-1", "_id": "c"}},
            {"app": {"bench_seq": 8}},
        )
    )
    with _null_es("--record-field", "bench_seq", "--down") as url:
        status, body = request(url, "POST", "/_bulk", bulk)
        assert status == 503 and orjson.loads(body)["status"] == 503
        assert request(url, "POST", "/_null/up", b"")[0] == 200
        before = time.time()
        assert request(url, "POST", "/_bulk", bulk)[0] == 200
        page = orjson.loads(request(url, "GET", "/_null/arrivals?from=0")[1])
        stats = orjson.loads(request(url, "GET", "/_null/stats")[1])
        assert request(url, "POST", "/_null/down", b"")[0] == 200
        assert request(url, "POST", "/_bulk", bulk)[0] == 503
    assert [n for _, n in page["arrivals"]] == [7, 8]
    assert page["total"] == page["next"] == 2
    assert all(before <= t <= time.time() for t, _ in page["arrivals"])
    assert (stats["docs"], stats["refused_bulk_requests"], stats["down"]) == (3, 1, False)


def test_proc_readers_see_this_process(tmp_path: Path) -> None:
    pid = os.getpid()
    sampler = RssSampler(pid, interval=0.02, phase="a")
    sampler.start()
    time.sleep(0.1)
    sampler.phase = "b"
    busy_until = time.process_time() + 0.05
    cpu = cpu_seconds(pid)
    while time.process_time() < busy_until:
        pass
    time.sleep(0.1)
    sampler.stop()
    rss = rss_kib(pid)
    assert sampler.of("a") and sampler.of("b")
    assert all(0.5 * rss < kib < 2 * rss for _, _, kib in sampler.samples)
    assert hwm_kib(pid) >= rss > 1000
    assert cpu_seconds(pid) >= cpu + 0.03
    assert context_switches(pid) > 0


def test_backlog_has_the_size_asked_and_counts_its_lines(tmp_path: Path) -> None:
    assert [parse_size(t) for t in ("1G", "200M", "64k", "1500", "1.5MB")] == [
        10**9, 200 * 10**6, 64_000, 1500, 1_500_000,
    ]  # fmt: skip
    backlog = write_backlog(tmp_path, 3_000_000, pool=1000)
    logs = (backlog.app_log, backlog.access_log)
    assert backlog.lines == sum(path.read_bytes().count(b"\n") for path in logs)
    assert 2_998_000 < backlog.size <= 3_000_000
    assert quarter_peaks([(0.0, 5), (1.0, 7), (2.0, 6), (3.0, 9), (4.0, 8)]) == [5, 7, 6, 9]


def test_import_costs_are_summed_per_package() -> None:
    total, top = import_costs([sys.executable, "-c", "import json.decoder"])
    assert total > 0
    assert "json" in dict(top)


def test_instructions_per_event_leave_start_up_out_and_compare_to_the_baseline() -> None:
    found = {"logpipe": (3_000_000_000, 1_600_000_000), "baseline": (1_300_000_000, 200_000_000)}
    text = instructions_report("python bench/instructions.py", 10_000, found)
    # (3.0e9 - 1.6e9) / 20,000 events = 70,000; (1.3e9 - 0.2e9) / 20,000 = 55,000.
    assert "| logpipe | 20,000 | 3,000,000,000 | 1,600,000,000 | 70,000 |" in text
    assert "| baseline | 20,000 | 1,300,000,000 | 200,000,000 | 55,000 |" in text
    assert "instructions per event x1.27**" in text
    assert "start-up and shutdown x8.0" in text


def test_workers_row_is_compared_with_the_baseline_and_with_logpipe_alone(tmp_path: Path) -> None:
    def row(impl: str, wall: float, cpu: float) -> Row:
        return Row("null", impl, [Measurement(1_000_000, wall, cpu, 50_000)])

    pooled = workers_name(1)
    rows = [row("logpipe", 10.0, 9.0), row(pooled, 8.0, 12.0), row("baseline", 9.0, 8.0)]
    line = ratio_lines(rows)[0]
    assert f"{pooled} / baseline: events/s x1.12" in line  # 9 s / 8 s
    assert "CPU per event x1.50" in line  # 12 / 8
    assert f"{pooled} / logpipe: events/s x1.25" in line
    workload = write_workload(tmp_path, 0)
    assert "workers: 2\n" in pipeline_yaml(workload, "http://x", tmp_path, "p", workers=2)


def test_split_workload_cuts_both_logs_at_a_line_and_keeps_every_line(tmp_path: Path) -> None:
    workload = write_workload(tmp_path / "whole", 101)
    first, second = split_workload(workload, tmp_path / "halves")
    assert (first.events_per_log, second.events_per_log) == (50, 51)
    assert first.total + second.total == workload.total
    for whole, a, b in (
        (workload.app_log, first.app_log, second.app_log),
        (workload.access_log, first.access_log, second.access_log),
    ):
        assert a.read_bytes() + b.read_bytes() == whole.read_bytes()
        assert len(a.read_bytes().splitlines()) == 50


def test_pipeline_with_one_input_reads_only_that_input(tmp_path: Path) -> None:
    workload = write_workload(tmp_path, 0)
    text = pipeline_yaml(workload, "http://x", tmp_path / "d", "p", inputs=("access",))
    assert "  access:\n" in text and str(workload.access_log) in text
    assert "application" not in text and str(workload.app_log) not in text


def test_pairs_are_compared_with_the_single_processes() -> None:
    def row(impl: str, wall: float) -> Row:
        return Row("null", impl, [Measurement(1_000_000, wall, wall, 50_000)])

    rows = [row("logpipe", 10.0), row(LOGPIPE_PAIR, 8.0), row(BASELINE_PAIR, 5.0)]
    rows.append(row(LOGPIPE_HALVES, 6.0))
    line = ratio_lines([*rows, row("baseline", 9.0)])[0]
    assert f"{LOGPIPE_PAIR} / logpipe: events/s x1.25" in line  # 10 s / 8 s
    assert f"{LOGPIPE_PAIR} / baseline: events/s x1.12" in line  # 9 s / 8 s
    assert f"{BASELINE_PAIR} / baseline: events/s x1.80" in line  # 9 s / 5 s
    assert f"{LOGPIPE_HALVES} / logpipe: events/s x1.67" in line  # 10 s / 6 s


def test_sink_cpu_is_reported_per_million_events_with_the_floor_it_sets() -> None:
    runs = [Measurement(1_000_000, 10.0, 9.0, 50_000, sink_cpu=3.0)]
    ceiling = Row("null", "server ceiling", [Measurement(1_000_000, 5.0)])
    text = table([Row("null", "logpipe", runs), ceiling])
    cores = os.cpu_count() or 1
    floor = (3.0 + 9.0) / cores
    assert f"logpipe 3.0 (with its own 9.0: at least {floor:.2f} s per million" in text
    assert "server ceiling" not in text.split("null sink's own CPU")[1]


def test_events_per_second_ratios_also_give_each_rounds_ratio() -> None:
    def row(impl: str, *walls: float) -> Row:
        return Row("null", impl, [Measurement(1_000_000, w) for w in walls])

    # Round 1: 10 s against 12 s; round 2: 14 s against 14 s (a slower hour for both).
    line = ratio_lines([row("logpipe", 10.0, 14.0), row("baseline", 12.0, 14.0)])[0]
    # Median rates 85.7k and 77.4k events/s: x1.11; per round x1.20 and x1.00, median x1.10.
    assert "logpipe / baseline: events/s x1.11 (per round x1.10, x1.00..x1.20)" in line
