"""``logpipe top``: parsing the exposition, the pure renderer, and the scrape loop.

The loop is run against a real HTTP server on loopback (``http.server`` in a
thread) serving hand-written exposition text; the end-to-end test against a
running logpipe lives with the metrics endpoint.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from logpipe.cli import main
from logpipe.top import (
    CLEAR,
    Metrics,
    TopError,
    metrics_url,
    parse_metrics,
    run_top,
    scrape,
    snapshot,
)


def exposition(
    read: int = 1000,
    created: int = 900,
    dead: int = 2,
    bulk_count: int = 10,
    bulk_sum: float = 0.5,
    sent_alerts: int = 3,
) -> str:
    """What logpipe's /metrics answers (the families the lead's collector declares)."""
    return f"""\
# HELP logpipe_build_info logpipe's version
# TYPE logpipe_build_info gauge
logpipe_build_info{{version="0.1.0"}} 1.0
# TYPE logpipe_start_time_seconds gauge
logpipe_start_time_seconds 1000.0
# TYPE logpipe_component_received_events counter
logpipe_component_received_events_total{{component_id="application",component_kind="source"}} {read}
logpipe_component_received_events_total{{component_id="access",component_kind="source"}} 50.0
# TYPE logpipe_component_received_bytes counter
logpipe_component_received_bytes_total{{component_id="application",component_kind="source"}} {read * 100}
# TYPE logpipe_component_errors counter
logpipe_component_errors_total{{component_id="elasticsearch",component_kind="sink",error_type="timeout"}} 4.0
logpipe_component_errors_total{{component_id="elasticsearch",component_kind="sink",error_type="http_503"}} 1.0
# TYPE logpipe_component_sent_events counter
logpipe_component_sent_events_total{{component_id="elasticsearch",component_kind="sink"}} {created}
logpipe_component_sent_events_total{{component_id="email",component_kind="sink"}} {sent_alerts}
# TYPE logpipe_component_sent_bytes counter
logpipe_component_sent_bytes_total{{component_id="elasticsearch",component_kind="sink"}} 4096000.0
# TYPE logpipe_component_discarded_events counter
logpipe_component_discarded_events_total{{component_id="elasticsearch",component_kind="sink",reason="duplicate"}} 7.0
# TYPE logpipe_component_dead_lettered_events counter
logpipe_component_dead_lettered_events_total{{component_id="elasticsearch",component_kind="sink",reason="mapper_parsing_exception"}} {dead}
# TYPE logpipe_component_retries counter
logpipe_component_retries_total{{component_id="elasticsearch",component_kind="sink",reason="http_429"}} 6.0
# TYPE logpipe_bulk_request_duration_seconds histogram
logpipe_bulk_request_duration_seconds_bucket{{component_id="elasticsearch",le="0.1"}} {bulk_count}
logpipe_bulk_request_duration_seconds_bucket{{component_id="elasticsearch",le="+Inf"}} {bulk_count}
logpipe_bulk_request_duration_seconds_count{{component_id="elasticsearch"}} {bulk_count}
logpipe_bulk_request_duration_seconds_sum{{component_id="elasticsearch"}} {bulk_sum}
# TYPE logpipe_buffer_events gauge
logpipe_buffer_events{{component_id="queue"}} 5000.0
# TYPE logpipe_buffer_byte_size gauge
logpipe_buffer_byte_size{{component_id="queue"}} 3145728.0
# TYPE logpipe_buffer_max_events gauge
logpipe_buffer_max_events{{component_id="queue"}} 20000.0
# TYPE logpipe_buffer_max_byte_size gauge
logpipe_buffer_max_byte_size{{component_id="queue"}} 6291456.0
# TYPE logpipe_file_lag_bytes gauge
logpipe_file_lag_bytes{{component_id="application",path="/var/log/erp/application.log"}} 2048.0
logpipe_file_lag_bytes{{component_id="access",path="/var/log/erp/access.log"}} 0.0
# TYPE logpipe_file_seconds_since_ack gauge
logpipe_file_seconds_since_ack{{component_id="application",path="/var/log/erp/application.log"}} 75.0
# TYPE logpipe_alerts_sent counter
logpipe_alerts_sent_total {sent_alerts}
# TYPE logpipe_alerts_grouped counter
logpipe_alerts_grouped_total 12.0
# TYPE logpipe_alerts_suppressed counter
logpipe_alerts_suppressed_total{{reason="digest"}} 9.0
logpipe_alerts_suppressed_total{{reason="rate_limit"}} 1.0
# TYPE logpipe_smtp_failures counter
logpipe_smtp_failures_total{{kind="transient"}} 2.0
"""  # noqa: E501 (exposition lines are as long as they are)


def test_parse_keeps_counters_under_their_total_samples() -> None:
    metrics = parse_metrics(exposition())
    assert metrics.by("logpipe_component_received_events_total", "component_id") == {
        ("application",): 1000.0,
        ("access",): 50.0,
    }
    assert metrics.total("logpipe_component_errors_total") == 5.0
    assert metrics.total("logpipe_bulk_request_duration_seconds_count") == 10.0
    assert metrics.total("logpipe_nothing_total") is None


def test_parse_reads_what_prometheus_client_writes() -> None:
    class Fixed(Collector):
        def collect(self) -> Iterator[Metric]:
            family = CounterMetricFamily(
                "logpipe_component_sent_events", "docs", labels=["component_id", "component_kind"]
            )
            family.add_metric(["elasticsearch", "sink"], 42, created=1000.0)
            yield family

    registry = CollectorRegistry()
    registry.register(Fixed())
    metrics = parse_metrics(generate_latest(registry).decode())
    assert metrics.series == {
        "logpipe_component_sent_events_total": {
            (("component_id", "elasticsearch"), ("component_kind", "sink")): 42.0
        }
    }  # no _created series


def test_parse_refuses_what_is_not_metrics() -> None:
    with pytest.raises(ValueError):
        parse_metrics("<html><body>Not Found</body></html>\n")


def line_of(lines: list[str], start: str) -> list[str]:
    return next(line for line in lines if line.startswith(start)).split()


def test_first_snapshot_has_totals_but_no_rates() -> None:
    lines = snapshot(None, parse_metrics(exposition()), 0.0, source="http://x/metrics", now=4720.0)
    assert lines[0].startswith("logpipe 0.1.0 | up 1h02m | http://x/metrics | ")
    header = lines[2].split()
    assert header[:6] == ["COMPONENT", "KIND", "IN/S", "IN", "OUT/S", "OUT"]
    assert line_of(lines, "application") == [
        "application", "source", "-", "1000", "-", "-", "-", "-", "-", "-", "-", "-",
    ]  # fmt: skip
    assert line_of(lines, "elasticsearch") == [
        "elasticsearch", "sink", "-", "-", "-", "900", "-", "-", "5", "2", "7", "6",
    ]  # fmt: skip
    sources_first = [line.split()[0] for line in lines[3:7]]
    assert sources_first == ["access", "application", "elasticsearch", "email"]


def test_rates_are_the_increase_over_the_interval() -> None:
    prev = parse_metrics(exposition(read=1000, created=900, bulk_count=10, bulk_sum=0.5))
    cur = parse_metrics(exposition(read=1500, created=1300, bulk_count=14, bulk_sum=0.7))
    lines = snapshot(prev, cur, 2.0)
    app = line_of(lines, "application")
    assert app[2:4] == ["250/s", "1500"]
    assert app[6:8] == ["24.4", "KiB/s"]  # 50,000 bytes in 2 s
    es = line_of(lines, "elasticsearch")
    assert es[4:6] == ["200/s", "1300"]
    assert es[6:9] == ["-", "0", "B/s"]  # no bytes in; bytes out unchanged
    assert "bulk requests: 14, 4 since last, mean 50 ms" in lines


def test_a_counter_that_went_down_counts_from_zero() -> None:
    prev = parse_metrics(exposition(read=5000))
    cur = parse_metrics(exposition(read=100))  # logpipe restarted
    assert line_of(snapshot(prev, cur, 1.0), "application")[2] == "100/s"


def test_big_numbers_stay_short() -> None:
    cur = parse_metrics(exposition(read=12_345_678, created=45_600))
    lines = snapshot(None, cur, 0.0)
    assert line_of(lines, "application")[3] == "12.3M"
    assert line_of(lines, "elasticsearch")[5] == "45.6k"


def test_files_queue_and_alerts() -> None:
    lines = snapshot(None, parse_metrics(exposition()), 0.0)
    assert line_of(lines, "INPUT") == ["INPUT", "LAG", "LAST", "ACK", "FILE"]
    assert line_of(lines, "application") != line_of(lines, "INPUT")
    files = [line.split() for line in lines if "/var/log/erp/" in line]
    assert files == [
        ["access", "0", "B", "never", "/var/log/erp/access.log"],
        ["application", "2.0", "KiB", "1m15s", "ago", "/var/log/erp/application.log"],
    ]
    assert "queue: 5000 / 20.0k events (25%), 3.0 MiB / 6.0 MiB (50%)" in lines
    assert (
        "alerts: sent 3 (-), grouped 12, suppressed 10 (digest 9, rate_limit 1), "
        "smtp failures 2" in lines
    )


def test_snapshot_of_an_endpoint_without_logpipe_metrics() -> None:
    lines = snapshot(None, Metrics(), 0.0)
    assert "no component metrics (is this logpipe's /metrics?)" in lines
    assert "queue: no metrics" in lines
    assert "alerts: no metrics (alerts not configured?)" in lines


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9108", "http://127.0.0.1:9108/metrics"),
        ("http://127.0.0.1:9108/", "http://127.0.0.1:9108/metrics"),
        ("http://h:1/custom/metrics", "http://h:1/custom/metrics"),
    ],
)
def test_metrics_url(url: str, expected: str) -> None:
    assert metrics_url(url) == expected


class Exporter(BaseHTTPRequestHandler):
    """Serves the next body of ``bodies`` per scrape (the last one again when done)."""

    bodies: ClassVar[list[tuple[int, str]]] = []

    def do_GET(self) -> None:
        status, body = self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_once_prints_one_snapshot_with_rates(exporter: str) -> None:
    Exporter.bodies = [(200, exposition(read=100)), (200, exposition(read=160))]
    out = io.StringIO()
    run_top(exporter, 0.05, once=True, out=out)
    text = out.getvalue()
    assert CLEAR not in text and "\x1b" not in text
    assert text.count("COMPONENT") == 1
    app = line_of(text.splitlines(), "application")
    assert app[3] == "160"
    assert app[2].endswith("/s") and float(app[2][:-2]) > 0


def test_live_view_redraws_until_interrupted(exporter: str) -> None:
    Exporter.bodies = [(200, exposition(read=n)) for n in (100, 200, 300)]
    out = io.StringIO()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_top(exporter, 0.5, out=out, tty=True, sleep=sleep)
    frames = out.getvalue().split(CLEAR)[1:]
    assert len(frames) == 3
    assert line_of(frames[0].splitlines(), "application")[3] == "100"
    assert line_of(frames[2].splitlines(), "application")[3] == "300"
    assert out.getvalue().endswith("\x1b[?25h")  # the cursor is given back
    assert sleeps == [0.5, 0.5, 0.5]


def test_plain_output_prints_a_snapshot_per_interval(exporter: str) -> None:
    Exporter.bodies = [(200, exposition(read=n)) for n in (100, 200, 300)]
    out = io.StringIO()
    calls = 0

    def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_top(exporter, 1.0, out=out, tty=False, sleep=sleep)
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.count("COMPONENT") == 2  # the first scrape is the baseline for rates


def test_unreachable_endpoint_is_a_clear_error() -> None:
    with pytest.raises(TopError, match=r"cannot reach http://127.0.0.1:9/metrics"):
        scrape("http://127.0.0.1:9/metrics", 2.0)


def test_error_status_and_non_metrics_bodies_are_errors(exporter: str) -> None:
    Exporter.bodies = [(404, "nope")]
    with pytest.raises(TopError, match="answered 404"):
        scrape(f"{exporter}/metrics", 2.0)
    Exporter.bodies = [(200, "<html>hello</html>\n")]
    with pytest.raises(TopError, match="did not answer Prometheus metrics"):
        scrape(f"{exporter}/metrics", 2.0)


def test_top_command_exits_1_when_unreachable() -> None:
    result = CliRunner().invoke(main, ["top", "--once", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "logpipe top: cannot reach http://127.0.0.1:9/metrics" in result.output


def test_top_command_once(exporter: str) -> None:
    Exporter.bodies = [(200, exposition())]
    result = CliRunner().invoke(main, ["top", "--once", "--interval", "0.1", "--url", exporter])
    assert result.exit_code == 0, result.output
    assert line_of(result.output.splitlines(), "elasticsearch")[4] == "0.0/s"
