"""From a tailer's read chunk to the queue: the per-line step, then the bounded put.

A tailer awaits ``emit`` for each read chunk (see
:data:`logpipe.sources.shared.Emit`). The chunk is encoded, in this process
(:func:`inline`) or in the input's worker process (``workers: N``, see
:mod:`logpipe.workers`), and its events are put in the queue, waiting while
the budget is spent. Either way an input hands over one chunk at a time, so
its events reach the queue in file order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from itertools import repeat, starmap
from operator import attrgetter

from logpipe.event import Event
from logpipe.process import LineProcessor
from logpipe.queue import EventQueue
from logpipe.sources.shared import Emit
from logpipe.stats import InputStats

# The per-line step of one input: a chunk's events, encoded in place, in order.
Encode = Callable[[deque[Event]], Awaitable[list[Event]]]
# Lines queued (from here on outstanding until acknowledged).
Taken = Callable[[int], None]

_END, _OFFSET = attrgetter("end"), attrgetter("offset")


def inline(processor: LineProcessor) -> Encode:
    """The per-line step in this process."""

    async def encode(lines: deque[Event]) -> list[Event]:
        return processor.process(lines)

    return encode


def emitter(encode: Encode, queue: EventQueue, stats: InputStats, taken: Taken) -> Emit:
    """A tailer's ``emit``: encode the chunk, then queue its events."""

    async def emit(lines: deque[Event]) -> None:
        events = await encode(lines)
        count = 0
        try:
            while count < len(events):
                count += await queue.put_some(events, count)
        finally:
            # Counted only once queued: lines a cancelled put did not take stay
            # with the tailer, which emits (and encodes) them again later. A
            # queued event lets go of its raw bytes: its entry carries the document.
            if count:
                # As C loops (a Python step per line showed in profiles): take
                # the queued events off the deque, count their bytes, let go of raw.
                queued = list(starmap(lines.popleft, repeat((), count)))
                stats.events += count
                stats.bytes += sum(map(_END, queued)) - sum(map(_OFFSET, queued))
                deque(map(setattr, queued, repeat("raw"), repeat(b"")), maxlen=0)
                taken(count)

    return emit
