"""The servers a benchmark runs against, and the little HTTP it needs to talk to them.

- ``null``: bench/null_es.py in its own process (its CPU is not the client's);
- ``noida``: a fresh noida-db with its own data dir
  (:class:`logpipe.devservers.noida.NoidaServer`).
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from logpipe.devservers import free_port
from logpipe.devservers.noida import NoidaServer

BENCH = Path(__file__).resolve().parent


class BenchError(RuntimeError):
    """A run did not deliver what it should have; its numbers would mean nothing."""


def request(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One small JSON request on its own connection."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def null_server(
    workdir: Path, port: int | None = None, options: Sequence[str] = ()
) -> Iterator[str]:
    """bench/null_es.py in its own process; yields its URL.

    ``port``: a given port (to bring a server back where a client expects it),
    else a free one; ``options``: more of null_es.py's flags (``--down``,
    ``--record-field NAME``).
    """
    port = port or free_port()
    log = (workdir / "null_es.log").open("ab")
    argv = [sys.executable, str(BENCH / "null_es.py"), "--port", str(port), *options]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError("null_es.py exited at start-up")
        try:
            if request(url, "GET", "/")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"null_es.py did not answer on {url}")


@contextlib.contextmanager
def noida_server(workdir: Path) -> Iterator[str]:
    """A fresh noida-db (its own data dir); yields its URL."""
    with NoidaServer(workdir / "noida") as server:
        yield server.url


def null_stats(url: str) -> dict[str, Any]:
    """The null server's counters (``/_null/stats``)."""
    stats: dict[str, Any] = orjson.loads(request(url, "GET", "/_null/stats")[1])
    return stats


def null_cpu(url: str) -> float:
    """CPU seconds (user + sys) bench/null_es.py has spent since it started."""
    return float(orjson.loads(request(url, "GET", "/_null/stats")[1])["cpu"])


def indexed_total(sink: str, url: str) -> int:
    """How many documents the server holds (null: has received), asked after a run."""
    if sink == "null":
        return int(orjson.loads(request(url, "GET", "/_null/stats")[1])["docs"])
    # Asked once per server: noida-db rebuilds its view of every index it reads,
    # blocking writes. The refresh makes every document visible (noida-db has no
    # periodic refresh).
    request(url, "POST", "/bench-*/_refresh")
    status, data = request(url, "GET", "/bench-*/_count")
    if status != 200:
        raise BenchError(f"_count answered {status}: {data[:300]!r}")
    return int(orjson.loads(data)["count"])
