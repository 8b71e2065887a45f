"""noida-db's side of bench/latency.py: when does a line become searchable?

What was found about noida-db (0.2.3) and shapes this module:

- it refreshes an index every ``index.refresh_interval`` (logpipe's template
  sets 1 s), but only once the index has been searched: a never-searched
  index keeps answering from its first view. So every index a run will fill is
  created (after logpipe installed its template, so it gets its mappings) and
  searched before the writer starts;
- every read costs it time in proportion to the documents of the indices read
  (about 1 s for a ``_count`` over 60,000), and it indexes nothing meanwhile.
  So lines carry a fake day that advances every N lines (bench/livelog.py),
  logpipe puts each day in its own daily index, and :class:`VisibilityPoller`
  counts only the indices that are not yet complete.

:func:`probe_refresh` measures the refresh itself on a scratch index.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from livelog import LineMaker
from servers import BenchError, request


@dataclass(frozen=True, slots=True)
class Poll:
    sent: float  # time.time() the _count was sent
    received: float  # ... and answered
    first: int  # the first line of the index counted
    count: int  # lines first..first+count-1 are searchable


class VisibilityPoller(threading.Thread):
    """Counts the searchable lines on noida-db every ``interval`` s (see the docstring).

    Each round counts every index from the oldest not yet complete to the one
    the writer is filling now (``written()`` says how many lines it wrote), so
    a line is seen at the first round after its index's refresh, whatever the
    other indices do.
    """

    def __init__(
        self,
        url: str,
        maker: LineMaker,
        prefix: str,
        total: int,
        written: Callable[[], int],
        interval: float,
    ) -> None:
        super().__init__(name="visibility-poller", daemon=True)
        self.url, self.maker, self.prefix = url, maker, prefix
        self.total, self.written, self.interval = total, written, interval
        size = maker.segment_docs or total
        self.size = size
        self.counts = [0] * maker.segments(total)
        self.polls: list[Poll] = []
        self.failure: Exception | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            self._poll()
        except Exception as exc:  # handed to the main thread, which raises it
            self.failure = exc

    def _poll(self) -> None:
        low = 0  # the oldest index not yet complete
        while low < len(self.counts) and not self._stop_event.is_set():
            began = time.monotonic()
            high = max(0, self.written() - 1) // self.size
            for k in range(low, high + 1):
                index = index_name(self.prefix, self.maker, k * self.size)
                sent = time.time()
                status, body = request(self.url, "GET", f"/{index}/_count")
                if status != 200:
                    raise BenchError(f"_count on {index}: {status} {body[:300]!r}")
                count = int(orjson.loads(body)["count"])
                self.polls.append(Poll(sent, time.time(), k * self.size, count))
                self.counts[k] = count
            while low < len(self.counts) and self.counts[low] >= min(
                self.size, self.total - low * self.size
            ):
                low += 1
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    @property
    def visible(self) -> int:
        return sum(self.counts)


def index_name(prefix: str, maker: LineMaker, seq: int) -> str:
    """logpipe's daily index for line ``seq``: ``<prefix>-YYYY.MM.dd`` of its timestamp."""
    return f"{prefix}-{maker.day(seq):%Y.%m.%d}"


@dataclass(frozen=True, slots=True)
class Refresh:
    """How noida-db's refresh behaved on a probe index with the run's refresh_interval."""

    setting: str  # index.refresh_interval of the run's indices
    period: float  # median s between two moments new documents became visible
    lag_median: float  # s from a one-document bulk acknowledged to visible
    lag_max: float


def prepare_noida(url: str, prefix: str, maker: LineMaker, total: int) -> Refresh:
    """Create and search every index the run will fill, then probe the refresh."""
    names = [
        index_name(prefix, maker, k * maker.segment_docs) for k in range(maker.segments(total))
    ]
    for name in names:  # after logpipe installed its template, so they get its mappings
        status, body = request(url, "PUT", f"/{name}")
        if status != 200:
            raise BenchError(f"creating {name}: {status} {body[:300]!r}")
    for name in names:
        request(url, "GET", f"/{name}/_count")  # from now on noida-db refreshes it
    settings = orjson.loads(request(url, "GET", f"/{names[0]}/_settings")[1])
    setting = str(settings[names[0]]["settings"]["index"].get("refresh_interval", "1s"))
    return probe_refresh(url, setting)


def probe_refresh(url: str, setting: str, seconds: float = 4.0) -> Refresh:
    """One document every 0.1 s into a scratch index, counted every 10 ms.

    Also gives the indices created just before the ~1.5 s they need to take
    their first refresh after their first search.
    """
    index = "bench-refresh-probe"
    body = orjson.dumps({"settings": {"index": {"refresh_interval": setting}}})
    request(url, "PUT", f"/{index}", body)
    request(url, "GET", f"/{index}/_count")
    time.sleep(1.5)
    acked: list[float] = []
    steps: list[tuple[float, int]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not acked or time.monotonic() - acked[-1] >= 0.1:
            doc = b'{"create":{}}\n{"n":%d}\n' % len(acked)
            request(url, "POST", f"/{index}/_bulk", doc)
            acked.append(time.monotonic())
        count = int(orjson.loads(request(url, "GET", f"/{index}/_count")[1])["count"])
        if count > (steps[-1][1] if steps else 0):
            steps.append((time.monotonic(), count))
        time.sleep(0.01)
    lags: list[float] = []
    for at, count in steps:  # each document's lag runs to the first step that showed it
        lags += [at - acked[n] for n in range(len(lags), min(count, len(acked)))]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(steps)]
    return Refresh(
        setting,
        statistics.median(gaps) if gaps else math.nan,
        statistics.median(lags) if lags else math.nan,
        max(lags, default=math.nan),
    )
