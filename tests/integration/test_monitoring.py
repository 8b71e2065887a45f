"""The monitoring endpoint of a running pipeline: /metrics against a known workload,
the health probes through an Elasticsearch outage, progress of --once."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from logpipe import progress
from logpipe.devservers import free_port
from logpipe.devservers.noida import NoidaServer
from logpipe.devservers.smtp import RecordingSMTP
from logpipe.pipeline import Pipeline
from logpipe.sinks.elasticsearch.retention import RetentionMode, policy_name
from tests.integration.helpers import (
    EsTarget,
    access_line,
    app_line,
    es_client,
    load,
    monitored,
    probe,
    wait_until,
    write_pipeline,
)

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@contextlib.asynccontextmanager
async def sidecar(pipeline: Pipeline) -> AsyncIterator[int]:
    """``pipeline`` running as a sidecar with its monitoring endpoint; yields the port."""
    port = free_port()
    async with monitored(pipeline, f"127.0.0.1:{port}"):
        yield port


async def test_metrics_count_a_known_workload_per_component(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    smtp_server: RecordingSMTP,
) -> None:
    app, access = log_dir / "app.log", log_dir / "access.log"
    with app.open("w") as fh:
        for i in range(10):
            fh.write(app_line(f"2026-11-27T03:00:{i:02d}", "INFO", f"ok {i}"))
        fh.write(app_line("2026-11-27T03:01:00", "ERROR", "payment failed"))
        # Two lines for a day whose index refuses every field we add: dead-lettered.
        fh.write(app_line("2026-11-26T03:00:00", "INFO", "refused one"))
        fh.write(app_line("2026-11-26T03:00:01", "INFO", "refused two"))
    with access.open("w") as fh:
        for i in range(8):
            fh.write(
                access_line("10.0.0.1", f"27/Nov/2026:03:00:{i:02d} +0000", "GET / HTTP/1.1", 200)
            )
    client = es_client(es_server.env)
    client.indices.create(
        index=f"{index_prefix}-2026.11.26",
        mappings={"dynamic": "strict", "properties": {"message": {"type": "text"}}},
    )
    path = write_pipeline(tmp_path, log_dir, index_prefix, smtp_port=smtp_server.port)
    pipeline = Pipeline(load(path, es_server.env), {})
    async with sidecar(pipeline) as port:
        stats = pipeline.sink.stats
        alerts = pipeline.alerts
        assert alerts is not None
        await wait_until(lambda: stats.created + stats.dead_lettered == 21)
        # The ERROR line's e-mail and the self-alert about the dead letters.
        await wait_until(lambda: alerts.stats.sent >= 2)
        await asyncio.sleep(0.3)  # the checkpoint of the last batch
        samples = await asyncio.to_thread(scrape, port)

    source = {"component_kind": "source"}
    sink = {"component_id": "elasticsearch", "component_kind": "sink"}
    received = "logpipe_component_received_events_total"
    assert value(samples, received, component_id="application", **source) == 13
    assert value(samples, received, component_id="access", **source) == 8
    received_bytes = "logpipe_component_received_bytes_total"
    assert (
        value(samples, received_bytes, component_id="application", **source) == app.stat().st_size
    )
    assert value(samples, received_bytes, component_id="access", **source) == access.stat().st_size
    assert value(samples, "logpipe_component_sent_events_total", **sink) == 19
    assert value(samples, "logpipe_component_sent_bytes_total", **sink) > 0
    dead = "logpipe_component_dead_lettered_events_total"
    assert value(samples, dead, reason="strict_dynamic_mapping_exception", **sink) == 2
    assert (
        value(samples, "logpipe_component_discarded_events_total", reason="duplicate", **sink) == 0
    )
    email = {"component_id": "email", "component_kind": "sink"}
    assert value(samples, "logpipe_component_sent_events_total", **email) == 2
    assert value(samples, "logpipe_alerts_sent_total") == 2
    requests = value(
        samples, "logpipe_bulk_request_duration_seconds_count", component_id="elasticsearch"
    )
    assert requests >= 2  # the refused pair is tried in its safe form too
    assert value(samples, "logpipe_buffer_events", component_id="queue") == 0
    assert value(samples, "logpipe_buffer_max_byte_size", component_id="queue") == 6 << 20
    for name, file in (("application", app), ("access", access)):
        labels = {"component_id": name, "path": str(file)}
        assert value(samples, "logpipe_file_lag_bytes", **labels) == 0
        assert 0 <= value(samples, "logpipe_file_seconds_since_ack", **labels) < 60


async def test_probes_live_throughout_ready_only_while_elasticsearch_answers(
    tmp_path: Path, log_dir: Path, index_prefix: str
) -> None:
    (log_dir / "app.log").write_text(app_line("2026-11-27T04:00:00", "INFO", "hello"))
    es_port = free_port()
    path = write_pipeline(tmp_path, log_dir, index_prefix)
    pipeline = Pipeline(load(path, {"ES_URL": f"http://127.0.0.1:{es_port}"}), {})
    server = NoidaServer(tmp_path / "noida", port=es_port)
    try:
        async with sidecar(pipeline) as port:
            await asyncio.sleep(1.0)  # Elasticsearch is not there yet
            status, live = await asyncio.to_thread(probe, port, "/health/live")
            assert (status, live["status"]) == (200, "alive")
            status, ready = await asyncio.to_thread(probe, port, "/health/ready")
            assert status == 503
            assert ready["checks"]["elasticsearch"].startswith("not connected yet")
            assert ready["checks"]["inputs"] == "ok"

            await asyncio.to_thread(server.start)
            await wait_until(lambda: pipeline.sink.stats.created == 1)
            status, ready = await asyncio.to_thread(probe, port, "/health/ready")
            assert (status, ready["status"]) == (200, "ready")
            assert ready["checks"] == {"elasticsearch": "ok", "template": "ok", "inputs": "ok"}
            status, detail = await asyncio.to_thread(probe, port, "/health")
            assert (status, detail["status"]) == (200, "ok")
            assert detail["elasticsearch"]["created"] == 1

            await asyncio.to_thread(server.stop)  # an outage: not ready, still alive
            with (log_dir / "app.log").open("a") as fh:
                fh.write(app_line("2026-11-27T04:00:01", "INFO", "during the outage"))
            await wait_until(lambda: pipeline.sink.unreachable_for() is not None)
            status, ready = await asyncio.to_thread(probe, port, "/health/ready")
            assert status == 503 and ready["checks"]["elasticsearch"].startswith("unreachable")
            status, detail = await asyncio.to_thread(probe, port, "/health")
            assert (status, detail["status"]) == (200, "degraded")
            assert (await asyncio.to_thread(probe, port, "/health/live"))[0] == 200
    finally:
        await asyncio.to_thread(server.stop)


def test_run_exits_2_when_the_monitoring_address_is_taken(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_pipeline(tmp_path, log_dir, index_prefix)
        path.write_text(path.read_text() + f"\nmonitoring:\n  address: 127.0.0.1:{port}\n")
        result = subprocess.run(
            [sys.executable, "-m", "logpipe", "run", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **es_server.env},
        )
    assert result.returncode == 2, result.stderr
    assert f"monitoring.address 127.0.0.1:{port}: cannot listen" in result.stderr


async def test_once_reports_progress_lines_when_not_on_a_terminal(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (log_dir / "app.log").open("w") as fh:
        for i in range(3000):
            fh.write(app_line(f"2026-11-27T05:{i // 60 % 60:02d}:{i % 60:02d}", "INFO", f"n{i}"))
    monkeypatch.setattr(progress, "LINE_EVERY", 0.05)
    pipeline = Pipeline(load(write_pipeline(tmp_path, log_dir, index_prefix), es_server.env), {})
    out = io.StringIO()
    async with progress.show_progress(pipeline, out):
        report = await pipeline.run_once(60)
    assert report.created == 3000
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("progress: ") for line in lines)
    assert "\r" not in out.getvalue()  # no bar redraws in a log file
    assert "events/s" in lines[-1] and "ETA" in lines[-1]


async def test_sidecar_with_retention_deletes_its_expired_daily_indices_and_counts_them(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    client = es_client(es_server.env)
    old, decoy = f"{index_prefix}-2020.01.01", f"{index_prefix}-archive-2020.01.01"
    for name in (old, decoy):
        client.indices.create(index=name)
    (log_dir / "app.log").write_text(app_line("2026-11-27T07:00:00", "INFO", "kept"))
    path = write_pipeline(tmp_path, log_dir, index_prefix)
    path.write_text(
        path.read_text().replace("    batch:\n", "    retention:\n      days: 30\n    batch:\n")
    )
    pipeline = Pipeline(load(path, es_server.env), {})
    assert pipeline.retention is not None
    retention = pipeline.retention
    async with sidecar(pipeline) as port:
        await wait_until(lambda: retention.stats.checks >= 1 and pipeline.sink.stats.created == 1)
        samples = await asyncio.to_thread(scrape, port)
    assert client.indices.exists(index=decoy)
    if retention.stats.mode is RetentionMode.ILM:  # a real cluster: its ILM deletes, later
        settings = client.indices.get_settings(index=old)[old]["settings"]["index"]
        assert settings["lifecycle"]["name"] == policy_name(index_prefix)
        return
    assert not client.indices.exists(index=old)
    assert value(samples, "logpipe_retention_deleted_indices_total") == 1


async def test_top_shows_a_running_sidecars_components_and_files(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    app = log_dir / "app.log"
    with app.open("w") as fh:
        for i in range(50):
            fh.write(app_line(f"2026-11-27T08:00:{i % 60:02d}", "INFO", f"n{i}"))
    pipeline = Pipeline(load(write_pipeline(tmp_path, log_dir, index_prefix), es_server.env), {})
    async with sidecar(pipeline) as port:
        await wait_until(lambda: pipeline.sink.stats.created == 50)
        command = [sys.executable, "-m", "logpipe", "top", "--once", "--interval", "0.2"]
        result = await asyncio.to_thread(
            subprocess.run,
            [*command, "--url", f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    rows: dict[str, list[str]] = {}  # the component table comes first
    for line in result.stdout.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    assert rows["application"][1] == "source" and rows["application"][3] == "50"
    assert rows["elasticsearch"][1] == "sink" and "50" in rows["elasticsearch"]
    assert any(str(app) in line and " 0 B " in line for line in result.stdout.splitlines())
