"""The plain-Python ceiling: the same job as ``logpipe run --once``, minus everything else.

    python bench/baseline.py --app application.log --access access.log \\
        --url http://127.0.0.1:9200 --prefix bench-base

reads both files, parses each line (orjson for the application's JSON, one
compiled regex for nginx ``combined``) into roughly the ECS fields logpipe
writes, adds the same static enrichment, encodes with orjson and POSTs bulk
bodies of ``--batch`` documents with one keep-alive ``http.client`` connection.

What it leaves out, on purpose: checkpoints, retries, per-item classification
beyond counting, document ids (``index`` actions with server-made ids), the
timezone-aware index naming, dead letters, alerts, and logpipe's edge cases
(forwarded-for lists, escapes, lenient JSON, IPv6 checks). The difference
between the two is what logpipe's safety and generality cost.

One sender thread overlaps the HTTP round trip with parsing the next batch
(``http.client`` releases the GIL while it waits), much as logpipe's tailers
keep parsing while a bulk request is in flight.

Prints one JSON line: ``{"docs": ..., "created": ..., "requests": ...}``.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import queue
import re
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

STATIC = {
    "agent": {"name": "logpipe-baseline", "type": "logpipe", "version": "0"},
    "host": {"name": socket.gethostname()},
    "service": {"environment": "production"},
    "cloud": {"region": "asia-southeast"},
}
_KNOWN = frozenset(
    {"timestamp", "level", "logger", "message", "module", "function", "line", "exception"}
    | {"request_id", "user_id"}
)
_COMBINED = re.compile(
    r'(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+)(?: HTTP/([\d.]+))?" (\d{3}) (\d+|-)'
    r' "([^"]*)" "([^"]*)"'
)
_TIMES: dict[str, tuple[str, str]] = {}

Doc = tuple[str, dict[str, Any]]  # (index, document)


def app_doc(raw: bytes, prefix: str) -> Doc:
    """One application JSON line to (index, ECS document)."""
    obj = orjson.loads(raw)
    ts = obj.pop("timestamp")
    log = {
        "level": obj.pop("level").lower(),
        "logger": obj.pop("logger"),
        "origin": {"function": obj.pop("function"), "file": {"line": obj.pop("line")}},
    }
    doc: dict[str, Any] = {"@timestamp": ts + "Z", "log": log, "message": obj.pop("message")}
    trace = obj.pop("exception", None)
    if trace is not None:
        error_type, _, error_message = trace.rstrip().rpartition("\n")[2].partition(": ")
        doc["error"] = {"stack_trace": trace, "type": error_type, "message": error_message}
    request_id = obj.pop("request_id", None)
    if request_id is not None:
        doc["http"] = {"request": {"id": request_id}}
    user_id = obj.pop("user_id", None)
    if user_id is not None:
        doc["user"] = {"id": str(user_id)}
    doc["app"] = obj  # module and the app's extra fields
    return f"{prefix}-{ts[:4]}.{ts[5:7]}.{ts[8:10]}", doc


def _utc(time_local: str) -> tuple[str, str]:
    """nginx ``$time_local`` to (``@timestamp`` text, ``YYYY.MM.dd``), cached per second."""
    found = _TIMES.get(time_local)
    if found is None:
        instant = datetime.strptime(time_local, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
        found = (instant.strftime("%Y-%m-%dT%H:%M:%SZ"), instant.strftime("%Y.%m.%d"))
        if len(_TIMES) > 4096:
            _TIMES.clear()
        _TIMES[time_local] = found
    return found


def access_doc(raw: bytes, prefix: str) -> Doc | None:
    """One nginx ``combined`` line to (index, ECS document); ``None`` if it does not match."""
    text = raw.decode("utf-8", "replace")
    match = _COMBINED.match(text)
    if match is None:
        return None
    addr, user, time_local, method, target, version, status, size, referrer, agent = match.groups()
    stamp, day = _utc(time_local)
    path, _, query = target.partition("?")
    url = {"original": target, "path": path}
    if query:
        url["query"] = query
    request: dict[str, Any] = {"method": method}
    if referrer != "-":
        request["referrer"] = referrer
    response: dict[str, Any] = {"status_code": int(status)}
    if size != "-":
        response["body"] = {"bytes": int(size)}
    doc: dict[str, Any] = {
        "@timestamp": stamp, "message": text, "source": {"address": addr, "ip": addr},
        "url": url, "http": {"request": request, "response": response, "version": version},
        "user_agent": {"original": agent},
    }  # fmt: skip
    if user != "-":
        doc["user"] = {"name": user}
    return f"{prefix}-{day}", doc


def documents(path: Path, kind: str, prefix: str) -> Iterator[Doc]:
    """Every line of ``path`` as a document with the source and static fields added."""
    dataset = "erp.application" if kind == "app" else "nginx.access"
    parse = app_doc if kind == "app" else access_doc
    file_field = {"path": str(path)}
    offset = 0
    with path.open("rb") as lines:
        for raw in lines:
            line = raw.rstrip(b"\n")
            try:
                parsed = parse(line, prefix)
            except (orjson.JSONDecodeError, KeyError, AttributeError, ValueError):
                parsed = None
            if parsed is None:
                text = line.decode("utf-8", "replace")
                parsed = (f"{prefix}-unparsed", {"message": text, "tags": ["_parsefailure"]})
            index, doc = parsed
            doc.setdefault("log", {}).update(file=file_field, offset=offset)
            doc["event"] = {"dataset": dataset}
            doc.update(STATIC)
            offset += len(raw)
            yield index, doc


def bulk_bodies(docs: Iterator[Doc], batch: int) -> Iterator[tuple[bytes, int]]:
    """NDJSON bulk bodies of up to ``batch`` documents, with their document counts."""
    actions: dict[str, bytes] = {}
    parts: list[bytes] = []
    count = 0
    ingested = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for index, doc in docs:
        action = actions.get(index)
        if action is None:
            action = actions[index] = orjson.dumps({"index": {"_index": index}}) + b"\n"
        doc["event"]["ingested"] = ingested
        parts += (action, orjson.dumps(doc), b"\n")
        count += 1
        if count == batch:
            yield b"".join(parts), count
            ingested = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            parts, count = [], 0
    if count:
        yield b"".join(parts), count


class BulkPoster:
    """POSTs bulk bodies over one keep-alive connection and counts created items."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 9200
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.created = 0
        self.requests = 0

    def post(self, body: bytes) -> None:
        """Send one body; raise ``RuntimeError`` on an HTTP error status."""
        headers = {"Content-Type": "application/x-ndjson"}
        self._conn.request("POST", "/_bulk", body, headers)
        response = self._conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"bulk answered {response.status}: {data[:300]!r}")
        items = orjson.loads(data)["items"]
        self.created += sum(1 for item in items if item["index"]["status"] in (200, 201))
        self.requests += 1

    def close(self) -> None:
        self._conn.close()


def ship(bodies: Iterator[tuple[bytes, int]], poster: BulkPoster) -> int:
    """Post every body from a sender thread while the caller's thread builds the next."""
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def send() -> None:
        while (body := pending.get()) is not None:
            if not failure:
                try:
                    poster.post(body)
                except (OSError, RuntimeError, http.client.HTTPException) as exc:
                    failure.append(exc)

    sender = threading.Thread(target=send, name="bulk-sender")
    sender.start()
    docs = 0
    try:
        for body, count in bodies:
            if failure:
                break
            pending.put(body)
            docs += count
    finally:
        pending.put(None)
        sender.join()
    if failure:
        raise failure[0]
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description="Plain-Python ingest ceiling for logpipe.")
    parser.add_argument("--app", type=Path, required=True, help="application JSON log")
    parser.add_argument("--access", type=Path, required=True, help="nginx combined log")
    parser.add_argument("--url", required=True, help="Elasticsearch base URL (http only)")
    parser.add_argument("--prefix", default="bench-baseline", help="index name prefix")
    parser.add_argument("--batch", type=int, default=2000, help="documents per bulk request")
    args = parser.parse_args()
    docs = itertools.chain(
        documents(args.app, "app", args.prefix), documents(args.access, "access", args.prefix)
    )
    poster = BulkPoster(args.url)
    try:
        sent = ship(bulk_bodies(docs, args.batch), poster)
    finally:
        poster.close()
    result = {"docs": sent, "created": poster.created, "requests": poster.requests}
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
