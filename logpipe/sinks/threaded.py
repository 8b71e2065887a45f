"""A blocking search client, awaited: its calls run in a worker thread of its own.

logpipe uses the official clients' *blocking* transport (urllib3), not their
asyncio one. The asyncio transport needs aiohttp, and importing aiohttp
cost a sidecar 8-10 MiB of RSS and 0.2-0.3 s of CPU at every start
(issue #5: < 80 MiB through a 1 GB backlog). logpipe sends one bulk request
at a time, so the pipeline's loop hands each call to the client's worker and
goes on reading and encoding while the request is on the wire; urllib3
releases the GIL while it waits on the socket.

One long-lived worker per client, calls in the order made: the transport's
round-robin between hosts keeps its turn per thread (a thread per call would
send every request to the same host). It is a daemon thread: a request
abandoned at shutdown (the shipper cancelled after its drain timeout, a server
that stopped answering) must not hold the process until
``request_timeout_seconds`` ends. Its answer, if one still comes, is dropped;
the events it carried were not acknowledged, and their deterministic ids make
the re-read a 409, not a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

T = TypeVar("T")
_Job: TypeAlias = "tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]] | None"


class Worker:
    """A daemon thread running calls one after another, each awaited by its caller."""

    def __init__(self, name: str = "logpipe-requests") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` in the worker; its result or exception."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put((loop, answer, lambda: call(*args, **kwargs)))
        return await answer

    def stop(self) -> None:
        """End the thread once the call it is running (if any) returns."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, answer, call = job
            try:
                outcome: tuple[Any, BaseException | None] = (call(), None)
            except Exception as exc:  # handed to the awaiting task, which maps it
                outcome = (None, exc)
            # A closed loop (RuntimeError): nobody is waiting for this answer any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answer, outcome)
            del job, call, outcome  # a multi-megabyte body is not kept while idle


def _settle(answer: asyncio.Future[Any], outcome: tuple[Any, BaseException | None]) -> None:
    if answer.done():  # the awaiting task was cancelled
        return
    result, error = outcome
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


class _Calls:
    """A namespace of a blocking client (``indices``, ``ilm``), its methods awaited."""

    def __init__(self, target: Any, worker: Worker) -> None:
        self._target = target
        self._worker = worker

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._target, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._worker.run(method, *args, **kwargs)

        return call


class AwaitedClient:
    """The calls the sink and ``RetentionKeeper`` make, on a blocking client, awaited.

    ``client`` is ``elasticsearch.Elasticsearch`` or logpipe's OpenSearch
    adapter: ``info``, ``bulk``, ``indices.*``, ``ilm.*`` and ``close``.
    """

    def __init__(self, client: Any) -> None:
        self.blocking = client
        self._worker = Worker()
        self.indices = _Calls(client.indices, self._worker)
        self.ilm = _Calls(client.ilm, self._worker)

    async def info(self) -> Any:
        return await self._worker.run(self.blocking.info)

    async def bulk(self, *, operations: bytes, filter_path: list[str]) -> Any:
        return await self._worker.run(
            self.blocking.bulk, operations=operations, filter_path=filter_path
        )

    async def close(self) -> None:
        # Not through the worker, which may still wait on an abandoned request:
        # this closes the idle connections at once, and urllib3 closes that
        # request's connection when it ends.
        self._worker.stop()
        self.blocking.close()
