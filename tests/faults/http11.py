"""Just enough HTTP/1.1 for the fault proxy, plus the pure surgery on bulk bodies.

Messages are read whole: a ``Content-Length`` body (what the official client
sends) or a chunked one (decoded); a response without either is read to the
close. Messages are written back with a ``Content-Length``. ``Expect:
100-continue`` is refused rather than half-supported.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding", "te"}
)
_REASONS = {200: "OK", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}


class ProxyProtocolError(Exception):
    """The peer sent something this small proxy does not handle."""


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    @property
    def is_bulk(self) -> bool:
        path = urlsplit(self.target).path
        return path.rstrip("/").endswith("/_bulk")


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


# -- HTTP/1.1 framing -------------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> list[str] | None:
    """The start line and header lines, or None on a clean EOF before a message."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise ProxyProtocolError("header section too large") from None
    return raw.decode("latin-1").split("\r\n")[:-2]


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProxyProtocolError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return headers


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    lowered = {k.lower(): v for k, v in headers}
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = lowered.get("content-length")
    if length is None:
        return b""
    return await reader.readexactly(int(length))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            # Trailers (usually none) up to the empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    lines = await _read_head(reader)
    if lines is None:
        return None
    method, target, version = lines[0].split(" ", 2)
    headers = _parse_headers(lines[1:])
    if any(k.lower() == "expect" for k, _ in headers):
        raise ProxyProtocolError("Expect: 100-continue is not supported")
    body = await _read_body(reader, headers)
    return Request(method, target, version, headers, body)


async def write_request(writer: asyncio.StreamWriter, request: Request) -> None:
    head = [f"{request.method} {request.target} HTTP/1.1"]
    head += [f"{k}: {v}" for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
    if request.body or request.method in ("POST", "PUT"):
        head.append(f"Content-Length: {len(request.body)}")
    head.append("Connection: keep-alive")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
    await writer.drain()


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
    """The upstream's answer, its body decoded, and whether the connection is reusable."""
    lines = await _read_head(reader)
    if lines is None:
        raise ConnectionResetError("upstream closed before answering")
    _, code, *reason = lines[0].split(" ", 2)
    status = int(code)
    headers = _parse_headers(lines[1:])
    lowered = {k.lower(): v for k, v in headers}
    reusable = lowered.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in lowered or "chunked" in lowered.get("transfer-encoding", ""):
        body = await _read_body(reader, headers)
    else:
        body = await reader.read()  # delimited by the close
        reusable = False
    return Response(status, reason[0] if reason else "", headers, body), reusable


async def write_response(writer: asyncio.StreamWriter, response: Response) -> None:
    head = [f"HTTP/1.1 {response.status} {response.reason or _REASONS.get(response.status, '')}"]
    head += [f"{k}: {v}" for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
    head.append(f"Content-Length: {len(response.body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()


def error_response(status: int) -> Response:
    kind = "es_rejected_execution_exception" if status == 429 else "unavailable_shards_exception"
    error = {"type": kind, "reason": f"injected by the fault proxy ({status})"}
    body = json.dumps({"error": {**error, "root_cause": [error]}, "status": status})
    headers = [("content-type", "application/json"), ("x-elastic-product", "Elasticsearch")]
    return Response(status, _REASONS.get(status, "Error"), headers, body.encode())


# -- bulk bodies (pure) -------------------------------------------------------------------


def split_bulk(body: bytes) -> list[bytes]:
    """Split an NDJSON bulk body into items: action line plus source line (none for delete)."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    items: list[bytes] = []
    i = 0
    while i < len(lines):
        action = json.loads(lines[i])
        if "delete" in action:
            items.append(lines[i] + b"\n")
            i += 1
        else:
            items.append(lines[i] + b"\n" + lines[i + 1] + b"\n")
            i += 2
    return items


def splice_rejections(answered: dict[str, Any], items: list[bytes], rejected: list[bool]) -> bytes:
    """The server's answer for the kept items, with a 429 item at each rejected position."""
    upstream_items = iter(answered.get("items", []))
    merged: list[dict[str, Any]] = []
    for item, no in zip(items, rejected, strict=True):
        if not no:
            merged.append(next(upstream_items))
            continue
        action = json.loads(item.split(b"\n", 1)[0])
        op, meta = next(iter(action.items()))
        merged.append(
            {
                op: {
                    "_index": meta.get("_index"),
                    "_id": meta.get("_id"),
                    "status": 429,
                    "error": {
                        "type": "es_rejected_execution_exception",
                        "reason": "rejected execution (injected by the fault proxy)",
                    },
                }
            }
        )
    errors = bool(answered.get("errors")) or any(rejected)
    return json.dumps({"took": answered.get("took", 0), "errors": errors, "items": merged}).encode()
