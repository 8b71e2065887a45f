"""copytruncate while running: the lines written after our last read come from the copy."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from logpipe.checkpoints import CheckpointStore
from logpipe.event import Event
from tests.unit.sources.helpers import TIMEOUT, Collector, MakeTailer, ack, append

IDLE = 0.15  # > 2 poll intervals of the make_tailer fixture


def copytruncate(log: Path, copy: Path) -> None:
    """What logrotate does: copy the file, then empty it in place (same inode)."""
    shutil.copyfile(log, copy)
    with log.open("r+b") as f:
        f.truncate(0)


async def test_lines_written_after_our_last_read_are_read_from_the_copy(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 tw")
    tailer = make_tailer()
    await tailer.read_available()
    old = collector.lines[0]
    append(log, b"o\n2024-01-01 three\n2024-01-01 fou")  # never seen by us
    copytruncate(log, logs / "app.log.1")
    append(log, b"2024-01-02 new\n")
    await tailer.read_available()
    assert collector.raws == [
        b"2024-01-01 one",
        b"2024-01-01 two",
        b"2024-01-01 three",
        b"2024-01-02 new",
    ]
    await asyncio.sleep(IDLE)
    await tailer.read_available()  # the copy is final: its last line needs no newline
    assert collector.raws[-1] == b"2024-01-01 fou"
    from_copy = [line for line in collector.lines if line.file_id == old.file_id]
    # The ids a reader without the gap would have given them: same id, generation, offsets.
    assert [(line.offset, line.end) for line in from_copy] == [
        (0, 15),
        (15, 30),
        (30, 47),
        (47, 61),
    ]
    assert {line.generation for line in from_copy} == {0}
    assert tailer.copytruncate_gap_bytes == 0
    ack(store, collector.lines)
    await tailer.read_available()
    assert tailer.open_files == 1  # the copy is closed once read and acknowledged


async def test_truncation_without_a_copy_counts_the_bytes_known_lost(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"aaaa\nbbbb\ncccc\n")
    sink_stalled = asyncio.Event()

    async def emit(line: Event) -> None:
        if line.raw == b"bbbb" and not sink_stalled.is_set():
            sink_stalled.set()
            await asyncio.Event().wait()  # the queue is full: reading pauses here
        collector.lines.append(line)

    tailer = make_tailer(emit=emit, read_chunk=5)
    reader = asyncio.create_task(tailer.read_available())
    await asyncio.wait_for(sink_stalled.wait(), TIMEOUT)
    reader.cancel()  # read up to 10 of 15 bytes
    with pytest.raises(asyncio.CancelledError):
        await reader
    with log.open("r+b") as f:  # truncated, and no copy anywhere
        f.truncate(0)
    append(log, b"new\n")
    await tailer.read_available()
    assert collector.raws == [b"aaaa", b"bbbb", b"new"]
    assert tailer.copytruncate_gap_bytes == 5  # "cccc\n": seen in the size, never read


async def test_older_rotation_with_the_same_header_is_not_taken_for_the_copy(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    (logs / "app.log.2").write_bytes(b"#Fields: date msg\nold rotation\nmore old lines\n")
    log.write_bytes(b"#Fields: date msg\ntoday\n")
    tailer = make_tailer()
    await tailer.read_available()
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, b"#Fields: date msg\nx\n")
    await tailer.read_available()
    assert collector.raws == [b"#Fields: date msg", b"today", b"#Fields: date msg", b"x"]
    assert tailer.open_files == 1


async def test_partial_line_of_a_truncated_file_without_copy_is_emitted_as_is(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 cut sho")
    tailer = make_tailer()
    await tailer.read_available()
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, b"2024-01-02 new\n")
    await tailer.read_available()
    assert collector.raws == [b"2024-01-01 one", b"2024-01-01 cut sho", b"2024-01-02 new"]


async def test_copy_the_globs_match_adds_only_the_lines_the_original_lost(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 two\n")
    tailer = make_tailer([str(logs / "app.log*")])
    await tailer.read_available()
    old = collector.lines[0]
    append(log, b"2024-01-01 three\n")
    copytruncate(log, logs / "app.log.1")
    append(log, b"2024-01-02 new\n")
    await tailer.read_available()
    await tailer.read_available()
    assert sorted(collector.raws) == [
        b"2024-01-01 one",
        b"2024-01-01 three",
        b"2024-01-01 two",
        b"2024-01-02 new",
    ]
    three = next(line for line in collector.lines if line.raw == b"2024-01-01 three")
    assert (three.file_id, three.generation, three.offset) == (old.file_id, 0, 30)
    ack(store, collector.lines)
    collector.lines.clear()
    tailer.close()
    await make_tailer([str(logs / "app.log*")]).read_available()  # a restart
    assert collector.lines == []  # the copy is known as a copy, not a new file


async def test_backup_copy_of_a_live_file_is_not_shipped_again(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 two\n")
    tailer = make_tailer()
    await tailer.read_available()
    shutil.copyfile(log, logs / "backup.log")  # cp, no truncation
    append(log, b"2024-01-01 three\n")
    await tailer.read_available()
    assert collector.raws == [b"2024-01-01 one", b"2024-01-01 two", b"2024-01-01 three"]


async def test_new_file_sharing_only_the_header_line_is_read_as_a_file_of_its_own(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    (logs / "a.log").write_bytes(b"#Fields: date msg\na1\n")
    tailer = make_tailer()
    await tailer.read_available()
    (logs / "b.log").write_bytes(b"#Fields: date msg\n")  # too short to tell yet
    await tailer.read_available()
    append(logs / "b.log", b"b1\n")
    await tailer.read_available()
    b_lines = [line for line in collector.lines if line.path.endswith("b.log")]
    assert [(line.raw, line.offset) for line in b_lines] == [(b"#Fields: date msg", 0), (b"b1", 18)]
    assert b_lines[0].file_id != collector.lines[0].file_id


async def test_header_only_file_is_read_once_it_stays_undecided(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    (logs / "a.log").write_bytes(b"#Fields: date msg\na1\n")
    tailer = make_tailer()
    await tailer.read_available()
    (logs / "b.log").write_bytes(b"#Fields: date msg\n")
    await tailer.read_available()
    assert collector.raws == [b"#Fields: date msg", b"a1"]
    await asyncio.sleep(IDLE)
    await tailer.read_available()
    assert collector.raws == [b"#Fields: date msg", b"a1", b"#Fields: date msg"]


async def test_new_file_repeating_a_multi_line_header_is_read_in_full_once_it_differs(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    header = b"#Version: 1.0\n#Fields: date time msg\n"
    (logs / "a.log").write_bytes(header + b"2024-01-01 a1\n")
    tailer = make_tailer()
    await tailer.read_available()
    (logs / "b.log").write_bytes(header)  # so far only what every file starts with
    await tailer.read_available()
    append(logs / "b.log", b"2024-01-02 b1\n")
    await tailer.read_available()
    b_lines = [line.raw for line in collector.lines if line.path.endswith("b.log")]
    assert b_lines == [b"#Version: 1.0", b"#Fields: date time msg", b"2024-01-02 b1"]


async def test_copy_still_being_written_is_recognised_once_complete(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    content = b"2024-01-01 one\n2024-01-01 two\n2024-01-01 three\n"
    (logs / "app.log").write_bytes(content)
    tailer = make_tailer()
    await tailer.read_available()
    (logs / "copy.log").write_bytes(content[:20])  # the copy has begun
    await tailer.read_available()
    append(logs / "copy.log", content[20:])
    await tailer.read_available()
    assert collector.raws == [b"2024-01-01 one", b"2024-01-01 two", b"2024-01-01 three"]
    assert tailer.open_files == 2  # the copy is followed, as app.log's content


async def test_deleted_copy_leaves_no_copy_entry_for_a_new_file_on_its_inode(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n")
    tailer = make_tailer()
    await tailer.read_available()
    append(log, b"2024-01-01 two\n")
    copytruncate(log, logs / "app.log.1")
    await tailer.read_available()
    copies = [cp for cp in store.snapshot().values() if cp.copy_of is not None]
    assert len(copies) == 1
    ack(store, collector.lines)
    (logs / "app.log.1").unlink()  # compressed away by the next rotation
    await asyncio.sleep(IDLE)
    await tailer.read_available()
    assert tailer.open_files == 1
    assert [cp for cp in store.snapshot().values() if cp.copy_of is not None] == []
