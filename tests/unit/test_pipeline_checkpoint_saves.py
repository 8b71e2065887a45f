"""When the acknowledged positions reach the checkpoint file: soon, not after every batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from logpipe.checkpoints.store import CheckpointStore
from logpipe.pipeline import Pipeline
from tests.unit.test_pipeline_emit import lines, make_pipeline


def offset_on_disk(pipeline: Pipeline) -> int | None:
    store = CheckpointStore(pipeline.checkpoints.path)
    store.load()
    checkpoint = store.get("1:2:ab")
    return None if checkpoint is None else checkpoint.offset


async def settle_one_by_one(pipeline: Pipeline, count: int) -> None:
    await pipeline.tailers[0]._settings.emit(lines(count))
    for _ in range(count):
        await pipeline._acknowledge(await pipeline.queue.get_batch(1, 1 << 20, 0.0))


async def test_batches_settling_quickly_share_one_save_within_half_a_second(
    tmp_path: Path,
) -> None:
    pipeline = make_pipeline(tmp_path, max_events=100)

    await settle_one_by_one(pipeline, 5)

    # The first batch was saved at once; the other four wait for one save.
    assert offset_on_disk(pipeline) == 99
    assert pipeline.checkpoints.get("1:2:ab").offset == 499  # type: ignore[union-attr]
    await asyncio.sleep(0.7)
    assert offset_on_disk(pipeline) == 499


async def test_stopping_saves_what_was_acknowledged_without_waiting(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, max_events=100)
    await settle_one_by_one(pipeline, 3)
    assert offset_on_disk(pipeline) == 99

    await pipeline._shutdown(None, [])

    assert offset_on_disk(pipeline) == 299
    assert not pipeline._saver.pending  # no save left to run after the stop
