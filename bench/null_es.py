"""A "null" Elasticsearch: accepts bulk requests as fast as it can and stores nothing.

Run it as its own process so that its CPU is not counted as the client's::

    python bench/null_es.py --port 9299

It speaks just enough HTTP/1.1 (plain asyncio streams, keep-alive, bodies sized
by ``Content-Length`` or chunked) and just enough of the Elasticsearch 8.x REST
API for a shipper to run against it:

- ``GET /`` (and ``HEAD /``): an 8.15.3 info document. Every response carries
  ``X-Elastic-Product: Elasticsearch``, without which the official client
  refuses to talk to the server;
- ``GET /_index_template/<name>``: 404 (no template is ever kept);
  ``PUT /_index_template/<name>``: ``{"acknowledged": true}``;
- ``POST /_bulk`` and ``POST /<index>/_bulk``: every item answered 201. The
  body is parsed only as far as the answer needs: action lines are every other
  line, and only they are decoded (for ``_index`` and ``_id``). A
  ``filter_path`` parameter trims the answer as Elasticsearch does (``*``
  matches one field name, arrays are looked through), so a client that asks
  for ``errors,items.*.status`` gets, and decodes, only that;
- ``GET /_null/stats``: ``{"requests": ..., "bulk_requests": ..., "docs": ...,
  "refused_bulk_requests": ..., "down": ..., "cpu": ...}`` since start, so a
  benchmark can check that everything arrived, and tell how much CPU the
  server itself spent (user + sys seconds of this process) while a shipper
  ran.

For the benchmarks that need them (bench/latency.py, bench/memory.py):

- ``POST /_null/down`` and ``POST /_null/up`` (or ``--down`` at start): while
  down, every bulk request is answered 503 (Elasticsearch's error shape) and
  counted in ``refused_bulk_requests``, not in ``docs``; the info and template
  endpoints keep answering, as a cluster that lost its shards does;
- ``--record-field NAME``: for every document of every accepted bulk request
  whose source holds the integer field ``"NAME": <int>`` (at any depth), record
  the wall-clock time (``time.time()``) the request was answered and that
  integer. ``GET /_null/arrivals?from=I`` returns them in arrival order, a page
  at a time: ``{"field": NAME, "total": N, "next": J, "arrivals": [[t, n], ...]}``.
  A document sent twice (a retried request) is recorded twice.

Anything else is answered 404 in Elasticsearch's error shape. ``create``,
``index`` and ``update`` actions are assumed to be followed by a source line
(``delete`` is not used by the shippers this serves).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import itertools
import re
import resource
import signal
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qs

import orjson

VERSION = "8.15.3"
INFO = orjson.dumps(
    {
        "name": "null-es",
        "cluster_name": "bench",
        "cluster_uuid": "bench-null-elasticsearch",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_snapshot": False,
            "lucene_version": "9.11.1",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }
)
ACKNOWLEDGED = b'{"acknowledged":true}'
REASONS = {
    200: b"OK",
    201: b"Created",
    400: b"Bad Request",
    404: b"Not Found",
    503: b"Service Unavailable",
}
MAX_HEADER_BYTES = 64 * 1024
ARRIVALS_PAGE = 100_000


@dataclass(slots=True)
class Stats:
    requests: int = 0
    bulk_requests: int = 0
    docs: int = 0
    refused_bulk_requests: int = 0


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def not_found(what: str) -> bytes:
    """An Elasticsearch-shaped 404 body."""
    cause = {"type": "resource_not_found_exception", "reason": f"{what} not found"}
    return orjson.dumps({"error": {"root_cause": [cause], **cause}, "status": 404})


def bulk_response(
    body: bytes, default_index: str | None, filter_path: str | None = None
) -> tuple[bytes, int]:
    """The answer to a bulk ``body``: every action created; also the number of actions."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    ids = itertools.count()
    actions = []
    for action_line in lines[::2]:
        action = orjson.loads(action_line)
        op, meta = next(iter(action.items()))
        actions.append((op, meta.get("_index", default_index), meta.get("_id")))
    if not filter_path:
        items = [_item(op, index, doc_id or f"null-{next(ids)}") for op, index, doc_id in actions]
        return orjson.dumps({"errors": False, "took": 0, "items": items}), len(items)
    patterns = [pattern.split(".") for pattern in filter_path.split(",")]
    answer = {}
    for key, value in (("errors", False), ("took", 0)):
        kept = filtered(value, _below(key, patterns))
        if kept is not _DROPPED:
            answer[key] = kept
    below = _below("items", patterns)
    if below:
        # Every item of one kind looks the same unless the filter keeps its index or
        # id: filter one per kind, not thousands (this server must stay cheap).
        same: dict[str, Any] = {}  # op -> its filtered item, where all look the same
        varies: set[str] = set()
        kept_items = []
        for op, index, doc_id in actions:
            kept = same.get(op)
            if kept is None:
                kept = filtered(_item(op, index, doc_id or f"null-{next(ids)}"), below)
                if op not in varies:
                    if _PLACEHOLDER in orjson.dumps(filtered(_item(op, "\0", "\0"), below)):
                        varies.add(op)
                    else:
                        same[op] = kept
            if kept is not _DROPPED:
                kept_items.append(kept)
        if kept_items:
            answer["items"] = kept_items
    return orjson.dumps(answer), len(actions)


def _item(op: str, index: str | None, doc_id: str) -> dict[str, Any]:
    result = {"_index": index, "_id": doc_id, "_version": 1, "result": "created"}
    return {op: {**result, "status": 201, "_seq_no": 0, "_primary_term": 1}}


_PLACEHOLDER = b"\\u0000"


def _below(key: str, patterns: list[list[str]]) -> list[list[str]]:
    """The rest of the patterns whose first part matches ``key``."""
    return [pattern[1:] for pattern in patterns if pattern and fnmatchcase(key, pattern[0])]


_DROPPED = object()


def filtered(value: Any, patterns: list[list[str]]) -> Any:
    """``value`` trimmed to ``patterns`` (dotted paths split on dots), or ``_DROPPED``.

    Elasticsearch's ``filter_path``: a pattern names a path of field names, ``*``
    (or any glob) matching one level; arrays are looked through, their elements
    filtered with the same patterns.
    """
    if any(not pattern for pattern in patterns):
        return value  # a pattern ended here: the whole value is kept
    if isinstance(value, list):
        kept = [filtered(element, patterns) for element in value]
        kept = [element for element in kept if element is not _DROPPED]
        return kept if kept else _DROPPED
    if not isinstance(value, dict):
        return _DROPPED
    out = {}
    for key, child in value.items():
        rest = _below(key, patterns)
        if rest:
            kept = filtered(child, rest)
            if kept is not _DROPPED:
                out[key] = kept
    return out if out else _DROPPED


def unavailable() -> bytes:
    """An Elasticsearch-shaped 503 body (what a cluster without its shards answers)."""
    cause = {"type": "unavailable_shards_exception", "reason": "null-es is down (bench)"}
    return orjson.dumps({"error": {"root_cause": [cause], **cause}, "status": 503})


class Arrivals:
    """When each document carrying an integer ``field`` was acknowledged, in order.

    Only the source lines are searched, with one regular expression over the
    whole body (``"field": <int>``), so recording costs little even at tens of
    thousands of documents a second.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self._pattern = re.compile(rb'"' + re.escape(field.encode()) + rb'":\s*(-?\d+)')
        self.times = array("d")
        self.values = array("q")

    def record(self, body: bytes, at: float) -> None:
        found = [int(n) for n in self._pattern.findall(body)]
        self.values.extend(found)
        self.times.extend([at] * len(found))

    def page(self, start: int) -> bytes:
        stop = min(len(self.values), start + ARRIVALS_PAGE)
        pairs = [[self.times[i], self.values[i]] for i in range(start, stop)]
        total = len(self.values)
        return orjson.dumps({"field": self.field, "total": total, "next": stop, "arrivals": pairs})


class NullElasticsearch:
    """Routes parsed requests to canned answers and counts what it was sent."""

    def __init__(self, *, down: bool = False, record_field: str | None = None) -> None:
        self.stats = Stats()
        self.down = down
        self.arrivals = Arrivals(record_field) if record_field else None

    def answer(self, request: Request) -> tuple[int, bytes]:
        """Status and JSON body for ``request``."""
        self.stats.requests += 1
        method, path = request.method, request.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/" and method in ("GET", "HEAD"):
            return 200, INFO
        if path.endswith("/_bulk") and method in ("POST", "PUT"):
            if self.down:
                self.stats.refused_bulk_requests += 1
                return 503, unavailable()
            index = path[1:].split("/", 1)[0] if path != "/_bulk" else None
            query = parse_qs(request.path.partition("?")[2])
            filter_path = query.get("filter_path", [None])[0]
            answer, count = bulk_response(request.body, index, filter_path)
            self.stats.bulk_requests += 1
            self.stats.docs += count
            if self.arrivals is not None:
                self.arrivals.record(request.body, time.time())
            return 200, answer
        if path.startswith("/_index_template/"):
            if method == "PUT":
                return 200, ACKNOWLEDGED
            return 404, not_found(f"index template matching [{path[17:]}]")
        if path.startswith("/_null/"):
            return self._control(method, path, request.path)
        return 404, not_found(f"[{method} {path}]")

    def _control(self, method: str, path: str, full_path: str) -> tuple[int, bytes]:
        """The benchmark's own endpoints under ``/_null/``."""
        if path == "/_null/stats":
            stats = self.stats
            return 200, orjson.dumps(
                {
                    "requests": stats.requests,
                    "bulk_requests": stats.bulk_requests,
                    "docs": stats.docs,
                    "refused_bulk_requests": stats.refused_bulk_requests,
                    "down": self.down,
                    "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
                }
            )
        if path in ("/_null/down", "/_null/up") and method == "POST":
            self.down = path == "/_null/down"
            return 200, ACKNOWLEDGED
        if path == "/_null/arrivals" and method == "GET" and self.arrivals is not None:
            query = parse_qs(full_path.partition("?")[2])
            return 200, self.arrivals.page(int(query.get("from", ["0"])[0]))
        return 404, not_found(f"[{method} {path}]")


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request off the connection, or ``None`` when the client has gone."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    if headers.get("content-encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
    return Request(method, path, headers, body)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (trailers are skipped)."""
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def response_bytes(status: int, body: bytes, head_only: bool) -> bytes:
    """A complete HTTP/1.1 response."""
    headers = (
        b"HTTP/1.1 %d %s\r\n"
        b"X-Elastic-Product: Elasticsearch\r\n"
        b"Content-Type: application/vnd.elasticsearch+json;compatible-with=8\r\n"
        b"Content-Length: %d\r\n\r\n" % (status, REASONS.get(status, b"Unknown"), len(body))
    )
    return headers if head_only else headers + body


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def make_handler(app: NullElasticsearch) -> Handler:
    """The per-connection coroutine for :func:`asyncio.start_server`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_request(reader)) is not None:
                status, body = app.answer(request)
                writer.write(response_bytes(status, body, request.method == "HEAD"))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return handle


async def serve(host: str, port: int, *, down: bool = False, record: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    app = NullElasticsearch(down=down, record_field=record)
    server = await asyncio.start_server(make_handler(app), host, port, limit=MAX_HEADER_BYTES)
    bound = server.sockets[0].getsockname()[1]
    print(f"null-es listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--down", action="store_true", help="start answering bulk with 503")
    parser.add_argument(
        "--record-field",
        default=None,
        metavar="NAME",
        help="record the arrival time of every document with an integer field NAME",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, down=args.down, record=args.record_field))


if __name__ == "__main__":
    main()
