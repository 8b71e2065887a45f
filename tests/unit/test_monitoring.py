"""Pure pieces of the monitoring endpoint and progress display."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from logpipe import progress
from logpipe.health import Health, split_address
from logpipe.progress import Snapshot, describe
from logpipe.sinks.elasticsearch.sink import _cause
from logpipe.stats import DURATION_BUCKETS, Durations


def test_durations_count_each_observation_in_the_first_bucket_that_holds_it() -> None:
    durations = Durations()
    for seconds in (0.001, 0.005, 0.3, 99.0):
        durations.observe(seconds)
    assert durations.counts[0] == 2  # le=0.005 holds 0.005 itself
    assert durations.counts[DURATION_BUCKETS.index(0.5)] == 1
    assert durations.counts[-1] == 1  # +Inf
    assert durations.count == 4 and durations.total == pytest.approx(99.306)


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("400 mapper_parsing_exception: failed to parse field [x]", "mapper_parsing_exception"),
        (
            "400 strict_dynamic_mapping_exception: mapping set to strict",
            "strict_dynamic_mapping_exception",
        ),
        (
            "no answer for this item in the bulk response",
            "no answer for this item in the bulk response",
        ),
        ("", "rejected"),
    ],
)
def test_dead_letter_metric_label_is_the_error_type_not_the_text(reason: str, cause: str) -> None:
    assert _cause(reason) == cause


def test_progress_line_gives_share_rate_and_eta() -> None:
    first = Snapshot(at=0.0, done_bytes=0, left_bytes=10_000_000, events=0)
    now = Snapshot(at=10.0, done_bytes=2_500_000, left_bytes=7_500_000, events=25_000)
    line = describe(first, now, bar_width=20)
    assert line.startswith("[#####...............]  25%")
    assert "2.5 MB of 10.0 MB" in line and "25k events" in line
    assert "2k events/s" in line or "2500 events/s" in line
    assert line.endswith("ETA 0:00:30")


def test_progress_eta_is_unknown_before_anything_moved_and_zero_when_done() -> None:
    start = Snapshot(at=0.0, done_bytes=0, left_bytes=100, events=0)
    assert describe(start, start).endswith("ETA ?")
    done = Snapshot(at=1.0, done_bytes=100, left_bytes=0, events=1)
    assert "100%" in describe(start, done) and describe(start, done).endswith("ETA 0:00:00")
    assert progress.LINE_EVERY >= 5  # a log file gets a line now and then, not a flood


@pytest.mark.parametrize(
    ("address", "expected"),
    [("0.0.0.0:9108", ("0.0.0.0", 9108)), ("[::1]:9108", ("::1", 9108))],
)
def test_monitoring_address_splits_into_host_and_port(
    address: str, expected: tuple[str, int]
) -> None:
    assert split_address(address) == expected


def test_monitoring_endpoint_does_not_need_aiohttp() -> None:
    # logpipe dropped aiohttp (8-10 MiB of RSS, with the client's async transport):
    # a fresh interpreter where it cannot be imported must still load the endpoint.
    probe = "import sys; sys.modules['aiohttp'] = None; import logpipe.health"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def _pipeline(unreadable: list[str], *, connected: bool = True) -> Any:
    sink = SimpleNamespace(
        connected=connected, last_error=None, unreachable_for=lambda: None, stats=None
    )
    tailer = SimpleNamespace(unreadable=lambda: unreadable)
    config = SimpleNamespace(
        output=SimpleNamespace(elasticsearch=SimpleNamespace(install_template=True))
    )
    return SimpleNamespace(sink=sink, tailers=[tailer], config=config)


def test_not_ready_while_an_input_file_cannot_be_opened() -> None:
    ready, body = Health(_pipeline(["/var/log/erp/app.log"])).ready()
    assert not ready
    assert body["checks"]["inputs"] == "cannot open: /var/log/erp/app.log"
    assert Health(_pipeline([])).ready()[0]


def test_not_ready_before_the_first_connection() -> None:
    ready, body = Health(_pipeline([], connected=False)).ready()
    assert not ready and body["checks"]["template"] == "not checked yet"
