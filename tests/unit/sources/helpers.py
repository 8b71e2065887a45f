"""Helpers for tailer scenarios: a recording emit, file writes, acknowledgements."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from logpipe.checkpoints import CheckpointStore
from logpipe.event import Event
from logpipe.sources.tail import Emit, Tailer

MakeTailer = Callable[..., Tailer]

TIMEOUT = 10.0  # generous: these are behaviour tests, not timing tests


class Collector:
    """An emit callable that records lines and lets a test wait for them."""

    def __init__(self) -> None:
        self.lines: list[Event] = []
        self._changed = asyncio.Event()

    async def __call__(self, lines: deque[Event]) -> None:
        while lines:
            self.lines.append(lines.popleft())
        self._changed.set()

    @property
    def raws(self) -> list[bytes]:
        return [line.raw for line in self.lines]

    async def wait_for(self, count: int) -> None:
        async def until() -> None:
            while len(self.lines) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), TIMEOUT)


def one_by_one(put: Callable[[Event], Awaitable[object]]) -> Emit:
    """An emit that hands lines to ``put`` one at a time (the pipeline takes a chunk)."""

    async def emit(lines: deque[Event]) -> None:
        while lines:
            await put(lines[0])
            lines.popleft()

    return emit


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def ack(store: CheckpointStore, lines: Iterable[Event]) -> None:
    """What the pipeline does once Elasticsearch has acknowledged ``lines``."""
    for line in lines:
        store.advance(line.file_id, line.path, line.generation, line.end)
