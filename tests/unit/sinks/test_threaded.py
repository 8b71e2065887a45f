"""The worker that runs the blocking client's calls while the event loop goes on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from logpipe.sinks.threaded import AwaitedClient, Worker


async def test_calls_run_in_one_daemon_thread_in_the_order_made() -> None:
    worker = Worker()
    seen: list[tuple[int, threading.Thread]] = []

    def call(n: int) -> int:
        seen.append((n, threading.current_thread()))
        return n * 10

    results = await asyncio.gather(*(worker.run(call, n) for n in range(5)))
    worker.stop()
    assert results == [0, 10, 20, 30, 40]
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    threads = {thread for _, thread in seen}
    assert len(threads) == 1
    (thread,) = threads
    assert thread is not threading.main_thread() and thread.daemon


async def test_the_loop_goes_on_while_a_call_blocks() -> None:
    worker = Worker()
    release = threading.Event()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        for _ in range(5):
            ticks += 1
            await asyncio.sleep(0.01)
        release.set()

    ticker = asyncio.create_task(tick())
    # The call returns only once the loop has run the ticker to its end.
    released = await worker.run(release.wait, 5)
    await ticker
    worker.stop()
    assert released is True and ticks == 5


async def test_an_exception_reaches_the_caller_and_the_worker_goes_on() -> None:
    worker = Worker()

    def fail() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError, match="refused"):
        await worker.run(fail)
    assert await worker.run(lambda: "next") == "next"
    worker.stop()


async def test_a_cancelled_call_does_not_hold_up_the_caller_or_the_next_calls() -> None:
    worker = Worker()
    release = threading.Event()
    stuck = asyncio.create_task(worker.run(release.wait, 5))
    await asyncio.sleep(0.05)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    # The abandoned call still runs to its end, then the worker takes the next one.
    release.set()
    assert await worker.run(lambda: "after") == "after"
    worker.stop()


async def test_closing_the_client_ends_its_worker() -> None:
    closed: list[bool] = []

    class Blocking:
        indices = ilm = object()

        def info(self) -> threading.Thread:
            return threading.current_thread()

        def close(self) -> None:
            closed.append(True)

    client = AwaitedClient(Blocking())
    thread = await client.info()
    await client.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and closed == [True]
