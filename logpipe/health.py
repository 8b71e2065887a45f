"""logpipe's own HTTP endpoint: ``/metrics`` and the Kubernetes probes.

- ``/health/live``: the event loop is alive and not stuck. A heartbeat task
  ticks every second; a loop blocked for longer than ``STUCK_SECONDS`` answers
  503 once it runs again, and a loop that does not answer within
  ``ANSWER_SECONDS`` gets a 503 ``{"status": "stuck"}`` from the server thread
  (below the probe's own timeout, so the kubelet sees why). Nothing else fails
  liveness: an Elasticsearch outage is waited out, not cured by a restart.
- ``/health/ready``: Elasticsearch reachable (the last request got an
  answer), the index template in place, every input's files readable.
- ``/health``: both, with details (queue, sink, files), always 200 unless
  not alive; ``status`` says ``ok`` or ``degraded``.

The shape follows the monitoring strategy's section 8: ``{"status": ...,
"checks": {...}}``.

Served by the standard library's ``ThreadingHTTPServer`` in a daemon thread:
it is already loaded (prometheus_client imports it), where aiohttp's server
loaded aiohttp (8-10 MiB of RSS, with the client's async transport). The
server threads never read pipeline state: each request hands its route to
the event loop, which owns that state, and waits for the answer. Only the
heartbeat's timestamp (one float) is read across threads, to say how long a
stuck loop has been stuck.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.server
import logging
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from logpipe.errors import LogpipeError
from logpipe.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from logpipe.pipeline import Pipeline

log = logging.getLogger("logpipe.health")

STUCK_SECONDS = 10.0
# How long a request waits for the event loop: under the liveness probe's
# timeoutSeconds (5 in deploy/kubernetes), so the kubelet gets our 503 and its reason.
ANSWER_SECONDS = 3.0
_BEAT_SECONDS = 1.0
_POLL_SECONDS = 0.5  # serve_forever's wake-ups: the idle cost, and how long shutdown takes
_CLIENT_SECONDS = 10.0  # a client slower than this between reads is dropped
_MAX_REQUESTS = 16  # served at once; more connections are closed, not given threads
_MAX_DISCARD = 64 << 10  # a refused request's body we read, so closing does not reset
_TEXT = "text/plain; charset=utf-8"

Answer = tuple[int, str, bytes]  # status, Content-Type, body


class MonitoringError(LogpipeError):
    """The monitoring endpoint could not be served (address in use, bad host)."""


class Health:
    """The probes' answers for one pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._beat = time.monotonic()

    async def heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(_BEAT_SECONDS)

    def stalled(self) -> float:
        """Seconds since the heartbeat last ticked; safe to call from any thread."""
        return time.monotonic() - self._beat

    def live(self) -> tuple[bool, dict[str, Any]]:
        stalled = self.stalled()
        alive = stalled < STUCK_SECONDS
        return alive, {
            "status": "alive" if alive else "stuck",
            "event_loop_stalled_seconds": round(stalled, 3),
        }

    def ready(self) -> tuple[bool, dict[str, Any]]:
        pipeline = self._pipeline
        sink = pipeline.sink
        checks: dict[str, str] = {}
        down_for = sink.unreachable_for()
        if not sink.connected:
            checks["elasticsearch"] = f"not connected yet: {sink.last_error or 'connecting'}"
        elif down_for is not None:
            checks["elasticsearch"] = f"unreachable for {down_for:.0f} s: {sink.last_error}"
        else:
            checks["elasticsearch"] = "ok"
        if not pipeline.config.output.elasticsearch.install_template:
            checks["template"] = "not managed by logpipe"
        else:
            checks["template"] = "ok" if sink.connected else "not checked yet"
        unreadable = [path for tailer in pipeline.tailers for path in tailer.unreadable()]
        checks["inputs"] = "ok" if not unreadable else f"cannot open: {', '.join(unreadable)}"
        ready = all(v in ("ok", "not managed by logpipe") for v in checks.values())
        return ready, {"status": "ready" if ready else "not_ready", "checks": checks}

    def detail(self) -> tuple[bool, dict[str, Any]]:
        alive, live = self.live()
        ready, readiness = self.ready()
        pipeline = self._pipeline
        stats = pipeline.sink.stats
        queue = pipeline.queue
        return alive, {
            "status": "ok" if alive and ready else "degraded",
            "timestamp": time.time(),
            "checks": {**readiness["checks"], "event_loop": live["status"]},
            "queue": {
                "events": queue.held,
                "bytes": queue.bytes,
                "max_events": pipeline.config.queue.max_events,
                "max_bytes": pipeline.config.queue.max_bytes,
            },
            "elasticsearch": {
                "hosts": pipeline.config.output.elasticsearch.hosts,
                "created": stats.created,
                "duplicates": stats.duplicates,
                "dead_lettered": stats.dead_lettered,
                "failed_requests": stats.failed_requests,
                "last_error": pipeline.sink.last_error,
            },
            "inputs": {
                name: {"events": s.events, "bytes": s.bytes}
                for name, s in pipeline.input_stats.items()
            },
        }


def _json(ok: bool, body: dict[str, Any]) -> Answer:
    return 200 if ok else 503, "application/json", orjson.dumps(body)


def make_routes(pipeline: Pipeline, health: Health) -> dict[str, Callable[[], Answer]]:
    """Each path's answer, to be computed on the event loop that runs ``pipeline``."""
    metrics = Metrics(pipeline)
    return {
        "/metrics": lambda: (200, CONTENT_TYPE, metrics.exposition()),
        "/health/live": lambda: _json(*health.live()),
        "/health/ready": lambda: _json(*health.ready()),
        "/health": lambda: _json(*health.detail()),
    }


class _Server(http.server.ThreadingHTTPServer):
    """Answers each request from the event loop, or 503 if the loop does not answer."""

    daemon_threads = True  # a request stuck on a dead loop must not hold up exit

    def __init__(
        self,
        address: tuple[str, int],
        routes: dict[str, Callable[[], Answer]],
        health: Health,
        loop: asyncio.AbstractEventLoop,
        answer_seconds: float,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.routes = routes
        self.health = health
        self.loop = loop
        self.answer_seconds = answer_seconds
        self._slots = threading.BoundedSemaphore(_MAX_REQUESTS)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks up the host's FQDN, a reverse DNS query that can
        # hang for seconds where DNS is broken; the name is only used by CGI.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def answer(self, path: str) -> Answer:
        route = self.routes.get(path)
        if route is None:
            return 404, _TEXT, b"not found\n"
        future: concurrent.futures.Future[Answer] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():  # False: the request gave up
                try:
                    future.set_result(route())
                except Exception as exc:  # raised again in the request thread
                    future.set_exception(exc)

        try:
            self.loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed: logpipe is stopping
            return 503, _TEXT, b"stopping\n"
        try:
            return future.result(timeout=self.answer_seconds)
        except TimeoutError:
            future.cancel()
            return self._stuck(path)
        except Exception:
            # A bug in a route: answer 500 like any web server and keep serving.
            log.exception("monitoring_request_failed", extra={"path": path})
            return 500, _TEXT, b"internal error\n"

    def _stuck(self, path: str) -> Answer:
        stalled = round(self.health.stalled(), 3)
        log.warning("event_loop_stuck", extra={"path": path, "stalled_seconds": stalled})
        if path == "/metrics":
            return 503, _TEXT, f"event loop stuck for {stalled} s\n".encode()
        return _json(False, {"status": "stuck", "event_loop_stalled_seconds": stalled})

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("monitoring_request_refused", extra={"reason": "too many at once"})
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer; socketserver would print a traceback.
        log.debug("monitoring_connection_failed", exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "logpipe"
    sys_version = ""
    timeout = _CLIENT_SECONDS

    def parse_request(self) -> bool:
        # Every method but GET and HEAD gets a 405 here, where BaseHTTPRequestHandler
        # would answer 501 for any method it has no do_* for.
        if not super().parse_request():
            return False
        if self.command in ("GET", "HEAD"):
            return True
        self._discard_body()
        self._send((405, _TEXT, b"method not allowed\n"), allow="GET, HEAD")
        return False

    def do_GET(self) -> None:
        self._send(self.server.answer(urlsplit(self.path).path))

    do_HEAD = do_GET  # _send leaves the body out

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if 0 < length <= _MAX_DISCARD:
            self.rfile.read(length)

    def _send(self, answer: Answer, allow: str | None = None) -> None:
        status, content_type, body = answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow is not None:
            self.send_header("Allow", allow)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # no access log: probes and scrapes would flood it

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("monitoring_request_failed", extra={"reason": format % args})


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _stop(server: _Server, thread: threading.Thread) -> None:
    server.shutdown()  # returns once serve_forever has: within _POLL_SECONDS
    server.server_close()
    thread.join()


@contextlib.asynccontextmanager
async def serve_monitoring(
    pipeline: Pipeline, address: str, *, answer_seconds: float = ANSWER_SECONDS
) -> AsyncIterator[None]:
    """Serve ``/metrics`` and ``/health*`` on ``address`` while the block runs.

    ``answer_seconds`` is how long a request waits for the event loop before
    it answers 503 "stuck".
    """
    health = Health(pipeline)
    host, port = split_address(address)
    loop = asyncio.get_running_loop()
    try:
        server = _Server((host, port), make_routes(pipeline, health), health, loop, answer_seconds)
    except (OSError, OverflowError) as exc:  # OverflowError: a port over 65535
        reason = getattr(exc, "strerror", None) or exc
        raise MonitoringError(f"monitoring.address {address}: cannot listen: {reason}") from None
    thread = threading.Thread(
        target=server.serve_forever, args=(_POLL_SECONDS,), name="logpipe-monitoring", daemon=True
    )
    thread.start()
    log.info("monitoring_listening", extra={"address": address})
    beat = asyncio.create_task(health.heartbeat())
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await asyncio.to_thread(_stop, server, thread)
