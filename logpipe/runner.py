"""How ``logpipe run`` drives a pipeline: signals, the garbage collector, the extras.

Imported by the ``run`` command before anything heavy: :func:`capture_signals`
must be in place before the half second of imports that follows.
"""

from __future__ import annotations

import contextlib
import gc
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logpipe.pipeline import Pipeline, RunReport


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a pipeline's workload.

    Events are trees of small dicts with no reference cycles, freed by reference
    counting; but every young-generation collection walks the thousands of events
    held in the memory budget. With the default thresholds that walking cost about
    a third of logpipe's CPU (bench/RESULTS.md, 2026-11-27). Freeze what start-up
    allocated and collect less often; memory stays bounded by the budget.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def capture_signals() -> list[int]:
    """Record SIGTERM/SIGINT until the event loop takes them over; return the record."""
    caught: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    return caught


async def run_with_extras(
    pipeline: Pipeline,
    once: bool,
    timeout: float,
    early: list[int] | None = None,
    monitoring_address: str | None = None,
    progress: bool = False,
) -> RunReport:
    """Run with the monitoring endpoint (and the progress display) around the pipeline."""
    async with contextlib.AsyncExitStack() as stack:
        if monitoring_address is not None:
            from logpipe.health import serve_monitoring

            await stack.enter_async_context(serve_monitoring(pipeline, monitoring_address))
        if progress:
            from logpipe.progress import show_progress

            await stack.enter_async_context(show_progress(pipeline))
        return await run_pipeline(pipeline, once, timeout, early)


async def run_pipeline(
    pipeline: Pipeline, once: bool, timeout: float, early: list[int] | None
) -> RunReport:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if early:
        stop.set()  # asked to stop while starting
    if not once:
        return await pipeline.run_forever(stop)
    # --once stops early on a signal too; its shutdown still saves checkpoints.
    task = asyncio.create_task(pipeline.run_once(timeout))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return pipeline.interrupted_report()
    return task.result()
