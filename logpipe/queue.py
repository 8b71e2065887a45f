"""One memory budget for every event between the readers and Elasticsearch.

The budget covers events waiting in the queue *and* events taken into a batch
that is in flight or being retried: a batch's share is only given back by
:meth:`EventQueue.release` once the sink has settled it. So however long
Elasticsearch is down, the process holds at most ``max_events`` events and
``max_bytes`` bytes of them; the readers wait, and the files on disk are the
buffer. Bounded by count and by bytes, because lines vary from 100 bytes to 1 MiB.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import deque
from itertools import accumulate, islice, repeat, starmap
from operator import attrgetter

from logpipe.event import Event

_SIZE = attrgetter("size")


class EventQueue:
    """FIFO of events; ``put`` waits while the budget is spent."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self._items: deque[Event] = deque()
        self._max_events = max_events
        self._max_bytes = max_bytes
        self.held = 0  # events queued or in flight
        self.bytes = 0  # their bytes
        self._queued_bytes = 0  # bytes of the events not yet batched
        self._waiting_puts = 0  # readers blocked on the budget
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        """Events waiting to be batched (not counting those in flight)."""
        return len(self._items)

    def _full(self, size: int) -> bool:
        # An event bigger than the whole budget still goes in once nothing else is
        # held, or it could never be delivered.
        if self.held == 0:
            return False
        return self.held >= self._max_events or self.bytes + size > self._max_bytes

    async def put(self, event: Event) -> None:
        """Append ``event``, waiting while the budget is spent."""
        await self.put_some([event])

    async def put_some(self, events: list[Event], start: int = 0) -> int:
        """Append events from ``events[start:]``, waiting while the budget is spent.

        Waits until the budget has room for the first of them, then takes as many
        as fit in one go; returns how many it took (at least one when
        ``events[start:]`` is not empty). Cancelled while waiting, it took none.
        """
        if start >= len(events):
            return 0
        async with self._changed:
            while self._full(events[start].size):
                self._waiting_puts += 1
                if self._waiting_puts == 1:
                    # A batch being assembled should stop waiting for more. Only on the
                    # first blocked reader: notifying on every wait made two blocked
                    # readers wake each other in a busy loop.
                    self._changed.notify_all()
                try:
                    await self._changed.wait()
                finally:
                    self._waiting_puts -= 1
            items, held, used = self._items, self.held, self.bytes
            rest = events[start:] if start else events
            size = sum(map(_SIZE, rest))
            if held + len(rest) <= self._max_events and used + size <= self._max_bytes:
                # All of them fit (the usual case): no Python step per event.
                items.extend(rest)
                taken, held, used = len(events), held + len(rest), used + size
            else:
                taken = start
                for event in rest:
                    size = event.size
                    if taken > start and (
                        held >= self._max_events or used + size > self._max_bytes
                    ):
                        break
                    items.append(event)
                    held += 1
                    used += size
                    taken += 1
            self._queued_bytes += used - self.bytes
            self.held, self.bytes = held, used
            self._changed.notify_all()
            return taken - start

    async def get_batch(self, max_events: int, max_bytes: int, max_age: float) -> list[Event]:
        """Wait for at least one event, then up to ``max_age`` seconds for a full batch.

        The batch still counts against the budget until :meth:`release`.
        """
        loop = asyncio.get_running_loop()
        async with self._changed:
            while not self._items:
                await self._changed.wait()
            deadline = loop.time() + max_age
            while len(self._items) < max_events and self._queued_bytes < max_bytes:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._waiting_puts or self._full(0):
                    # Waiting longer cannot fill the batch when the readers are blocked.
                    break
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that arrives as the wait completes (gh-86296).
                try:
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()
                except TimeoutError:
                    break
            # Up to max_events events, each taken while the ones before it come to less
            # than max_bytes (so one event over max_bytes still goes, alone). Counted
            # and moved by C loops: a Python step per event showed in profiles.
            items = self._items
            sizes = list(accumulate(map(_SIZE, islice(items, max_events))))
            count = min(len(sizes), bisect_left(sizes, max_bytes) + 1)
            batch = list(starmap(items.popleft, repeat((), count)))
            self._queued_bytes -= sizes[count - 1]
            return batch

    async def release(self, batch: list[Event]) -> None:
        """Give back the budget of a settled batch; wakes waiting readers."""
        async with self._changed:
            self.held -= len(batch)
            self.bytes -= sum(map(_SIZE, batch))
            self._changed.notify_all()


class BatchSizer:
    """Bulk request size that grows while a backlog waits and shrinks once caught up.

    A batch that left events behind in the queue means the sink is behind: the
    next bounds are doubled, up to ``backlog_events``. A batch less than half
    full with nothing left behind means logpipe has caught up: the bounds halve,
    back down to ``base_events`` / ``base_bytes`` (small requests keep live
    latency low). The bytes scale with the events.

    Whatever the settings, a batch never takes more than half the queue's
    budget (``budget_events`` / ``budget_bytes``): the readers must be able to
    fill the other half while it is in flight, or reading and sending take
    turns instead of overlapping.
    """

    def __init__(
        self,
        base_events: int,
        base_bytes: int,
        backlog_events: int,
        *,
        budget_events: int,
        budget_bytes: int,
    ) -> None:
        cap_events, cap_bytes = max(1, budget_events // 2), max(1, budget_bytes // 2)
        self._base_events = min(base_events, cap_events)
        self._base_bytes = min(base_bytes, cap_bytes)
        self._ceiling_events = min(max(base_events, backlog_events), cap_events)
        self._ceiling_bytes = cap_bytes
        self.factor = 1

    @property
    def max_events(self) -> int:
        return min(self._base_events * self.factor, self._ceiling_events)

    @property
    def max_bytes(self) -> int:
        return min(self._base_bytes * self.factor, self._ceiling_bytes)

    def observe(self, taken: int, still_queued: int) -> None:
        """Adjust after taking a batch of ``taken`` events with ``still_queued`` left.

        Events left behind mean the batch hit a bound (count or bytes) rather
        than its age: there is a backlog.
        """
        if still_queued > 0:
            if self.max_events < self._ceiling_events or self.max_bytes < self._ceiling_bytes:
                self.factor *= 2
        elif taken * 2 < self.max_events and self.factor > 1:
            self.factor //= 2
