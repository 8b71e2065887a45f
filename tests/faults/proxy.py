"""A fault-injecting HTTP/1.1 reverse proxy in front of a real Elasticsearch (noida-db).

It runs its own asyncio loop in a background thread, so synchronous tests drive
it with plain method calls while logpipe (a subprocess) talks to :attr:`url`.

One fault is active at a time (:meth:`FaultProxy.pass_through` clears it), for
the next ``count`` matching requests, for ``seconds``, or until replaced:

==========================  ===========================================================
``fail_requests(429|503)``  answer the whole request with that status; nothing forwarded
``reset_connections()``     read the request, then reset the connection (RST), no answer
``delay(s, forward_first)`` hold the request ``s`` seconds before forwarding it, or
                            forward it (the server commits) and hold the response
``drop_after_forward()``    forward (the server commits), then close without answering
``reject_items(fraction)``  per-item 429s inside a 200 bulk response: the rejected
                            items are cut out of the forwarded body and fake 429 items
                            are spliced into the server's answer at their positions, so
                            the server holds exactly what the client is told it holds
==========================  ===========================================================

:meth:`down` stops listening (connections are refused) and aborts every open
connection; :meth:`up` listens again on the same port.

Only what the official client sends is supported: requests with a
``Content-Length`` body (a chunked body is decoded too), no ``Expect:
100-continue``, no compression (``Accept-Encoding`` is stripped on the way up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from logpipe.devservers import free_port
from tests.faults.http11 import (
    ProxyProtocolError,
    Request,
    Response,
    error_response,
    read_request,
    read_response,
    splice_rejections,
    split_bulk,
    write_request,
    write_response,
)

T = TypeVar("T")

_HEADER_LIMIT = 1 << 20


@dataclass
class ProxyStats:
    """What the proxy did, for assertions that a fault was really injected."""

    requests: int = 0
    bulk_requests: int = 0
    forwarded: int = 0
    failed_requests: int = 0  # answered 429/503 as a whole
    resets: int = 0
    delayed: int = 0
    dropped_after_forward: int = 0
    forwarded_items: int = 0
    rejected_items: int = 0
    refused_while_down: int = 0


@dataclass
class _Fault:
    kind: str
    count: int | None = None  # matching requests left; None: unlimited
    until: float | None = None  # monotonic deadline; None: no deadline
    bulk_only: bool = True
    status: int = 503
    seconds: float = 0.0
    forward_first: bool = True
    fraction: float = 0.0

    def claim(self, is_bulk: bool, now: float) -> bool:
        """True if this request gets the fault (and uses up one of ``count``)."""
        if self.bulk_only and not is_bulk:
            return False
        if self.until is not None and now >= self.until:
            return False
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
        return True


class FaultProxy:
    """Reverse proxy on ``127.0.0.1:<port>`` to ``upstream`` with runtime-controlled faults."""

    def __init__(self, upstream: str, *, port: int | None = None, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError("upstream must be http://host:port")
        self._upstream = (parts.hostname, parts.port)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._fault: _Fault | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._holding = threading.Event()

    # -- lifecycle (called from the test thread) --------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self.up()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.down()
        self._call(self._cancel_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def up(self) -> None:
        """Listen (again) on :attr:`port`."""
        self._call(self._listen())

    def down(self) -> None:
        """Stop listening (connections are refused) and abort every open connection."""
        self._call(self._close_listener())

    @property
    def is_up(self) -> bool:
        return self._server is not None

    # -- faults (called from the test thread) ------------------------------------

    def pass_through(self) -> None:
        """Forward everything unchanged."""
        self._set(None)

    def fail_requests(
        self,
        status: int,
        *,
        count: int | None = None,
        seconds: float | None = None,
        bulk_only: bool = True,
    ) -> None:
        """Answer matching requests with ``status`` (429, 503, ...) without forwarding them."""
        self._set(_Fault("status", count, _deadline(seconds), bulk_only, status=status))

    def reset_connections(
        self, *, count: int | None = None, seconds: float | None = None, bulk_only: bool = True
    ) -> None:
        """Read matching requests, then reset their connection without an answer."""
        self._set(_Fault("reset", count, _deadline(seconds), bulk_only))

    def delay(
        self,
        delay_seconds: float,
        *,
        forward_first: bool = True,
        count: int | None = None,
        seconds: float | None = None,
        bulk_only: bool = True,
    ) -> None:
        """Hold matching requests ``delay_seconds``: after forwarding them, or before."""
        fault = _Fault("delay", count, _deadline(seconds), bulk_only)
        fault.seconds, fault.forward_first = delay_seconds, forward_first
        self._set(fault)

    def drop_after_forward(
        self, *, count: int | None = None, seconds: float | None = None, bulk_only: bool = True
    ) -> None:
        """Forward matching requests (the server commits them), then close unanswered."""
        self._set(_Fault("drop", count, _deadline(seconds), bulk_only))

    def reject_items(
        self, fraction: float, *, count: int | None = None, seconds: float | None = None
    ) -> None:
        """Answer about ``fraction`` of each bulk's items 429, forwarding only the others."""
        self._set(_Fault("items", count, _deadline(seconds), True, fraction=fraction))

    def wait_holding(self, timeout: float) -> bool:
        """Wait until a delayed request is being held (a bulk is in flight)."""
        return self._holding.wait(timeout)

    def _set(self, fault: _Fault | None) -> None:
        with self._lock:
            self._fault = fault
            self._holding.clear()

    def _claim(self, request: Request) -> _Fault | None:
        with self._lock:
            self.stats.requests += 1
            if request.is_bulk:
                self.stats.bulk_requests += 1
            fault = self._fault
            if fault is not None and fault.claim(request.is_bulk, time.monotonic()):
                return fault
            return None

    # -- the loop side -------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True, limit=_HEADER_LIMIT
            )

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._clients):
            _reset(writer)

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                upstream, keep = await self._handle(request, writer, upstream)
                if not keep or not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ProxyProtocolError, OSError):
            return
        except asyncio.CancelledError:
            # Only at stop(). Swallowed: on 3.11 a connection task that ends cancelled
            # makes asyncio's stream callback raise from task.exception().
            return
        finally:
            self._clients.discard(writer)
            if upstream is not None:
                upstream[1].close()
            writer.close()

    async def _handle(
        self,
        request: Request,
        client: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, bool]:
        """Serve one request; return the upstream connection to reuse and keep-alive."""
        fault = self._claim(request)
        kind = fault.kind if fault is not None else "pass"
        if fault is not None and kind == "status":
            self.stats.failed_requests += 1
            await write_response(client, error_response(fault.status))
            return upstream, True
        if kind == "reset":
            self.stats.resets += 1
            _reset(client)
            return upstream, False
        if fault is not None and kind == "delay" and not fault.forward_first:
            await self._hold(fault.seconds)
        if fault is not None and kind == "items":
            response, upstream = await self._forward_some(request, upstream, fault.fraction)
        else:
            response, upstream = await self._forward(request, upstream)
        if kind == "drop":
            self.stats.dropped_after_forward += 1
            _reset(client)
            return upstream, False
        if fault is not None and kind == "delay" and fault.forward_first:
            await self._hold(fault.seconds)
        await write_response(client, response)
        return upstream, True

    async def _hold(self, seconds: float) -> None:
        self.stats.delayed += 1
        self._holding.set()
        await asyncio.sleep(seconds)

    async def _forward(
        self,
        request: Request,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[Response, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        for attempt in (0, 1):
            if upstream is None:
                try:
                    upstream = await asyncio.open_connection(*self._upstream, limit=_HEADER_LIMIT)
                except OSError:
                    return error_response(502), None
            try:
                await write_request(upstream[1], request)
                response, reusable = await read_response(upstream[0], request.method)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                # A kept-alive upstream connection the server closed: reconnect once.
                upstream[1].close()
                upstream = None
                if attempt:
                    return error_response(502), None
                continue
            except asyncio.CancelledError:
                # stop() while forwarding: a connection opened here is not known to
                # _serve, which closes only the one it passed in.
                upstream[1].close()
                raise
            self.stats.forwarded += 1
            if not reusable:
                upstream[1].close()
                upstream = None
            return response, upstream
        raise AssertionError("unreachable")

    async def _forward_some(
        self,
        request: Request,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
        fraction: float,
    ) -> tuple[Response, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        """Forward only the accepted items of a bulk; splice 429s in for the others."""
        items = split_bulk(request.body)
        rejected = [self._rng.random() < fraction for _ in items]
        kept = [item for item, no in zip(items, rejected, strict=True) if not no]
        self.stats.rejected_items += sum(rejected)
        self.stats.forwarded_items += len(kept)
        if kept:
            sub = Request(
                request.method, request.target, request.version, request.headers, b"".join(kept)
            )
            response, upstream = await self._forward(sub, upstream)
            if response.status != 200:
                # The accepted items were answered as a whole (an error): pass it on.
                return response, upstream
            answered = json.loads(response.body)
        else:
            response = Response(200, "OK", [("content-type", "application/json")])
            answered = {"took": 0, "errors": False, "items": []}
        response.body = splice_rejections(answered, items, rejected)
        return response, upstream


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: the peer sees 'connection reset', not an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
