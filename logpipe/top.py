"""``logpipe top``: a live view of a running logpipe, from its Prometheus ``/metrics``.

Like ``vector top``: every interval the endpoint is scraped and a table is
redrawn with each component's events in and out per second (the counters'
increase between the last two scrapes), totals, errors and dead letters; each
file's lag; the memory budget in use; alert e-mails. Parsing and rendering are
pure (:func:`parse_metrics`, :func:`snapshot`); :func:`run_top` does the HTTP
and the terminal, with plain ANSI codes (no curses): on a terminal the screen
is cleared and redrawn, otherwise each snapshot is printed as plain lines.
"""

from __future__ import annotations

import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from prometheus_client.parser import text_string_to_metric_families

from logpipe.status import duration, human_bytes, table

Labels = tuple[tuple[str, str], ...]
"""A sample's labels, sorted: hashable, so series can be keyed by them."""

CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


class TopError(Exception):
    """The metrics endpoint could not be scraped (unreachable, not metrics)."""


@dataclass(slots=True)
class Metrics:
    """One scrape: every sample by its name (counters under ``<name>_total``)."""

    series: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def values(self, name: str) -> dict[Labels, float]:
        return self.series.get(name, {})

    def by(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        """Values of ``name`` summed over every label but ``keys``."""
        out: dict[tuple[str, ...], float] = {}
        for labels, value in self.values(name).items():
            found = dict(labels)
            group = tuple(found.get(k, "") for k in keys)
            out[group] = out.get(group, 0.0) + value
        return out

    def total(self, name: str) -> float | None:
        values = self.values(name)
        return sum(values.values()) if values else None


def parse_metrics(text: str) -> Metrics:
    """Parse Prometheus' text format; ValueError if it is not that. Pure.

    prometheus_client names a counter's family without ``_total`` and its sample
    with it; samples are kept by their own name, so ``x_total`` is found as
    written whether the exporter declared the family ``x`` or ``x_total``.
    ``_created`` samples (start times of counters) are dropped.
    """
    metrics = Metrics()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = tuple(sorted(sample.labels.items()))
            metrics.series.setdefault(sample.name, {})[labels] = float(sample.value)
    return metrics


# -- rendering (pure) ----------------------------------------------------------------

_PREFIX = "logpipe_component_"
_COMPONENT_COLUMNS = (
    "COMPONENT", "KIND", "IN/S", "IN", "OUT/S", "OUT", "BYTES IN/S", "BYTES OUT/S",
    "ERRORS", "DEAD", "DISCARDED", "RETRIES",
)  # fmt: skip


def snapshot(
    prev: Metrics | None,
    cur: Metrics,
    dt: float,
    *,
    source: str = "",
    now: float | None = None,
) -> list[str]:
    """The screen for scrape ``cur``, with rates over the ``dt`` seconds since ``prev``.

    Without ``prev`` (the first scrape) rates show as ``-``. ``now`` (unix time)
    gives the uptime, from ``logpipe_start_time_seconds``.
    """
    rate = _Rates(prev, cur, dt)
    lines = [_header(cur, source, now), ""]
    lines.extend(_components(cur, rate))
    files = _files(cur)
    if files:
        lines.append("")
        lines.extend(files)
    lines.append("")
    lines.append(_queue(cur))
    lines.append(_bulk(prev, cur))
    lines.append(_alerts(cur, rate))
    return lines


class _Rates:
    """Per-second increase of a counter series between two scrapes."""

    def __init__(self, prev: Metrics | None, cur: Metrics, dt: float) -> None:
        self._prev, self._cur, self._dt = prev, cur, dt

    def of(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        if self._prev is None or self._dt <= 0:
            return {}
        before = self._prev.by(name, *keys)
        out = {}
        for group, value in self._cur.by(name, *keys).items():
            old = before.get(group, 0.0)
            # A counter that went down was reset (logpipe restarted): count from zero.
            out[group] = (value - old if value >= old else value) / self._dt
        return out


def _header(cur: Metrics, source: str, now: float | None) -> str:
    versions = [dict(labels).get("version", "?") for labels in cur.values("logpipe_build_info")]
    parts = [f"logpipe {versions[0]}" if versions else "logpipe"]
    start = cur.total("logpipe_start_time_seconds")
    if now is not None and start:
        parts.append(f"up {duration(max(now - start, 0.0))}")
    if source:
        parts.append(source)
    if now is not None:
        parts.append(time.strftime("%H:%M:%S", time.localtime(now)))
    return " | ".join(parts)


def _components(cur: Metrics, rate: _Rates) -> list[str]:
    keys = ("component_id", "component_kind")
    counters = {
        short: cur.by(f"{_PREFIX}{short}_total", *keys)
        for short in (
            "received_events",
            "sent_events",
            "received_bytes",
            "sent_bytes",
            "errors",
            "dead_lettered_events",
            "discarded_events",
            "retries",
        )
    }
    rates = {short: rate.of(f"{_PREFIX}{short}_total", *keys) for short in counters}
    components = sorted(
        {c for values in counters.values() for c in values},
        key=lambda c: ({"source": 0, "transform": 1, "sink": 2}.get(c[1], 3), c[0]),
    )
    if not components:
        return ["no component metrics (is this logpipe's /metrics?)"]
    rows = []
    for c in components:
        rows.append(
            (
                c[0] or "-",
                c[1] or "-",
                _per_second(rates["received_events"].get(c), c in counters["received_events"]),
                _count(counters["received_events"].get(c)),
                _per_second(rates["sent_events"].get(c), c in counters["sent_events"]),
                _count(counters["sent_events"].get(c)),
                _bytes_rate(rates["received_bytes"].get(c), c in counters["received_bytes"]),
                _bytes_rate(rates["sent_bytes"].get(c), c in counters["sent_bytes"]),
                _count(counters["errors"].get(c)),
                _count(counters["dead_lettered_events"].get(c)),
                _count(counters["discarded_events"].get(c)),
                _count(counters["retries"].get(c)),
            )
        )
    return table(_COMPONENT_COLUMNS, rows, right=range(2, len(_COMPONENT_COLUMNS)))


def _files(cur: Metrics) -> list[str]:
    lag = cur.by("logpipe_file_lag_bytes", "component_id", "path")
    since = cur.by("logpipe_file_seconds_since_ack", "component_id", "path")
    rows = [
        (key[0] or "-", human_bytes(lag.get(key, 0.0)), _age(since.get(key)), key[1])
        for key in sorted(set(lag) | set(since))
    ]
    if not rows:
        return []
    return table(("INPUT", "LAG", "LAST ACK", "FILE"), rows, right={1})


def _queue(cur: Metrics) -> str:
    events, max_events = cur.total("logpipe_buffer_events"), cur.total("logpipe_buffer_max_events")
    size, max_size = (
        cur.total("logpipe_buffer_byte_size"),
        cur.total("logpipe_buffer_max_byte_size"),
    )
    if events is None and size is None:
        return "queue: no metrics"
    held = f"{_count(events)} / {_count(max_events)} events{_percent(events, max_events)}"
    memory = f"{_bytes(size)} / {_bytes(max_size)}{_percent(size, max_size)}"
    return f"queue: {held}, {memory}"


def _bulk(prev: Metrics | None, cur: Metrics) -> str:
    count = cur.total("logpipe_bulk_request_duration_seconds_count")
    total = cur.total("logpipe_bulk_request_duration_seconds_sum")
    if count is None or total is None:
        return "bulk requests: no metrics"
    line = f"bulk requests: {_count(count)}"
    if prev is not None:
        before = prev.total("logpipe_bulk_request_duration_seconds_count") or 0.0
        before_sum = prev.total("logpipe_bulk_request_duration_seconds_sum") or 0.0
        if count > before and total >= before_sum:
            mean = (total - before_sum) / (count - before)
            line += f", {count - before:.0f} since last, mean {mean * 1000:.0f} ms"
    return line


def _alerts(cur: Metrics, rate: _Rates) -> str:
    sent = cur.total("logpipe_alerts_sent_total")
    if sent is None:
        return "alerts: no metrics (alerts not configured?)"
    sent_rate = rate.of("logpipe_alerts_sent_total").get((), None)
    suppressed = cur.by("logpipe_alerts_suppressed_total", "reason")
    reasons = ", ".join(f"{r[0] or '?'} {_count(n)}" for r, n in sorted(suppressed.items()))
    parts = [
        f"alerts: sent {_count(sent)} ({_per_second(sent_rate, True)})",
        f"grouped {_count(cur.total('logpipe_alerts_grouped_total'))}",
        f"suppressed {_count(sum(suppressed.values()))}" + (f" ({reasons})" if reasons else ""),
        f"smtp failures {_count(cur.total('logpipe_smtp_failures_total'))}",
    ]
    return ", ".join(parts)


def _count(value: float | None) -> str:
    """``950``, ``12.3k``, ``4.5M``: a counter in at most six characters. Pure."""
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= limit:
            scale = 1e3 if suffix == "k" else limit
            return f"{value / scale:.1f}{suffix}"
    return f"{value:.0f}"


def _per_second(value: float | None, present: bool) -> str:
    if not present or value is None:
        return "-"
    return f"{value:.1f}/s" if value < 100 else f"{_count(value)}/s"


def _bytes_rate(value: float | None, present: bool) -> str:
    if not present or value is None:
        return "-"
    return f"{human_bytes(value)}/s"


def _bytes(value: float | None) -> str:
    return "-" if value is None else human_bytes(value)


def _percent(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return ""
    return f" ({part / whole:.0%})"


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{duration(seconds)} ago"


# -- I/O -----------------------------------------------------------------------------


def metrics_url(url: str) -> str:
    """``http://host:port`` means its ``/metrics``; a URL with a path is taken as is."""
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit(parts._replace(path="/metrics"))
    return url


def scrape(url: str, timeout: float) -> Metrics:
    """GET ``url`` and parse it; :class:`TopError` when that fails, with why."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        raise TopError(f"{url} answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise TopError(f"cannot reach {url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # reset, timeout, bad URL
        raise TopError(f"cannot reach {url}: {exc}") from None
    try:
        return parse_metrics(text)
    except ValueError as exc:
        raise TopError(f"{url} did not answer Prometheus metrics: {exc}") from None


def run_top(
    url: str,
    interval: float,
    *,
    once: bool = False,
    out: TextIO | None = None,
    tty: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Scrape ``url`` every ``interval`` seconds and show it until interrupted.

    On a terminal the screen is redrawn; otherwise a snapshot is printed per
    interval, from the second scrape on (rates need two). ``once``: print that
    first full snapshot and return. Raises :class:`TopError` when a scrape fails.
    """
    url = metrics_url(url)
    out = sys.stdout if out is None else out
    live = (out.isatty() if tty is None else tty) and not once
    timeout = max(interval, 5.0)
    prev: Metrics | None = None
    prev_at = 0.0
    if live:
        out.write(HIDE_CURSOR)
    try:
        while True:
            cur, at = scrape(url, timeout), time.monotonic()
            if live or prev is not None:
                lines = snapshot(prev, cur, at - prev_at, source=url, now=time.time())
                if live:
                    width = shutil.get_terminal_size().columns
                    out.write(CLEAR + "\n".join(line[:width] for line in lines) + "\n")
                else:
                    out.write("\n".join(lines) + "\n\n")
                out.flush()
                if once:
                    return
            prev, prev_at = cur, at
            sleep(interval)
    finally:
        if live:
            out.write(SHOW_CURSOR)
            out.flush()
