"""Restarts: what the last run left unacknowledged is found again, by identity.

A "crash" here is: a tailer reads, only some lines are acknowledged (the store
is what survives a kill -9), the tailer goes away, files change on disk, and a
new tailer starts on the same store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

import pytest

from logpipe.checkpoints import CheckpointStore
from logpipe.sources.fingerprint import first_line_digest
from tests.unit.sources.helpers import Collector, MakeTailer, ack, append


async def first_run(make_tailer: MakeTailer, collector: Collector) -> None:
    """Read everything there is, then "crash": the caller acknowledges what survived."""
    tailer = make_tailer()
    await tailer.read_available()
    tailer.close()


def recovered(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, bool]]:
    return [
        (getattr(r, "path", ""), getattr(r, "old_path", ""), getattr(r, "copy", False))
        for r in caplog.records
        if r.message == "file_recovered"
    ]


async def test_restart_after_rotation_reads_the_unacknowledged_rest_of_the_renamed_file(
    logs: Path,
    make_tailer: MakeTailer,
    collector: Collector,
    store: CheckpointStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    await first_run(make_tailer, collector)
    ack(store, collector.lines[:1])  # killed before "two" and "three" were acknowledged
    old = collector.lines[0]
    log.rename(logs / "app.log.1")  # rotated while we were down; *.log no longer matches it
    append(logs / "app.log.1", b"four\n")  # the app wrote on through its old descriptor
    log.write_bytes(b"new\n")
    collector.lines.clear()
    restarted = make_tailer()
    with caplog.at_level(logging.INFO, logger="logpipe.tail"):
        await restarted.read_available()
    assert collector.raws == [b"two", b"three", b"four", b"new"]
    rest = collector.lines[:3]
    assert {(line.file_id, line.generation, line.path) for line in rest} == {
        (old.file_id, 0, str(log))  # the same ids the first run would have given them
    }
    assert [(line.offset, line.end) for line in rest] == [(4, 8), (8, 14), (14, 19)]
    assert recovered(caplog) == [(str(logs / "app.log.1"), str(log), False)]


async def test_second_crash_during_recovery_finds_the_renamed_file_again(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    await first_run(make_tailer, collector)
    ack(store, collector.lines[:1])
    log.rename(logs / "app.log.1")
    collector.lines.clear()
    await first_run(make_tailer, collector)  # recovers, then crashes again
    assert collector.raws == [b"two", b"three"]
    ack(store, collector.lines[:1])
    collector.lines.clear()
    await make_tailer().read_available()
    assert collector.raws == [b"three"]


async def test_recovered_file_is_closed_once_read_and_acknowledged(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\n")
    await first_run(make_tailer, collector)
    log.rename(logs / "app.log.1")
    log.write_bytes(b"new\n")
    collector.lines.clear()
    restarted = make_tailer()
    await restarted.read_available()
    assert restarted.open_files == 2
    ack(store, collector.lines)
    await restarted.read_available()  # idle for two poll intervals first
    assert restarted.open_files == 2
    await asyncio.sleep(0.15)  # > 2 poll intervals
    await restarted.read_available()
    assert restarted.open_files == 1  # app.log only


async def test_fully_acknowledged_rotated_file_is_not_read_again(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\n")
    await first_run(make_tailer, collector)
    ack(store, collector.lines)
    log.rename(logs / "app.log.1")
    log.write_bytes(b"new\n")
    collector.lines.clear()
    restarted = make_tailer()
    await restarted.read_available()
    assert collector.raws == [b"new"]
    assert restarted.open_files == 1


async def test_another_inputs_rotated_file_is_left_to_that_input(
    tmp_path: Path, logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "db.log").write_bytes(b"db one\n")
    first = make_tailer([str(other / "*.log")])  # another input, same store
    await first.read_available()
    first.close()
    (other / "db.log").rename(other / "db.log.1")
    (logs / "app.log").write_bytes(b"app\n")
    collector.lines.clear()
    await make_tailer().read_available()  # this input only owns logs/*.log
    assert collector.raws == [b"app"]


async def test_restart_after_copytruncate_reads_the_rest_from_the_copy(
    logs: Path,
    make_tailer: MakeTailer,
    collector: Collector,
    store: CheckpointStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 two\n")
    await first_run(make_tailer, collector)
    ack(store, collector.lines[:1])
    old = collector.lines[0]
    append(log, b"2024-01-01 three\n")  # written while we were down
    shutil.copyfile(log, logs / "app.log.1")  # logrotate copytruncate
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, b"2024-01-02 new\n")
    collector.lines.clear()
    restarted = make_tailer()
    with caplog.at_level(logging.INFO, logger="logpipe.tail"):
        await restarted.read_available()
    assert collector.raws == [b"2024-01-01 two", b"2024-01-01 three", b"2024-01-02 new"]
    copied = collector.lines[:2]
    assert {(line.file_id, line.generation) for line in copied} == {(old.file_id, 0)}
    assert [(line.offset, line.end) for line in copied] == [(15, 30), (30, 47)]
    assert collector.lines[2].file_id != old.file_id
    assert recovered(caplog) == [(str(logs / "app.log.1"), str(log), True)]


async def test_new_file_on_a_reused_inode_is_read_from_the_start(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    # The kernel cannot be made to reuse an inode on demand: craft the checkpoint
    # the deleted file would have left, with this file's dev:ino.
    log = logs / "app.log"
    log.write_bytes(b"brand new first line\nsecond\n")
    st = os.stat(log)
    old_digest = first_line_digest(b"the deleted file's first line\n")
    stale = f"{st.st_dev}:{st.st_ino}:{old_digest}"
    store.advance(stale, str(log), 3, 1000)
    await make_tailer().read_available()
    assert collector.raws == [b"brand new first line", b"second"]
    assert [(line.offset, line.generation) for line in collector.lines] == [(0, 0), (21, 0)]
    assert collector.lines[0].file_id != stale


async def test_same_inode_and_first_line_but_shorter_than_the_checkpoint_is_a_truncation(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"header\nshort\n")
    st = os.stat(log)
    digest = first_line_digest(b"header\n")
    file_id = f"{st.st_dev}:{st.st_ino}:{digest}"
    store.advance(file_id, str(log), 2, 5000)  # far past today's end
    await make_tailer().read_available()
    assert collector.raws == [b"header", b"short"]  # from 0, not from 5000
    assert {(line.file_id, line.generation) for line in collector.lines} == {(file_id, 3)}


async def test_restart_after_copytruncate_with_the_copy_matched_reads_only_the_rest(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    globs = [str(logs / "app.log*")]
    log.write_bytes(b"2024-01-01 one\n2024-01-01 two\n")
    first = make_tailer(globs)
    await first.read_available()
    first.close()
    ack(store, collector.lines[:1])
    old = collector.lines[0]
    append(log, b"2024-01-01 three\n")
    copytruncate_while_stopped(log, logs / "app.log.1")
    append(log, b"2024-01-02 new\n")
    collector.lines.clear()
    await make_tailer(globs).read_available()
    assert collector.raws == [b"2024-01-01 two", b"2024-01-01 three", b"2024-01-02 new"]
    assert {line.file_id for line in collector.lines[:2]} == {old.file_id}


def copytruncate_while_stopped(log: Path, copy: Path) -> None:
    shutil.copyfile(log, copy)
    with log.open("r+b") as f:
        f.truncate(0)
