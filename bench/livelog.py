"""A live application log for the latency benchmark, and the latency arithmetic.

- :class:`LineMaker` turns bench/workload.py's application lines into lines that
  carry their sequence number and write time: ``"bench_seq": N`` and
  ``"bench_written": <time.time()>`` as two more extras of the JSONFormatter
  record (logpipe puts them under ``app.``), and a timestamp of "now" on a fake
  day that advances every ``segment_docs`` lines, so each daily index holds at
  most that many documents (see bench/latency.py for why);
- :class:`Writer` appends them at a fixed rate from a thread;
- :func:`first_arrivals`, :func:`latencies_from_arrivals`,
  :func:`latencies_from_polls` and :func:`percentile` are pure: values in,
  values out.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from array import array
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

from workload import app_lines

SEQ_FIELD = "bench_seq"
FIRST_DAY = date(2000, 1, 1)
_TIMESTAMP = re.compile(r'^\{"timestamp": "[^"]*"')


class LineMaker:
    """Application lines numbered from 0, stamped with their write time."""

    def __init__(self, segment_docs: int = 0, pool: int = 2000) -> None:
        rests = []
        for line in app_lines(pool):
            found = _TIMESTAMP.match(line)
            assert found is not None and line.endswith("}"), line
            rests.append(line[found.end() : -1])  # after the timestamp, without the "}"
        self._rests = rests
        self.segment_docs = segment_docs

    def day(self, seq: int) -> date:
        """The (fake) day of line ``seq``: one day per ``segment_docs`` lines."""
        return FIRST_DAY + timedelta(days=seq // self.segment_docs if self.segment_docs else 0)

    def segments(self, lines: int) -> int:
        """How many days (so daily indices) ``lines`` lines span."""
        return (lines - 1) // self.segment_docs + 1 if self.segment_docs and lines else 1

    def line(self, seq: int, written: float) -> bytes:
        micros = int(written % 1 * 1_000_000)
        clock = time.strftime("%H:%M:%S", time.gmtime(written))
        rest = self._rests[seq % len(self._rests)]
        return (
            f'{{"timestamp": "{self.day(seq).isoformat()}T{clock}.{micros:06d}"{rest}, '
            f'"{SEQ_FIELD}": {seq}, "bench_written": {written:.6f}}}\n'
        ).encode()


class Writer(threading.Thread):
    """Appends ``rate`` lines a second for ``seconds`` to ``path``, each flushed at once.

    Every ~millisecond it writes, in one ``write``, the lines that are due by
    then, all stamped with the same ``time.time()`` taken just before.
    ``written[seq]`` is the stamp of line ``seq``; ``max_lag`` how far (s) a
    write ever fell behind its schedule.
    """

    def __init__(self, path: Path, maker: LineMaker, rate: float, seconds: float) -> None:
        super().__init__(name="log-writer", daemon=True)
        self.path = path
        self.maker = maker
        self.rate = rate
        self.total = int(rate * seconds)
        self.written = array("d")
        self.max_lag = 0.0
        self.writes = 0
        self.error: Exception | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            self._write_all()
        except Exception as exc:  # handed to the main thread, which raises it
            self.error = exc

    def _write_all(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = time.monotonic()
            seq = 0
            while seq < self.total and not self._stop_event.is_set():
                now = time.monotonic()
                due = min(self.total, int((now - start) * self.rate) + 1)
                if due > seq:
                    stamp = time.time()
                    data = b"".join(self.maker.line(s, stamp) for s in range(seq, due))
                    while data:
                        data = data[os.write(fd, data) :]
                    self.written.extend([stamp] * (due - seq))
                    self.max_lag = max(self.max_lag, now - (start + seq / self.rate))
                    self.writes += 1
                    seq = due
                time.sleep(max(start + seq / self.rate - time.monotonic(), 0.0005))
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def achieved_rate(self) -> float:
        """Lines per second between the first and the last write."""
        if len(self.written) < 2 or self.written[-1] == self.written[0]:
            return 0.0
        return (len(self.written) - 1) / (self.written[-1] - self.written[0])


# -- latency arithmetic (pure) ----------------------------------------------------------


def first_arrivals(lines: int, arrivals: Iterable[tuple[float, int]]) -> list[float | None]:
    """For each of ``lines`` sequence numbers, the earliest time it arrived (or None).

    A line sent twice (a retried request) counts at its first arrival; numbers
    outside ``range(lines)`` are ignored.
    """
    first: list[float | None] = [None] * lines
    for at, seq in arrivals:
        if 0 <= seq < lines:
            seen = first[seq]
            if seen is None or at < seen:
                first[seq] = at
    return first


def latencies_from_arrivals(
    written: Sequence[float], arrivals: Iterable[tuple[float, int]]
) -> list[float]:
    """Arrival minus write time, per line; ``inf`` for a line that never arrived."""
    first = first_arrivals(len(written), arrivals)
    return [math.inf if at is None else at - w for w, at in zip(written, first, strict=True)]


def latencies_from_polls(
    written: Sequence[float], polls: Iterable[tuple[float, int, int]]
) -> list[float]:
    """Latency per line from polls ``(time, first, count)``, taken in time order.

    A poll says lines ``first .. first + count - 1`` were searchable at
    ``time`` (one poll counts one index, whose lines run from ``first``; lines
    are delivered in order, so what an index shows is a prefix of its lines).
    A line's latency runs to the first poll that saw it; ``inf`` if none did.
    """
    out = [math.inf] * len(written)
    seen: dict[int, int] = {}  # first line of an index -> lines of it already seen
    for at, first, count in polls:
        stop = min(first + count, len(written))
        for seq in range(first + seen.get(first, 0), stop):
            out[seq] = at - written[seq]
        seen[first] = max(seen.get(first, 0), stop - first)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values`` (may hold ``inf``)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
