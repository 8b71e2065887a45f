"""Helpers for integration tests: pipeline files, sample lines, searching the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import Elasticsearch

from logpipe.config import PipelineConfig, load_config
from logpipe.event import Event
from logpipe.health import serve_monitoring
from logpipe.pipeline import Pipeline
from tests.files import file_id_of


@dataclass(frozen=True)
class EsTarget:
    """Where the integration tests index, and the env a pipeline file needs for it."""

    url: str
    env: dict[str, str]


PIPELINE = """
data_dir: {data_dir}
inputs:
  application:
    paths: ["{log_dir}/app*.log"]
    parser: app_json
    dataset: erp.application
  access:
    paths: ["{log_dir}/access*.log"]
    parser: nginx
    dataset: nginx.access
enrich:
  fields:
    service.environment: ${{ENVIRONMENT:-production}}
    cloud.region: ${{REGION:-asia-southeast}}
output:
  elasticsearch:
    hosts: ["${{ES_URL}}"]
    api_key: ${{ES_API_KEY:-}}
    username: ${{ES_USERNAME:-}}
    password: ${{ES_PASSWORD:-}}
    ca_cert: ${{ES_CA_CERT:-}}
    index_prefix: {prefix}
    retry_backoff_max_seconds: 0.5
    batch:
      max_age_seconds: 0.2
"""

ALERTS = """
alerts:
  email:
    to: ["ops-team@example.com"]
    from: logpipe@example.com
    smtp:
      host: 127.0.0.1
      port: {smtp_port}
"""


def write_pipeline(
    tmp_path: Path, log_dir: Path, prefix: str, smtp_port: int | None = None
) -> Path:
    text = PIPELINE.format(data_dir=tmp_path / "data", log_dir=log_dir, prefix=prefix)
    if smtp_port is not None:
        text += ALERTS.format(smtp_port=smtp_port)
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    return path


def load(path: Path, env: dict[str, str]) -> PipelineConfig:
    return load_config(path, env)


def app_line(ts: str, level: str, message: str, **extra: Any) -> str:
    """A line as the reference JSONFormatter writes it."""
    record = {
        "timestamp": ts,
        "level": level,
        "logger": extra.pop("logger", "app.api.production"),
        "message": message,
        "module": "daily_production",
        "function": "record_daily_input",
        "line": 88,
        **extra,
    }
    return json.dumps(record) + "\n"


def access_line(ip: str, when: str, request: str, status: int, size: int = 512) -> str:
    return (
        f'{ip} - - [{when}] "{request}" {status} {size} "-" '
        f'"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"\n'
    )


def es_client(env: dict[str, str]) -> Elasticsearch:
    kwargs: dict[str, Any] = {"request_timeout": 120}
    if env.get("ES_API_KEY"):
        kwargs["api_key"] = env["ES_API_KEY"]
    elif env.get("ES_USERNAME"):
        kwargs["basic_auth"] = (env["ES_USERNAME"], env.get("ES_PASSWORD", ""))
    if env.get("ES_CA_CERT"):
        kwargs["ca_certs"] = env["ES_CA_CERT"]
    return Elasticsearch(env["ES_URL"], **kwargs)


def search(
    client: Elasticsearch, prefix: str, query: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Search every daily index of ``prefix`` (after a refresh)."""
    client.indices.refresh(index=f"{prefix}-*")
    body = client.search(
        index=f"{prefix}-*",
        query=query or {"match_all": {}},
        size=kwargs.pop("size", 1000),
        track_total_hits=True,
        **kwargs,
    )
    return dict(body.body)


def hits(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in result["hits"]["hits"]]


async def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``condition`` on the running loop until it holds (fail after ``timeout`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def file_lines(path: Path, input_name: str | None = None) -> list[Event]:
    """The lines of ``path`` as the tailer reads them (fingerprint, generation 0, offsets)."""
    file_id = file_id_of(path)
    lines, offset = [], 0
    for raw in path.read_bytes().splitlines(keepends=True):
        end = offset + len(raw)
        name = input_name or path.stem
        lines.append(Event(file_id, 0, str(path), offset, end, raw.rstrip(b"\n"), name))
        offset = end
    return lines


def probe(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
    """A monitoring endpoint's JSON answer: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


@contextlib.asynccontextmanager
async def monitored(pipeline: Pipeline, address: str, **options: Any) -> AsyncIterator[Pipeline]:
    """``pipeline`` running as a sidecar, its monitoring endpoint listening on ``address``."""
    stop = asyncio.Event()
    started = asyncio.Event()

    async def run() -> None:
        async with serve_monitoring(pipeline, address, **options):
            started.set()
            await pipeline.run_forever(stop)

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raise what stopped it
    try:
        yield pipeline
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
