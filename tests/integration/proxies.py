"""A byte-forwarding TCP proxy on loopback, optionally terminating TLS.

It stands in for what sits between logpipe and Elasticsearch in production:
TLS in front of a node (with a certificate the test chooses), or one of several
nodes of a cluster (two proxies to one server are two nodes sharing their data).
:meth:`TcpProxy.kill` is the node dying: the listener closes, so new
connections are refused, and every open connection is cut mid-request.

Like ``tests/faults/proxy.py`` it runs its own event loop in a thread, so a
synchronous test drives it with plain calls while logpipe runs in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from logpipe.devservers import free_port


@dataclass
class ProxyCounts:
    connections: int = 0  # accepted; when terminating TLS, only after a good handshake
    bytes_up: int = 0  # client to upstream


class TcpProxy:
    """``127.0.0.1:<port>`` forwarding to ``upstream_port``; TLS with ``tls`` as server context.

    With ``record``, :attr:`sent` keeps every byte clients sent (decrypted), to
    check what went over the wire.
    """

    def __init__(
        self, upstream_port: int, *, tls: ssl.SSLContext | None = None, record: bool = False
    ) -> None:
        self._upstream_port = upstream_port
        self._tls = tls
        self._record = record
        self.sent = bytearray()  # what clients sent upstream, when recording
        self.port = free_port()
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.counts = ProxyCounts()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> TcpProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def kill(self) -> None:
        """Stop listening and cut every open connection, as a node that dies."""
        self._run(self._kill())

    def close(self) -> None:
        if self._thread.is_alive():
            self.kill()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self._tls
        )

    async def _kill(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, count=True), self._pump(up_reader, writer)
            )
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool = False
    ) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await reader.read(1 << 16):
                if count:
                    self.counts.bytes_up += len(data)
                    if self._record:
                        self.sent += data
                writer.write(data)
                await writer.drain()
        # One side ended: end the other (half-close is not needed for HTTP/1.1).
        writer.transport.abort()
