"""The hand-over from a tailer to the queue: a chunk of lines at a time."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import pytest

from logpipe.config import PipelineConfig
from logpipe.event import Event
from logpipe.pipeline import Pipeline

DATED = b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "m%d"}'


def make_pipeline(tmp_path: Path, max_events: int) -> Pipeline:
    config = PipelineConfig.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": {
                "app": {
                    "paths": [str(tmp_path / "*.log")],
                    "parser": "app_json",
                    "dataset": "erp.application",
                }
            },
            "output": {"elasticsearch": {"hosts": ["http://127.0.0.1:9"]}},
            "queue": {"max_events": max_events},
        }
    )
    return Pipeline(config, env={})


def lines(count: int) -> deque[Event]:
    return deque(
        Event("1:2:ab", 0, "/var/log/app.log", 100 * i, 100 * i + 99, DATED % i, "app")
        for i in range(count)
    )


async def test_a_chunk_is_queued_whole_and_its_raw_bytes_let_go(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, max_events=10)
    emit = pipeline.tailers[0]._settings.emit
    chunk = lines(4)
    kept = list(chunk)
    await emit(chunk)
    assert not chunk and len(pipeline.queue) == 4 and pipeline.read == 4
    assert all(line.raw == b"" for line in kept)  # the events carry the documents
    batch = await pipeline.queue.get_batch(10, 1 << 20, 0.0)
    assert [event.document()["message"] for event in batch] == ["m0", "m1", "m2", "m3"]


async def test_cancelled_emit_leaves_the_lines_not_queued_whole_with_the_tailer(
    tmp_path: Path,
) -> None:
    pipeline = make_pipeline(tmp_path, max_events=2)
    emit = pipeline.tailers[0]._settings.emit
    chunk = lines(5)
    task = asyncio.create_task(emit(chunk))
    await asyncio.sleep(0.05)
    assert not task.done()  # the budget holds two events: waiting for room
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(pipeline.queue) == 2 and pipeline.read == 2
    # The three lines not queued stay, bytes and all, to be emitted again.
    assert [line.raw for line in chunk] == [DATED % i for i in (2, 3, 4)]
