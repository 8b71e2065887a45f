"""Fixtures for tailer scenarios on real files in tmp_path (no servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from logpipe.checkpoints import CheckpointStore
from logpipe.sources.tail import Tailer
from tests.unit.sources.helpers import Collector, MakeTailer, one_by_one


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints.json")


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_tailer(logs: Path, store: CheckpointStore, collector: Collector) -> Iterator[MakeTailer]:
    """Tailers on ``logs/*.log`` sharing ``store``; a second one is a restart."""
    tailers: list[Tailer] = []

    def make(patterns: list[str] | None = None, **kwargs: object) -> Tailer:
        kwargs.setdefault("poll_interval", 0.05)
        # A test's own emit takes one line at a time.
        emit = one_by_one(kwargs.pop("emit")) if "emit" in kwargs else collector  # type: ignore[arg-type]
        pattern = [str(logs / "*.log")]
        tailer = Tailer("app", patterns or pattern, store, emit, **kwargs)  # type: ignore[arg-type]
        tailers.append(tailer)
        return tailer

    yield make
    for tailer in tailers:
        tailer.close()
