"""logpipe's own HTTP endpoint: ``/metrics`` and the Kubernetes probes.

- ``/health/live``: the event loop is alive and not stuck. A heartbeat task
  ticks every second; a loop blocked for longer than ``STUCK_SECONDS`` answers
  503 once it runs again, and a loop blocked for good does not answer at all
  (the probe's timeout). Nothing else fails liveness: an Elasticsearch outage
  is waited out, not cured by a restart.
- ``/health/ready``: Elasticsearch reachable (the last request got an
  answer), the index template in place, every input's files readable.
- ``/health``: both, with details (queue, sink, files), always 200 unless
  not alive; ``status`` says ``ok`` or ``degraded``.

The shape follows the monitoring strategy's section 8: ``{"status": ...,
"checks": {...}}``. Served with aiohttp (already installed for the
Elasticsearch client) on the pipeline's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from logpipe.errors import LogpipeError
from logpipe.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from logpipe.pipeline import Pipeline

log = logging.getLogger("logpipe.health")

STUCK_SECONDS = 10.0
_BEAT_SECONDS = 1.0


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

    def live(self) -> tuple[bool, dict[str, Any]]:
        stalled = time.monotonic() - self._beat
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


def _json(ok: bool, body: dict[str, Any]) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=200 if ok else 503, content_type="application/json"
    )


def make_app(pipeline: Pipeline, health: Health) -> web.Application:
    metrics = Metrics(pipeline)

    async def get_metrics(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def get_live(_: web.Request) -> web.Response:
        return _json(*health.live())

    async def get_ready(_: web.Request) -> web.Response:
        return _json(*health.ready())

    async def get_health(_: web.Request) -> web.Response:
        return _json(*health.detail())

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health/live", get_live)
    app.router.add_get("/health/ready", get_ready)
    app.router.add_get("/health", get_health)
    return app


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def serve_monitoring(pipeline: Pipeline, address: str) -> AsyncIterator[None]:
    """Serve ``/metrics`` and ``/health*`` on ``address`` while the block runs."""
    health = Health(pipeline)
    runner = web.AppRunner(make_app(pipeline, health), access_log=None, handle_signals=False)
    await runner.setup()
    host, port = split_address(address)
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise MonitoringError(
            f"monitoring.address {address}: cannot listen: {exc.strerror or exc}"
        ) from None
    log.info("monitoring_listening", extra={"address": address})
    beat = asyncio.create_task(health.heartbeat())
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await runner.cleanup()
