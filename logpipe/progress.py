"""Progress of ``logpipe run --once`` through a backlog (a backfill).

On a terminal, a bar redrawn twice a second on stderr; otherwise (CI, a
cron job's log) a plain line every ``LINE_EVERY`` seconds, none for a short
run. Bytes are the measure: ``done`` is what the inputs have read and queued,
``left`` is what the open files hold past that, so the total grows with
files that grow while it runs. Events are those Elasticsearch has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from logpipe.pipeline import Pipeline

BAR_EVERY = 0.5
LINE_EVERY = 10.0
_RATE_WINDOW = 10.0  # seconds of history behind the rate and the ETA


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a run is: bytes read and left, events settled, at a monotonic time."""

    at: float
    done_bytes: int
    left_bytes: int
    events: int


def snapshot(pipeline: Pipeline, at: float) -> Snapshot:
    done = sum(stats.bytes for stats in pipeline.input_stats.values())
    left = sum(
        max(tf.size - tf.committed, 0) for tailer in pipeline.tailers for tf in tailer.tracked()
    )
    stats = pipeline.sink.stats
    return Snapshot(at, done, left, stats.created + stats.duplicates + stats.dead_lettered)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def describe(first: Snapshot, now: Snapshot, *, bar_width: int = 0) -> str:
    """One progress line from the oldest snapshot of the rate window and the newest."""
    total = now.done_bytes + now.left_bytes
    fraction = now.done_bytes / total if total else 1.0
    elapsed = now.at - first.at
    byte_rate = (now.done_bytes - first.done_bytes) / elapsed if elapsed > 0 else 0.0
    event_rate = (now.events - first.events) / elapsed if elapsed > 0 else 0.0
    if now.left_bytes == 0:
        eta = "0:00:00"
    elif byte_rate > 0:
        eta = _clock(now.left_bytes / byte_rate)
    else:
        eta = "?"
    text = (
        f"{fraction:4.0%}  {_size(now.done_bytes)} of {_size(total)}  "
        f"{_count(now.events)} events  {_count(event_rate)} events/s  "
        f"{_size(byte_rate)}/s  ETA {eta}"
    )
    if bar_width:
        filled = int(fraction * bar_width)
        text = f"[{'#' * filled}{'.' * (bar_width - filled)}] {text}"
    return text


async def _report(pipeline: Pipeline, out: TextIO, tty: bool) -> None:
    history: deque[Snapshot] = deque([snapshot(pipeline, time.monotonic())])
    every = BAR_EVERY if tty else LINE_EVERY
    while True:
        await asyncio.sleep(every)
        now = snapshot(pipeline, time.monotonic())
        history.append(now)
        while len(history) > 1 and now.at - history[0].at > _RATE_WINDOW:
            history.popleft()
        line = describe(history[0], now, bar_width=30 if tty else 0)
        if tty:
            out.write(f"\r\x1b[2K{line}")
        else:
            out.write(f"progress: {line}\n")
        out.flush()


@contextlib.asynccontextmanager
async def show_progress(pipeline: Pipeline, out: TextIO | None = None) -> AsyncIterator[None]:
    """Report progress on ``out`` (stderr) while the block runs."""
    stream = out or sys.stderr
    tty = stream.isatty()
    task = asyncio.create_task(_report(pipeline, stream, tty))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if tty:
            stream.write("\r\x1b[2K")
            stream.flush()
