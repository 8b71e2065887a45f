"""The memory budget between readers and the sink."""

from __future__ import annotations

import asyncio
import time

import pytest

from logpipe.event import Event
from logpipe.queue import BatchSizer, EventQueue


def event(size: int = 10) -> Event:
    return Event.of(Event("f", 0, "/p", 0, size + 1, b"x" * size, "in"), "i", "id", b"x" * size)


async def test_in_flight_batch_counts_against_the_budget_until_released() -> None:
    queue = EventQueue(max_events=3, max_bytes=1 << 20)
    for _ in range(3):
        await queue.put(event())
    blocked = asyncio.create_task(queue.put(event()))
    await asyncio.sleep(0.05)
    assert not blocked.done() and len(queue) == 3
    batch = await queue.get_batch(2, 1 << 20, 0.0)
    assert len(batch) == 2
    # Taken into a batch that is in flight (maybe retrying for hours): still held.
    await asyncio.sleep(0.05)
    assert not blocked.done() and queue.held == 3
    await queue.release(batch)
    await asyncio.wait_for(blocked, 1)
    assert (len(queue), queue.held) == (2, 2)


async def test_put_waits_when_byte_budget_is_spent() -> None:
    one = event(1000).size
    queue = EventQueue(max_events=1000, max_bytes=one * 2)
    await queue.put(event(1000))
    await queue.put(event(1000))
    blocked = asyncio.create_task(queue.put(event(1000)))
    await asyncio.sleep(0.05)
    assert not blocked.done() and queue.bytes == one * 2
    await queue.release(await queue.get_batch(1, 1 << 30, 0.0))
    await asyncio.wait_for(blocked, 1)


async def test_event_larger_than_the_whole_budget_still_passes_alone() -> None:
    queue = EventQueue(max_events=10, max_bytes=1 << 16)
    await asyncio.wait_for(queue.put(event(1 << 20)), 1)
    (only,) = await queue.get_batch(10, 1 << 16, 0.0)
    assert len(only.raw) == 1 << 20


async def test_batch_waits_up_to_max_age_for_more_events() -> None:
    queue = EventQueue(max_events=100, max_bytes=1 << 20)
    await queue.put(event())

    async def late() -> None:
        await asyncio.sleep(0.05)
        await queue.put(event())

    writer = asyncio.create_task(late())
    batch = await queue.get_batch(10, 1 << 20, 1.0)
    await writer
    # Not full (10), so it waited until the age limit and took the late event too.
    assert len(batch) == 2


async def test_batch_does_not_wait_for_more_when_readers_are_blocked_on_the_budget() -> None:
    queue = EventQueue(max_events=2, max_bytes=1 << 20)
    await queue.put(event())
    await queue.put(event())
    loop = asyncio.get_running_loop()
    started = loop.time()
    batch = await queue.get_batch(100, 1 << 20, 5.0)
    assert len(batch) == 2 and loop.time() - started < 1.0


async def test_batch_stops_waiting_when_a_reader_is_blocked_on_the_byte_budget() -> None:
    # Regression: the budget holds ~3 events by bytes but the batch wants 500; the
    # batch used to wait its whole max_age although the reader could add nothing.
    one = event(100).size
    queue = EventQueue(max_events=10_000, max_bytes=one * 3)
    for _ in range(3):
        await queue.put(event(100))
    blocked = asyncio.create_task(queue.put(event(100)))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    batch = await queue.get_batch(500, 1 << 30, 5.0)
    assert len(batch) == 3 and loop.time() - started < 1.0
    await queue.release(batch)
    await asyncio.wait_for(blocked, 1)


async def test_two_readers_blocked_on_the_budget_do_not_wake_each_other_in_a_loop() -> None:
    # Regression: each blocked put notified all waiters, so two blocked readers woke
    # each other forever (a busy loop that cost 3x the CPU while Elasticsearch was slow).
    queue = EventQueue(max_events=1, max_bytes=1 << 20)
    await queue.put(event())
    first = asyncio.create_task(queue.put(event()))
    second = asyncio.create_task(queue.put(event()))
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await asyncio.sleep(0)
    started = loop.time()
    cpu_before = time.process_time()
    await asyncio.sleep(0.3)
    cpu_spent = time.process_time() - cpu_before
    assert not first.done() and not second.done()
    assert cpu_spent < 0.1, f"blocked readers spun for {cpu_spent:.2f} CPU-s in 0.3 s"
    assert loop.time() - started >= 0.3
    for _ in range(3):
        await queue.release(await queue.get_batch(1, 1 << 20, 0.0))
    await asyncio.wait_for(asyncio.gather(first, second), 1)


async def test_put_some_takes_what_fits_and_a_cancelled_wait_takes_nothing() -> None:
    queue = EventQueue(max_events=3, max_bytes=1 << 20)
    events = [event() for _ in range(5)]
    assert await queue.put_some(events) == 3
    assert (len(queue), queue.held) == (3, 3)
    waiting = asyncio.create_task(queue.put_some(events, 3))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(queue) == 3
    await queue.release(await queue.get_batch(2, 1 << 20, 0.0))
    assert await queue.put_some(events, 3) == 2
    assert await queue.put_some(events, 5) == 0


@pytest.mark.parametrize(("max_bytes_in_events", "expected"), [(2.5, 3), (2, 2), (0.5, 1), (9, 4)])
async def test_batch_takes_events_while_those_before_them_come_to_less_than_max_bytes(
    max_bytes_in_events: float, expected: int
) -> None:
    queue = EventQueue(max_events=100, max_bytes=1 << 20)
    one = event().size
    await queue.put_some([event() for _ in range(6)])

    batch = await queue.get_batch(4, int(one * max_bytes_in_events), 0.0)

    assert len(batch) == expected
    rest = await queue.get_batch(100, 1 << 20, 0.0)
    assert len(rest) == 6 - expected
    assert queue._queued_bytes == 0
    assert (queue.held, queue.bytes) == (6, 6 * one)
    await queue.release(batch)
    await queue.release(rest)
    assert (queue.held, queue.bytes) == (0, 0)


async def test_put_some_takes_what_fits_the_byte_budget_in_order() -> None:
    one = event().size
    queue = EventQueue(max_events=100, max_bytes=one * 3)
    events = [event() for _ in range(5)]

    assert await queue.put_some(events) == 3
    assert (queue.held, queue.bytes, queue._queued_bytes) == (3, 3 * one, 3 * one)
    assert await queue.get_batch(100, 1 << 20, 0.0) == events[:3]


def test_batch_size_grows_under_a_backlog_and_shrinks_when_caught_up() -> None:
    sizer = BatchSizer(2000, 5 << 20, 8000, budget_events=20000, budget_bytes=16 << 20)
    assert (sizer.max_events, sizer.max_bytes) == (2000, 5 << 20)
    sizer.observe(2000, still_queued=5000)
    assert (sizer.max_events, sizer.max_bytes) == (4000, 8 << 20)  # half the budget
    sizer.observe(4000, still_queued=5000)
    sizer.observe(8000, still_queued=5000)
    assert sizer.max_events == 8000  # the ceiling holds however long the backlog
    sizer.observe(5000, still_queued=0)  # more than half full: stay
    assert sizer.max_events == 8000
    sizer.observe(100, still_queued=0)
    sizer.observe(100, still_queued=0)
    sizer.observe(100, still_queued=0)
    assert (sizer.max_events, sizer.max_bytes) == (2000, 5 << 20)


def test_a_batch_never_takes_more_than_half_the_budget_whatever_the_batch_settings() -> None:
    # Regression: with the 6 MiB budget and the 5 MiB batch.max_bytes, a batch could
    # hold 5/6 of the budget (peak RSS 80-81 MiB on 1M events instead of 78), and
    # whenever the readers refilled the queue before a batch was taken they then
    # waited out the whole request instead of reading during it.
    sizer = BatchSizer(2000, 5 << 20, 8000, budget_events=20000, budget_bytes=6 << 20)
    assert sizer.max_bytes == 3 << 20
    for _ in range(5):
        sizer.observe(2000, still_queued=5000)
        assert sizer.max_bytes <= 3 << 20
    small_queue = BatchSizer(2000, 5 << 20, 8000, budget_events=1000, budget_bytes=1 << 20)
    assert (small_queue.max_events, small_queue.max_bytes) == (500, 1 << 19)
    small_queue.observe(500, still_queued=500)
    assert (small_queue.max_events, small_queue.max_bytes) == (500, 1 << 19)
