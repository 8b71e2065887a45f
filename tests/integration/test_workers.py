"""``workers: N``: the per-line step in worker processes gives what the main process gives.

Real worker processes (spawned, pipes and all); the reference is the same
lines through :class:`LineProcessor` in this process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event
from logpipe.pipeline import Pipeline
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import IndexNamer
from logpipe.workers import EncodePool, WorkerSetup
from logpipe.workers.wire import HEADER
from tests.integration.helpers import (
    EsTarget,
    access_line,
    app_line,
    es_client,
    hits,
    load,
    search,
    write_pipeline,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, UTC)
FIELDS = {"host": {"name": "pod-1"}, "service": {"environment": "production"}}
INPUTS = {
    "application": InputConfig(paths=["/x"], parser="app_json", dataset="erp.application"),
    "access": InputConfig(paths=["/y"], parser="nginx", dataset="nginx.access"),
}
ALERT_LEVELS = frozenset({"error", "critical"})
# A checkpoint's time for one file generation (what its first undated line inherits).
RESUMED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
LEGACY = ("1:2:app", 1)  # a generation an older logpipe was reading: blake2b ids


def resume_time(file_id: str, generation: int) -> datetime | None:
    return RESUMED if (file_id, generation) == ("1:2:app", 2) else None


def legacy_ids(file_id: str, generation: int) -> bool:
    return (file_id, generation) == LEGACY


def local(name: str) -> LineProcessor:
    return LineProcessor(
        INPUTS[name],
        Enricher(FIELDS),
        IndexNamer("erp-logs"),
        resume_time,
        ALERT_LEVELS,
        legacy_ids,
    )


def app_chunks() -> list[list[Event]]:
    """Application lines in three chunks, each edge case the per-line step has."""
    lines = [
        app_line("2026-11-27T10:00:00", "INFO", "usual", request_id="r1", user_id=7, spk_id="S"),
        app_line("2026-11-27T10:00:01", "ERROR", "boom", exception="Traceback ...\nValueError"),
        "not json at all\n",
        app_line("2026-11-27T10:00:02", "WARNING", "caf\xe9"),
    ]
    raws = [line.rstrip("\n").encode() for line in lines]
    raws.append(
        b'{"level": "INFO", "message": "bad \xff utf-8", "timestamp": "2026-11-27T10:00:03"}'
    )
    first = [_event("1:2:app", 0, n * 1000, raw) for n, raw in enumerate(raws)]
    later = app_line("2026-11-27T11:30:00", "INFO", "later").rstrip("\n").encode()
    # Chunk 2 starts with an undated line: it inherits chunk 1's last time.
    second = [
        _event("1:2:app", 0, 9000, b"stray print"),
        _event("1:2:app", 0, 9100, b'{"level": "INFO", "mess', truncated=True),
        _event("1:2:app", 0, 9150, later),  # chunk 3's undated line inherits this time
        _event("1:2:app", 1, 0, raws[0]),  # legacy ids
        _event("1:2:app", 2, 0, b"undated first line"),  # inherits the checkpoint's time
        _event("1:2:app", 2, 100, raws[1]),
    ]
    third = [_event("1:2:app", 0, 9200, b"another stray print"), _event("9:9:new", 0, 0, raws[3])]
    return [first, second, third]


def access_chunks() -> list[list[Event]]:
    lines = [
        access_line("10.1.2.3", "27/Nov/2026:06:59:59 +0700", "GET /api/x HTTP/1.1", 200),
        access_line("10.1.2.4", "27/Nov/2026:07:00:01 +0700", "POST /api/y?z=1 HTTP/1.1", 500),
        "garbage that is not an access line\n",
    ]
    raws = [line.rstrip("\n").encode() for line in lines]
    return [[_event("3:4:acc", 0, n * 500, raw, "access") for n, raw in enumerate(raws)]]


def _event(
    file_id: str,
    generation: int,
    offset: int,
    raw: bytes,
    input_name: str = "application",
    truncated: bool = False,
) -> Event:
    path = f"/var/log/{input_name}.log"
    return Event(
        file_id, generation, path, offset, offset + len(raw) + 1, raw, input_name, truncated
    )


def copies(chunks: list[list[Event]]) -> list[list[Event]]:
    return [
        [
            Event(
                e.file_id, e.generation, e.path, e.offset, e.end, e.raw, e.input_name, e.truncated
            )
            for e in chunk
        ]
        for chunk in chunks
    ]


def encoded(events: list[Event]) -> list[tuple[bytes, float | None, Any, int]]:
    return [(e.entry, e.event_time, e.alert, e.size) for e in events]


def reference(name: str, chunks: list[list[Event]]) -> list[tuple[bytes, float | None, Any, int]]:
    processor = local(name)
    out = []
    for chunk in copies(chunks):
        out += encoded(processor.process(chunk, NOW))
    return out


async def through_pool(
    pool: EncodePool,
    name: str,
    chunks: list[list[Event]],
    between: Callable[[int], Awaitable[None]] | None = None,
) -> list[tuple[bytes, float | None, Any, int]]:
    remote = pool.processor(name, local(name))
    out = []
    for number, chunk in enumerate(copies(chunks)):
        if between is not None:
            await between(number)
        lines = deque(chunk)
        events = await remote.process(lines, NOW)
        assert events == chunk  # the same objects, in order
        out += encoded(events)
    return out


def setup() -> WorkerSetup:
    return WorkerSetup(INPUTS, FIELDS, "erp-logs", "UTC", ALERT_LEVELS)


async def started(processes: int) -> EncodePool:
    pool = EncodePool(setup(), processes)
    await pool.start()
    return pool


def app_through_one_worker(
    before: Callable[[EncodePool], Awaitable[None]],
) -> list[tuple[bytes, float | None, Any, int]]:
    """The application chunks through a one-worker pool, after ``before(pool)``."""

    async def main() -> list[tuple[bytes, float | None, Any, int]]:
        pool = await started(1)
        try:
            await before(pool)
            return await through_pool(pool, "application", app_chunks())
        finally:
            await pool.close()

    return asyncio.run(main())


def test_a_worker_encodes_every_line_exactly_as_the_main_process_does() -> None:
    async def main() -> list[Any]:
        pool = await started(1)
        try:
            return [
                await through_pool(pool, "application", app_chunks()),
                await through_pool(pool, "access", access_chunks()),
            ]
        finally:
            await pool.close()

    app, access = asyncio.run(main())
    assert app == reference("application", app_chunks())
    assert access == reference("access", access_chunks())
    # The cases the comparison covers are really there.
    entries = b"".join(entry for entry, *_ in app)
    for tag in (b"_jsonparsefailure", b"_invalid_utf8", b"_line_truncated", b"_timestamp_inferred"):
        assert tag in entries
    assert any(alert is not None for _, _, alert, _ in app)  # the ERROR line's fields
    assert b"2026-11-20T08:00:00" in entries  # the checkpoint's time, asked of the main process


def test_one_input_through_two_workers_keeps_the_time_an_undated_line_inherits() -> None:
    # The chunks of one input take turns between the workers: the time an undated
    # line inherits from the chunk before must come from the main process, not
    # from whatever the worker saw two chunks ago.
    async def main() -> list[Any]:
        pool = await started(2)
        try:
            return await through_pool(pool, "application", app_chunks())
        finally:
            await pool.close()

    app = asyncio.run(main())
    assert app == reference("application", app_chunks())
    assert b'"message":"another stray print"' in app[-2][0]
    assert b'"@timestamp":"2026-11-27T11:30:00' in app[-2][0]


def test_two_workers_take_two_inputs_at_once_and_each_keeps_its_order() -> None:
    async def main() -> list[Any]:
        pool = await started(2)
        try:
            return list(
                await asyncio.gather(
                    through_pool(pool, "application", app_chunks() * 3),
                    through_pool(pool, "access", access_chunks() * 5),
                )
            )
        finally:
            await pool.close()

    app, access = asyncio.run(main())
    assert app == reference("application", app_chunks() * 3)
    assert access == reference("access", access_chunks() * 5)


def test_a_killed_worker_leaves_the_main_process_to_encode_and_loses_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> list[Any]:
        pool = await started(1)

        async def kill_after_first(number: int) -> None:
            if number == 1:
                (worker,) = pool.workers
                os.kill(worker.pid, signal.SIGKILL)
                await asyncio.wait_for(asyncio.shield(worker.answers.exited), 10)

        try:
            return await through_pool(pool, "application", app_chunks(), kill_after_first)
        finally:
            await pool.close()

    with caplog.at_level(logging.ERROR, logger="logpipe.workers"):
        app = asyncio.run(main())
    assert app == reference("application", app_chunks())
    assert [r.message for r in caplog.records] == [
        "a worker process died; the per-line step runs in the main process now"
    ]


def test_a_worker_that_cannot_start_leaves_the_main_process_to_encode(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")

    async def no_workers(pool: EncodePool) -> None:
        assert pool.workers == []

    with caplog.at_level(logging.ERROR, logger="logpipe.workers"):
        app = app_through_one_worker(no_workers)
    assert app == reference("application", app_chunks())
    assert len(caplog.records) == 1
    assert caplog.records[0].message.startswith("cannot start a worker process")


def test_a_worker_whose_stdout_is_not_answers_is_stopped_and_nothing_hangs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def garble(pool: EncodePool) -> None:
        (worker,) = pool.workers
        # As if something in the worker had printed to its stdout.
        worker.answers.pipe_data_received(1, HEADER.pack(5) + b"hello")
        await asyncio.wait_for(asyncio.shield(worker.answers.exited), 10)

    with caplog.at_level(logging.ERROR, logger="logpipe.workers"):
        app = app_through_one_worker(garble)
    assert app == reference("application", app_chunks())
    assert "does not unpickle" in caplog.records[0].message


def test_closing_the_pool_under_a_waiting_chunk_still_encodes_it_and_logs_no_death(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = copies(app_chunks()[:2])

    async def main() -> list[Any]:
        pool = await started(1)
        remote = pool.processor("application", local("application"))
        await remote.process(deque(first), NOW)
        waiting = asyncio.create_task(remote.process(deque(second), NOW))
        while not (pool.workers and pool.workers[0].answers.pending):
            await asyncio.sleep(0)
        await pool.close()  # as at shutdown: the answer may or may not come first
        return encoded(await waiting)

    with caplog.at_level(logging.ERROR, logger="logpipe.workers"):
        found = asyncio.run(main())
    assert found == reference("application", app_chunks()[:2])[len(first) :]
    assert caplog.records == []


def test_a_pipeline_with_workers_indexes_the_same_documents_under_the_same_ids(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    with (log_dir / "app.log").open("w") as fh:
        for n in range(3000):
            level = "ERROR" if n % 97 == 0 else "INFO"
            fh.write(app_line(f"2026-11-27T10:{n // 60 % 60:02d}:{n % 60:02d}", level, f"m{n}"))
            if n % 500 == 0:
                fh.write("a stray print\n")
    with (log_dir / "access.log").open("w") as fh:
        for n in range(2000):
            when = f"27/Nov/2026:17:{n // 60 % 60:02d}:{n % 60:02d} +0700"
            fh.write(access_line(f"10.0.{n % 200}.{n % 250}", when, f"GET /p/{n} HTTP/1.1", 200))

    def indexed(prefix: str, workers: int) -> dict[str, tuple[str, dict[str, Any]]]:
        run_dir = tmp_path / prefix
        run_dir.mkdir()
        path = write_pipeline(run_dir, log_dir, prefix)
        path.write_text(path.read_text() + f"workers: {workers}\n")
        report = asyncio.run(Pipeline(load(path, es_server.env), es_server.env).run_once(120))
        assert report.problems == []
        assert (report.read, report.created) == (5006, 5006)
        found = hits(search(es_client(es_server.env), prefix, size=10000))
        docs: dict[str, tuple[str, dict[str, Any]]] = {}
        for hit in found:
            source = hit["_source"]
            del source["event"]["ingested"]  # the time of the run
            docs[hit["_id"]] = (hit["_index"].removeprefix(prefix), source)
        return docs

    inline = indexed(f"{index_prefix}-inline", 0)
    workers = indexed(f"{index_prefix}-workers", 2)
    assert len(workers) == 5006
    assert workers == inline
