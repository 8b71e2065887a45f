"""Measurements, their summaries, and the markdown the runner prints and records.

Kept apart from ``run.py`` so that the numbers' meaning (what is a median of
what, which ratio divides what) is defined in one short place.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed run: of a child process (CPU and RSS known) or in-process (wall only)."""

    events: int
    wall: float
    cpu: float | None = None  # user + sys seconds of the child process alone
    max_rss_kib: int | None = None  # ru_maxrss of the child (KiB on Linux)
    sink_cpu: float | None = None  # CPU the null sink spent meanwhile (bench/null_es.py)

    @property
    def rate(self) -> float:
        return self.events / self.wall if self.wall else 0.0

    @property
    def cpu_per_million(self) -> float | None:
        if self.cpu is None or not self.events:
            return None
        return self.cpu * 1_000_000 / self.events

    @property
    def sink_cpu_per_million(self) -> float | None:
        if self.sink_cpu is None or not self.events:
            return None
        return self.sink_cpu * 1_000_000 / self.events


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, minimum and maximum of one figure over the runs."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def cell(self, fmt: str) -> str:
        return f"{self.median:{fmt}} ({self.low:{fmt}}..{self.high:{fmt}})"


@dataclass(slots=True)
class Row:
    """All runs of one implementation against one sink."""

    sink: str
    impl: str
    runs: list[Measurement]

    def spread(self, figure: str) -> Spread | None:
        values = [getattr(m, figure) for m in self.runs]
        if not values or any(v is None for v in values):
            return None
        return Spread.of(values)


_COLUMNS = (
    ("wall", ".2f", 1.0),
    ("rate", ",.0f", 1.0),
    ("cpu", ".2f", 1.0),
    ("cpu_per_million", ".1f", 1.0),
    ("max_rss_kib", ",.0f", 1 / 1024),
)
HEADER = (
    "| sink | implementation | events | wall s | events/s | CPU s (user+sys) "
    "| CPU-s / M events | peak RSS MiB |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def row_markdown(row: Row) -> str:
    """One table line: medians with (min..max) over the runs."""
    cells = [row.sink, row.impl, f"{row.runs[0].events:,}"]
    for figure, fmt, scale in _COLUMNS:
        spread = row.spread(figure)
        if spread is None:
            cells.append("—")
        else:
            scaled = Spread(spread.median * scale, spread.low * scale, spread.high * scale)
            cells.append(scaled.cell(fmt))
    return "| " + " | ".join(cells) + " |"


def ratio_lines(rows: list[Row]) -> list[str]:
    """logpipe against the baseline and the server ceiling, per sink, from medians."""
    by_key = {(row.sink, row.impl): row for row in rows}
    lines: list[str] = []
    for sink in dict.fromkeys(row.sink for row in rows):
        logpipe = by_key.get((sink, "logpipe"))
        baseline = by_key.get((sink, "baseline"))
        ceiling = by_key.get((sink, "server ceiling"))
        large = next(
            (r for r in rows if r.sink == sink and r.impl.startswith("server ceiling,")), None
        )
        parts = []
        if logpipe is not None and baseline is not None:
            parts.append(_ratio("rate", logpipe, baseline, "logpipe / baseline: events/s"))
            parts.append(_ratio("wall", logpipe, baseline, "wall time"))
            parts.append(_ratio("cpu_per_million", logpipe, baseline, "CPU per event"))
            parts.append(_ratio("max_rss_kib", logpipe, baseline, "peak RSS"))
        if logpipe is not None and ceiling is not None:
            parts.append(_ratio("rate", logpipe, ceiling, "logpipe / server ceiling: events/s"))
        if logpipe is not None and large is not None:
            parts.append(_ratio("rate", logpipe, large, f"logpipe / {large.impl}: events/s"))
        if baseline is not None and ceiling is not None:
            parts.append(_ratio("rate", baseline, ceiling, "baseline / server ceiling: events/s"))
        for pooled in (r for r in rows if r.sink == sink and r.impl.startswith("logpipe,")):
            name = pooled.impl
            if baseline is not None:
                parts.append(_ratio("rate", pooled, baseline, f"{name} / baseline: events/s"))
                parts.append(_ratio("cpu_per_million", pooled, baseline, "CPU per event"))
            if logpipe is not None:
                parts.append(_ratio("rate", pooled, logpipe, f"{name} / logpipe: events/s"))
        for pair in (r for r in rows if r.sink == sink and r.impl.startswith("baseline,")):
            if baseline is not None:
                parts.append(_ratio("rate", pair, baseline, f"{pair.impl} / baseline: events/s"))
        lines.append(f"- **{sink}**: " + "; ".join(p for p in parts if p))
    return lines


def sink_cpu_lines(rows: list[Row]) -> list[str]:
    """The null sink's own CPU per million events while each row ran, and what it leaves.

    On a machine where the sink shares the cores, the shipper's and the sink's
    CPU together, over the cores, bound the wall time from below.
    """
    cores = os.cpu_count() or 1
    parts = []
    for row in rows:
        sink = row.spread("sink_cpu_per_million")
        mine = row.spread("cpu_per_million")
        if sink is None or mine is None:
            continue
        floor = (sink.median + mine.median) / cores
        parts.append(
            f"{row.impl} {sink.median:.1f} (with its own {mine.median:.1f}: "
            f"at least {floor:.2f} s per million events on {cores} cores)"
        )
    if not parts:
        return []
    return [
        "- **the null sink's own CPU-s per million events**, while each ran: " + "; ".join(parts)
    ]


def _ratio(figure: str, mine: Row, other: Row, label: str) -> str:
    """The ratio of the medians; for events/s, also that of each round's pair of runs.

    Both run in the same round, minutes apart, so a machine that slows down
    over the hour slows both: the per-round ratios show how much of a median
    ratio is noise.
    """
    a, b = mine.spread(figure), other.spread(figure)
    if a is None or b is None or b.median == 0:
        return ""
    text = f"{label} x{a.median / b.median:.2f}"
    if figure == "rate" and len(mine.runs) == len(other.runs) > 1:
        rounds = Spread.of([m.rate / o.rate for m, o in zip(mine.runs, other.runs, strict=True)])
        text += f" (per round x{rounds.median:.2f}, x{rounds.low:.2f}..x{rounds.high:.2f})"
    return text


def table(rows: list[Row]) -> str:
    """The results table and the ratio lines, as markdown."""
    body = "\n".join(row_markdown(row) for row in rows)
    lines = ratio_lines(rows) + sink_cpu_lines(rows)
    return f"{HEADER}\n{body}\n\nRatios (medians):\n\n" + "\n".join(lines)


def machine() -> str:
    """``uname -a``, cores, CPU model and Python version, as markdown bullet points."""
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"- machine: `{uname}`\n- cores (nproc): {os.cpu_count()}; CPU: {model}\n"
        f"- Python {platform.python_version()} ({platform.python_implementation()})"
    )


def section(command: str, settings: str, rows: list[Row], notes: list[str]) -> str:
    """A dated RESULTS.md section."""
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    extra = "".join(f"- {note}\n" for note in notes)
    return (
        f"## {stamp}\n\n{machine()}\n- command: `{command}`\n- {settings}\n{extra}\n{table(rows)}\n"
    )


def append_results(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, creating it with a title when new."""
    if not path.exists():
        path.write_text("# Benchmark results\n\nAppended by `bench/run.py`; newest last.\n")
    with path.open("a", encoding="utf-8") as out:
        out.write("\n" + text)


def publish(text: str, results: Path, record: bool) -> None:
    """Print a finished section and, unless ``record`` is off, append it to ``results``."""
    print("\n" + text)
    if record:
        append_results(results, text)
        print(f"appended to {results}")
