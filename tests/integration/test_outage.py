"""Elasticsearch down: the readers wait inside the memory budget; when it comes back,
everything is delivered exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from logpipe.devservers.noida import NoidaServer
from logpipe.pipeline import Pipeline
from tests.integration.helpers import (
    app_line,
    es_client,
    load,
    search,
    wait_until,
    write_pipeline,
)

pytestmark = pytest.mark.integration

QUEUE = "\nqueue:\n  max_events: 100\n"


def append_lines(log: Path, start: int, count: int) -> None:
    with log.open("a") as fh:
        for i in range(start, start + count):
            fh.write(app_line(f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}", "INFO", f"n{i}"))


async def test_reader_waits_within_budget_while_elasticsearch_is_down_then_delivers_all_once(
    tmp_path: Path, log_dir: Path, index_prefix: str
) -> None:
    log = log_dir / "app.log"
    append_lines(log, 0, 100)
    server = NoidaServer(tmp_path / "noida")
    await asyncio.to_thread(server.start)
    path = write_pipeline(tmp_path, log_dir, index_prefix)
    path.write_text(
        path.read_text().replace(
            "max_age_seconds: 0.2", "max_age_seconds: 0.2\n      max_events: 50"
        )
        + QUEUE
    )
    pipeline = Pipeline(load(path, {"ES_URL": server.url}), {})
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run_forever(stop))
    try:
        await wait_until(lambda: pipeline.sink.stats.created == 100)
        await asyncio.to_thread(server.stop)

        append_lines(log, 100, 3000)
        await asyncio.sleep(2.0)
        # Elasticsearch is down: the reader stopped at the budget (100 events), which
        # covers the batch the sink holds while it retries as well as the queue.
        assert pipeline.read - 100 <= 100
        assert pipeline.queue.held <= 100

        await asyncio.to_thread(server.start)
        await wait_until(lambda: pipeline.sink.stats.created == 3100)
        stop.set()
        report = await asyncio.wait_for(task, 30)
        assert (report.read, report.created, report.duplicates) == (3100, 3100, 0)
        client = es_client({"ES_URL": server.url})
        result = await asyncio.to_thread(search, client, index_prefix, None, size=0)
        assert result["hits"]["total"]["value"] == 3100
    finally:
        stop.set()
        await asyncio.to_thread(server.stop)


async def test_stop_while_elasticsearch_is_down_and_queue_full_exits_in_time_losing_nothing(
    tmp_path: Path, log_dir: Path, index_prefix: str
) -> None:
    log = log_dir / "app.log"
    append_lines(log, 0, 100)
    server = NoidaServer(tmp_path / "noida")
    await asyncio.to_thread(server.start)
    path = write_pipeline(tmp_path, log_dir, index_prefix)
    path.write_text(path.read_text() + QUEUE)
    try:
        pipeline = Pipeline(load(path, {"ES_URL": server.url}), {})
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run_forever(stop))
        await wait_until(lambda: pipeline.sink.stats.created == 100)
        await asyncio.to_thread(server.stop)
        append_lines(log, 100, 3000)
        await wait_until(lambda: pipeline.queue.held == 100)  # budget full, reader blocked

        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        stop.set()
        report = await asyncio.wait_for(task, 30)
        assert loop.time() - stopped_at < 10
        assert report.problems and "re-read" in report.problems[0]

        await asyncio.to_thread(server.start)
        rest = await Pipeline(load(path, {"ES_URL": server.url}), {}).run_once(timeout=60)
        assert (rest.created, rest.problems) == (3000, [])
        client = es_client({"ES_URL": server.url})
        result = await asyncio.to_thread(search, client, index_prefix, None, size=0)
        assert result["hits"]["total"]["value"] == 3100
    finally:
        await asyncio.to_thread(server.stop)
