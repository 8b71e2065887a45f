"""The monitoring endpoint's HTTP server, over real sockets, with a running pipeline:
what it answers to odd requests, a blocked event loop, a taken address, IPv6."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from logpipe import health
from logpipe.health import MonitoringError, serve_monitoring
from logpipe.pipeline import Pipeline
from tests.integration.helpers import EsTarget, load, monitored, probe, write_pipeline

pytestmark = pytest.mark.integration


def free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw ``request``; the status, headers and body, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, log_dir: Path, es: EsTarget, prefix: str, address: str, **options: Any
) -> AsyncIterator[Pipeline]:
    """A sidecar pipeline running with its monitoring endpoint on ``address``."""
    pipeline = Pipeline(load(write_pipeline(tmp_path, log_dir, prefix), es.env), {})
    async with monitored(pipeline, address, **options):
        yield pipeline


async def test_answers_unknown_paths_404_other_methods_405_and_head_without_a_body(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    async with serving(tmp_path, log_dir, es_server, index_prefix, f"127.0.0.1:{port}"):

        def ask(request: bytes) -> tuple[int, dict[str, str], bytes]:
            return exchange(port, request)

        status, _, _ = await asyncio.to_thread(ask, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 404
        post = b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        status, headers, _ = await asyncio.to_thread(ask, post)
        assert (status, headers["allow"]) == (405, "GET, HEAD")
        status, _, _ = await asyncio.to_thread(ask, b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 405  # not BaseHTTPRequestHandler's 501

        status, headers, body = await asyncio.to_thread(
            ask, b"GET /health/live?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (status, headers["content-type"]) == (200, "application/json")
        assert int(headers["content-length"]) == len(body)
        assert orjson.loads(body)["status"] == "alive"

        status, headers, body = await asyncio.to_thread(
            ask, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (status, body) == (200, b"")
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) > 0


@pytest.mark.parametrize("path", ["/health/live", "/health", "/health/ready", "/metrics"])
async def test_answers_503_stuck_while_the_event_loop_is_blocked_then_recovers(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str, path: str
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    address = f"127.0.0.1:{port}"
    async with serving(tmp_path, log_dir, es_server, index_prefix, address, answer_seconds=0.5):
        await asyncio.sleep(0.1)  # the heartbeat has ticked
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        with ThreadPoolExecutor(1) as pool:
            # Waiting on the probe here, synchronously, blocks the event loop for
            # as long as the probe takes: the server must answer without it.
            status, headers, body = pool.submit(exchange, port, request).result(timeout=10)
        assert status == 503
        if path == "/metrics":
            assert body.startswith(b"event loop stuck for ")
        else:
            stuck = orjson.loads(body)
            assert stuck["status"] == "stuck"
            assert stuck["event_loop_stalled_seconds"] >= 0.4
        assert int(headers["content-length"]) == len(body)
        # The loop runs again: the given-up request is dropped, the next one answered.
        status, _, _ = await asyncio.to_thread(exchange, port, request)
        assert status in ((200, 503) if path == "/health/ready" else (200,))


async def test_refuses_to_start_on_an_address_already_in_use(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    pipeline = Pipeline(load(write_pipeline(tmp_path, log_dir, index_prefix), es_server.env), {})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(MonitoringError, match=f"monitoring.address {address}: cannot listen"):
            async with serve_monitoring(pipeline, address):
                pytest.fail("served on a taken address")


def _has_ipv6_loopback() -> bool:
    try:
        free_port(socket.AF_INET6, "::1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_serves_on_ipv6_loopback(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    port = free_port(socket.AF_INET6, "::1")
    async with serving(tmp_path, log_dir, es_server, index_prefix, f"[::1]:{port}"):
        status, live = await asyncio.to_thread(probe, port, "/health/live", "[::1]")
    assert (status, live["status"]) == (200, "alive")


async def test_closes_connections_beyond_its_thread_budget_until_slow_clients_go(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serving(tmp_path, log_dir, es_server, index_prefix, f"127.0.0.1:{port}"):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(health._MAX_REQUESTS)]
        try:
            # Accepted after the idle ones, so it finds every thread slot taken.
            with pytest.raises((IndexError, ValueError, ConnectionError)):
                await asyncio.to_thread(exchange, port, request)  # closed, no status line
        finally:
            for conn in idle:
                conn.close()
        status = 0
        for _ in range(100):  # the idle clients' threads see them go
            with contextlib.suppress(IndexError, ValueError, ConnectionError):
                status, _, _ = await asyncio.to_thread(exchange, port, request)
                break
            await asyncio.sleep(0.05)
        assert status == 200
