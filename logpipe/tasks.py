"""Small asyncio helpers for running the pipeline's tasks side by side."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


async def first_failure(tasks: list[asyncio.Task[None]], awaitable: Awaitable[Any]) -> None:
    """Await ``awaitable``; if one of ``tasks`` fails first, raise its error instead."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        while not waiter.done():
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is waiter or task.cancelled():
                    continue
                error = task.exception()
                if error is not None:
                    raise error
            tasks = [t for t in tasks if not t.done()]
        waiter.result()
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


async def stop_readers(readers: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Once ``stop`` is set, let the readers finish their pass, then cancel them.

    A reader blocked on a full queue (Elasticsearch down) would never notice the
    stop; cancelling it there is safe: the tailer keeps the lines it had not yet
    handed over, and nothing read is checkpointed before it is acknowledged.
    """
    await stop.wait()
    _, pending = await asyncio.wait(readers, timeout=1.0)
    for task in pending:
        task.cancel()
    for task in readers:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_stopped(coro: Awaitable[None], stop: asyncio.Event) -> None:
    """Run ``coro`` unless ``stop`` is set first (then cancel it)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        else:
            raise asyncio.CancelledError
    finally:
        for t in (task, stopper):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


async def cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (skipping None and finished ones) and wait for them."""
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
