"""Prometheus metrics of a running pipeline, named after Vector's internal metrics.

Nothing here sits on the hot path: the components keep plain counters
(:mod:`logpipe.stats`, ``SinkStats``, the alert service's stats) and a custom
collector turns them into metric families when ``/metrics`` is scraped. Each
pipeline has its own registry, so several can live in one process (tests).

Components (``component_id`` / ``component_kind``): each input by its name
(``source``), ``elasticsearch`` (``sink``), ``email`` (``sink``, the alerts),
``queue`` (the memory budget between them).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from logpipe.stats import Durations

if TYPE_CHECKING:
    from logpipe.pipeline import Pipeline

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_COMPONENT = ["component_id", "component_kind"]


def _version() -> str:
    try:
        return version("logpipe")
    except PackageNotFoundError:
        return "unknown"


class PipelineCollector(Collector):
    """Reads a pipeline's counters at scrape time."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._started = time.time()
        self._version = _version()

    def collect(self) -> Iterator[Metric]:
        yield from self._process()
        yield from self._sources()
        yield from self._errors()
        yield from self._sink()
        yield from self._queue()
        yield from self._files()
        yield from self._alerts()

    def _process(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("logpipe_build_info", "logpipe's version", labels=["version"])
        info.add_metric([self._version], 1)
        yield info
        yield GaugeMetricFamily(
            "logpipe_start_time_seconds", "When this process started (unix time)", self._started
        )

    def _sources(self) -> Iterator[Metric]:
        events = _counter("received_events", "Lines read and queued, per input")
        size = _counter("received_bytes", "Bytes of the lines read, newlines included")
        for name, stats in self._pipeline.input_stats.items():
            events.add_metric([name, "source"], stats.events)
            size.add_metric([name, "source"], stats.bytes)
        yield events
        yield size

    def _errors(self) -> Iterator[Metric]:
        errors = _counter("errors", "Failed requests and unreadable files", extra=["error_type"])
        for name, count in self._pipeline.file_errors.items():
            errors.add_metric([name, "source", "file_unreadable"], count)
        for error, count in self._pipeline.sink.stats.request_errors.items():
            errors.add_metric(["elasticsearch", "sink", error], count)
        alerts = self._pipeline.alerts
        if alerts is not None:
            errors.add_metric(["email", "sink", "smtp_transient"], alerts.stats.retried)
            errors.add_metric(["email", "sink", "smtp_refused"], alerts.stats.failed)
        yield errors

    def _sink(self) -> Iterator[Metric]:
        stats = self._pipeline.sink.stats
        sink = ["elasticsearch", "sink"]
        sent = _counter("sent_events", "Documents Elasticsearch created")
        sent.add_metric(sink, stats.created)
        if self._pipeline.alerts is not None:
            sent.add_metric(["email", "sink"], self._pipeline.alerts.stats.sent)
        yield sent
        sent_bytes = _counter("sent_bytes", "Bytes of bulk requests answered (retries included)")
        sent_bytes.add_metric(sink, stats.sent_bytes)
        yield sent_bytes
        discarded = _counter(
            "discarded_events", "Events not indexed again, by reason", extra=["reason"]
        )
        discarded.add_metric([*sink, "duplicate"], stats.duplicates)
        yield discarded
        dead = _counter(
            "dead_lettered_events",
            "Documents refused even in their safe form, written to the dead-letter file",
            extra=["reason"],
        )
        for reason, count in stats.dead_letter_reasons.items():
            dead.add_metric([*sink, reason], count)
        yield dead
        retries = _counter("retries", "Bulk requests or items sent again", extra=["reason"])
        retries.add_metric([*sink, "request_failed"], stats.failed_requests)
        retries.add_metric([*sink, "item_rejected_transiently"], stats.retried_items)
        yield retries
        repaired = _counter("repaired_events", "Documents re-encoded after a mapping conflict")
        repaired.add_metric(sink, stats.repaired)
        yield repaired
        retention = self._pipeline.retention
        if retention is not None:
            deleted = CounterMetricFamily(
                "logpipe_retention_deleted_indices",
                "Daily indices past retention that logpipe deleted itself",
            )
            deleted.add_metric([], retention.stats.deleted)
            failed = CounterMetricFamily(
                "logpipe_retention_failed_checks", "Retention checks that failed (retried later)"
            )
            failed.add_metric([], retention.stats.failed_checks)
            yield from (deleted, failed)
        yield _histogram(
            "logpipe_bulk_request_duration_seconds",
            "Round trip of answered bulk requests",
            stats.request_seconds,
        )

    def _queue(self) -> Iterator[Metric]:
        queue, config = self._pipeline.queue, self._pipeline.config.queue
        labels = ["component_id"]
        for name, doc, value in (
            ("logpipe_buffer_events", "Events held: queued or in flight", queue.held),
            ("logpipe_buffer_byte_size", "Encoded bytes of the events held", queue.bytes),
            ("logpipe_buffer_max_events", "The budget's event bound", config.max_events),
            ("logpipe_buffer_max_byte_size", "The budget's byte bound", config.max_bytes),
        ):
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric(["queue"], value)
            yield family

    def _files(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "logpipe_file_lag_bytes",
            "File size minus the acknowledged offset",
            labels=["component_id", "path"],
        )
        since = GaugeMetricFamily(
            "logpipe_file_seconds_since_ack",
            "Seconds since the file's last acknowledgement (absent: none yet)",
            labels=["component_id", "path"],
        )
        now = time.time()
        checkpoints = self._pipeline.checkpoints
        for tailer in self._pipeline.tailers:
            for tf in tailer.tracked():
                size = _size(tf.fd, tf.size)
                acked = 0
                checkpoint = checkpoints.get(tf.file_id) if tf.file_id else None
                if checkpoint is not None and checkpoint.generation == tf.generation:
                    acked = checkpoint.offset
                lag.add_metric([tailer.name, tf.path], max(size - acked, 0))
                if checkpoint is not None and checkpoint.acked_at:
                    since.add_metric([tailer.name, tf.path], max(now - checkpoint.acked_at, 0.0))
        yield lag
        yield since

    def _alerts(self) -> Iterator[Metric]:
        alerts = self._pipeline.alerts
        sent = CounterMetricFamily("logpipe_alerts_sent", "Alert e-mails the SMTP server accepted")
        grouped = CounterMetricFamily(
            "logpipe_alerts_grouped", "Alerting events counted into a group's digest"
        )
        held = CounterMetricFamily(
            "logpipe_alerts_suppressed",
            "Alerting events held back from an e-mail of their own (counted in a digest)",
            labels=["reason"],
        )
        failures = CounterMetricFamily(
            "logpipe_smtp_failures", "Failed SMTP deliveries", labels=["kind"]
        )
        if alerts is not None:
            sent.add_metric([], alerts.stats.sent)
            grouped.add_metric([], alerts.policy.grouped)
            for reason, count in alerts.policy.held_back.items():
                held.add_metric([reason], count)
            failures.add_metric(["transient"], alerts.stats.retried)
            failures.add_metric(["refused"], alerts.stats.failed)
        yield from (sent, grouped, held, failures)


def _counter(name: str, doc: str, extra: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(
        f"logpipe_component_{name}", doc, labels=[*_COMPONENT, *(extra or [])]
    )


def _histogram(name: str, doc: str, durations: Durations) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["component_id"])
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*durations.bounds, math.inf], durations.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
    family.add_metric(["elasticsearch"], buckets, durations.total)
    return family


def _size(fd: int, known: int) -> int:
    if fd < 0:
        return known
    try:
        return os.fstat(fd).st_size
    except OSError:
        return known


class Metrics:
    """A pipeline's registry; :meth:`exposition` is the ``/metrics`` body."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(pipeline))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
