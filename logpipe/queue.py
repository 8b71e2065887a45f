"""A bounded queue with a memory budget, the one buffer between readers and the sink.

Bounded both by event count and by bytes (lines vary from 100 bytes to 1 MiB):
when either is reached, ``put`` waits, so the readers — and through them the
files on disk — absorb a slow or absent Elasticsearch instead of RAM.
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
        self.bytes = 0
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def _full(self, size: int) -> bool:
        # An event bigger than the whole budget still goes in once the queue is empty,
        # or it could never be delivered.
        if not self._items:
            return False
        return len(self._items) >= self._max_events or self.bytes + size > self._max_bytes

    async def put(self, event: Event) -> None:
        """Append ``event``, waiting while the queue is full."""
        size = event.size
        async with self._changed:
            while self._full(size):
                await self._changed.wait()
            self._items.append(event)
            self.bytes += size
            self._changed.notify_all()

    async def get_batch(self, max_events: int, max_bytes: int, max_age: float) -> list[Event]:
        """Wait for at least one event, then up to ``max_age`` seconds for a full batch."""
        loop = asyncio.get_running_loop()
        async with self._changed:
            while not self._items:
                await self._changed.wait()
            deadline = loop.time() + max_age
            while len(self._items) < max_events and self.bytes < max_bytes:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[Event] = []
            taken = 0
            while self._items and len(batch) < max_events and (not batch or taken < max_bytes):
                event = self._items.popleft()
                size = event.size
                taken += size
                self.bytes -= size
                batch.append(event)
            self._changed.notify_all()
            return batch
