"""The sender loop: requests in flight together, acknowledged in order."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

from logpipe.config import PipelineConfig
from logpipe.event import Event, Line
from logpipe.pipeline import Pipeline
from logpipe.sinks.elasticsearch.sink import SinkStats

DATED = b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "m%d"}'


class GatedSink:
    """Holds each bulk request until the test lets it through, in any order."""

    def __init__(self) -> None:
        self.requests: list[list[Event]] = []
        self.gates: list[asyncio.Event] = []
        self.arrived = asyncio.Event()
        self.stats = SinkStats()

    async def send(self, events: list[Event]) -> None:
        gate = asyncio.Event()
        self.requests.append(events)
        self.gates.append(gate)
        self.arrived.set()
        await gate.wait()


def make_pipeline(tmp_path: Path, concurrent: int) -> Pipeline:
    config = PipelineConfig.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": {
                "app": {"paths": [str(tmp_path / "*.log")], "parser": "app_json", "dataset": "d"}
            },
            "output": {
                "elasticsearch": {
                    "hosts": ["http://127.0.0.1:9"],
                    "concurrent_requests": concurrent,
                    "batch": {"max_events": 2, "max_age_seconds": 0.01},
                }
            },
        }
    )
    return Pipeline(config, env={})


async def four_lines_queued(tmp_path: Path, concurrent: int) -> tuple[Pipeline, GatedSink]:
    """A pipeline whose sink holds every request, with four lines (two batches) queued."""
    pipeline = make_pipeline(tmp_path, concurrent)
    sink = GatedSink()
    pipeline.sink = sink  # type: ignore[assignment]
    lines = deque(
        Line("1:2:ab", 0, "/var/log/app.log", 100 * i, 100 * i + 99, DATED % i, "app")
        for i in range(4)
    )
    await pipeline.tailers[0]._settings.emit(lines)
    return pipeline, sink


async def until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_second_request_goes_out_while_the_first_is_in_flight_and_acks_wait_for_it(
    tmp_path: Path,
) -> None:
    pipeline, sink = await four_lines_queued(tmp_path, concurrent=2)
    shipper = asyncio.create_task(pipeline._ship())
    try:
        await until(lambda: len(sink.requests) == 2)  # two requests in flight at once
        sink.gates[1].set()  # the second answers first
        await asyncio.sleep(0.1)
        # Not acknowledged: the first request's lines come before it in the file.
        assert pipeline.checkpoints.get("1:2:ab") is None or (
            pipeline.checkpoints.get("1:2:ab").offset == 0  # type: ignore[union-attr]
        )
        assert pipeline.queue.held == 4
        sink.gates[0].set()
        await until(lambda: pipeline.queue.held == 0)
        checkpoint = pipeline.checkpoints.get("1:2:ab")
        assert checkpoint is not None and checkpoint.offset == 399
    finally:
        shipper.cancel()
        await asyncio.gather(shipper, return_exceptions=True)


async def test_one_request_at_a_time_when_so_configured(tmp_path: Path) -> None:
    pipeline, sink = await four_lines_queued(tmp_path, concurrent=1)
    shipper = asyncio.create_task(pipeline._ship())
    try:
        await until(lambda: len(sink.requests) == 1)
        await asyncio.sleep(0.1)
        assert len(sink.requests) == 1
        sink.gates[0].set()
        await until(lambda: len(sink.requests) == 2)
        sink.gates[1].set()
        await until(lambda: pipeline.queue.held == 0)
    finally:
        shipper.cancel()
        await asyncio.gather(shipper, return_exceptions=True)
