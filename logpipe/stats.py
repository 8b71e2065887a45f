"""Plain counters the components keep and the metrics endpoint reads.

Components count in ints and small structures like :class:`Durations`, not in
Prometheus objects: counting stays a few nanoseconds on the hot path, and the
components do not depend on how (or whether) they are exported.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# Bulk requests: from a few ms (null sink, small batch) to the 30 s timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class Durations:
    """A histogram of durations in seconds: per-bucket counts (not cumulative) and the sum."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(slots=True)
class InputStats:
    """What one input has read: lines queued and their bytes (newlines included)."""

    events: int = 0
    bytes: int = 0
