"""Files that leave the globs stay open until acknowledged; partial lines; many files."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from logpipe.checkpoints import CheckpointStore
from logpipe.sources.tail import Tailer
from tests.unit.sources.helpers import TIMEOUT, Collector, MakeTailer, ack, append

IDLE = 0.15  # > 2 poll intervals of the make_tailer fixture


async def test_deleted_file_stays_open_until_its_lines_are_acknowledged(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\n")
    tailer = make_tailer()
    await tailer.read_available()
    log.unlink()
    await asyncio.sleep(IDLE)
    await tailer.read_available()
    assert tailer.open_files == 1  # our descriptor is the only way left to its bytes
    ack(store, collector.lines[:1])
    await tailer.read_available()
    assert tailer.open_files == 1
    ack(store, collector.lines[1:])
    await tailer.read_available()
    assert tailer.open_files == 0


async def test_new_file_with_the_same_first_line_on_a_freed_inode_starts_a_new_generation(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"# header\none\n")
    tailer = make_tailer()
    await tailer.read_available()
    old = collector.lines[0]
    ack(store, collector.lines)
    log.unlink()
    await tailer.read_available()  # closed: its inode may now be reused
    assert tailer.open_files == 0
    # Same inode (the kernel's choice, simulated by the id) and same first line: the
    # store must not send the new file to the old offset or give it the old ids.
    checkpoint = store.get(old.file_id)
    assert checkpoint is not None
    assert (checkpoint.generation, checkpoint.offset) == (old.generation + 1, 0)


async def test_writer_appending_to_a_held_deleted_file_late_is_still_read(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    with log.open("ab") as writer:  # an app that never reopens its log
        writer.write(b"before\n")
        writer.flush()
        tailer = make_tailer()
        await tailer.read_available()
        log.unlink()
        await asyncio.sleep(IDLE)  # idle past the point it used to be closed at
        await tailer.read_available()
        writer.write(b"late\n")
        writer.flush()
        await tailer.read_available()
    assert collector.raws == [b"before", b"late"]


async def test_renamed_file_stays_open_until_acknowledged(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\n")
    tailer = make_tailer()
    await tailer.read_available()
    log.rename(logs / "app.log.1")
    await tailer.read_available()
    await asyncio.sleep(IDLE)
    await tailer.read_available()
    assert tailer.open_files == 1
    ack(store, collector.lines)
    await tailer.read_available()
    assert tailer.open_files == 0
    assert [cp.offset for cp in store.snapshot().values()] == [4]  # still on disk: kept


async def test_unacknowledged_file_is_closed_after_the_hold_bound(
    logs: Path,
    make_tailer: MakeTailer,
    collector: Collector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"never acknowledged\n")
    tailer = make_tailer(ack_hold=0.3)
    await tailer.read_available()
    log.unlink()
    await asyncio.sleep(IDLE)
    await tailer.read_available()
    assert tailer.open_files == 1
    await asyncio.sleep(0.3)
    with caplog.at_level(logging.WARNING, logger="logpipe.tail"):
        await tailer.read_available()
    assert tailer.open_files == 0
    assert "file_unacknowledged" in caplog.messages


async def test_partial_last_line_is_emitted_after_the_timeout_and_its_rest_is_a_new_line(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"done\nhalf")
    tailer = make_tailer(partial_line_timeout=0.1)
    await tailer.read_available()
    assert collector.raws == [b"done"]
    await asyncio.sleep(0.15)
    await tailer.read_available()
    assert collector.raws == [b"done", b"half"]
    file_id = collector.lines[0].file_id
    assert tailer.positions() == {file_id: 9}  # a restart resumes after it
    append(log, b"-rest\n")
    await tailer.read_available()
    assert collector.raws == [b"done", b"half", b"-rest"]
    assert [(line.offset, line.end) for line in collector.lines] == [(0, 5), (5, 9), (9, 15)]


async def test_partial_last_line_still_being_written_is_not_emitted(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"done\nha")
    tailer = make_tailer(partial_line_timeout=0.2)
    for piece in (b"l", b"f", b"-", b"w"):
        await asyncio.sleep(0.1)
        append(log, piece)  # changes more often than the timeout
        await tailer.read_available()
    append(log, b"ay\n")
    await tailer.read_available()
    assert collector.raws == [b"done", b"half-way"]


async def test_partial_last_line_waits_forever_by_default(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    (logs / "app.log").write_bytes(b"done\nhalf")
    tailer = make_tailer()
    await tailer.read_available()
    await asyncio.sleep(0.15)
    await tailer.read_available()
    assert collector.raws == [b"done"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("use_inotify", [True, False])
async def test_hundreds_of_files_appearing_and_disappearing_leak_no_descriptor(
    logs: Path, store: CheckpointStore, collector: Collector, use_inotify: bool
) -> None:
    before = open_fds()
    tailer = Tailer(
        "app",
        [str(logs / "*.log")],
        store,
        collector,
        poll_interval=0.05,
        use_inotify=use_inotify,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(tailer.run(stop))
    try:
        for i in range(300):
            (logs / f"pod-{i}.log").write_bytes(b"hello from %d\n" % i)
        await collector.wait_for(300)
        ack(store, collector.lines)
        for i in range(300):
            (logs / f"pod-{i}.log").unlink()

        async def all_closed() -> None:
            while tailer.open_files:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(all_closed(), TIMEOUT)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)
        tailer.close()
    assert sorted(collector.raws) == sorted(b"hello from %d" % i for i in range(300))
    assert open_fds() == before
