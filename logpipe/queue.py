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
from collections import deque

from logpipe.event import Event


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
        size = event.size
        async with self._changed:
            while self._full(size):
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
            self._items.append(event)
            self.held += 1
            self.bytes += size
            self._queued_bytes += size
            self._changed.notify_all()

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
            batch: list[Event] = []
            taken = 0
            while self._items and len(batch) < max_events and (not batch or taken < max_bytes):
                event = self._items.popleft()
                taken += event.size
                batch.append(event)
            self._queued_bytes -= taken
            return batch

    async def release(self, batch: list[Event]) -> None:
        """Give back the budget of a settled batch; wakes waiting readers."""
        async with self._changed:
            self.held -= len(batch)
            self.bytes -= sum(event.size for event in batch)
            self._changed.notify_all()
