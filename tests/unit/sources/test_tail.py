"""Tailer scenarios on real files in tmp_path (no servers)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncinotify
import pytest

from logpipe.checkpoints import CheckpointStore
from logpipe.event import Event
from logpipe.sources.tail import Tailer
from logpipe.sources.watch import watch_root
from tests.unit.sources.helpers import TIMEOUT, Collector, MakeTailer, ack, append


async def test_reads_existing_file_from_start(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\r\nthree\n")
    tailer = make_tailer()
    await tailer.read_available()
    assert collector.raws == [b"one", b"two", b"three"]
    first = collector.lines[0]
    assert (first.path, first.input_name, first.generation) == (str(log), "app", 0)
    assert [(line.offset, line.end) for line in collector.lines] == [(0, 4), (4, 9), (9, 15)]
    assert tailer.positions() == {first.file_id: 15}


async def test_resumes_from_checkpoint(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\ntwo\n")
    await make_tailer().read_available()
    acked = collector.lines[0]
    store.advance(acked.file_id, acked.path, acked.generation, acked.end)
    append(log, b"three\n")
    collector.lines.clear()
    await make_tailer().read_available()  # a restart: new tailer, same store
    assert collector.raws == [b"two", b"three"]


async def test_partial_line_waits_for_its_newline(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"done\nhalf")
    tailer = make_tailer()
    await tailer.read_available()
    assert collector.raws == [b"done"]
    append(log, b"-written\n")
    await tailer.read_available()
    assert collector.raws == [b"done", b"half-written"]


async def test_file_without_a_first_line_is_read_once_it_has_one(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"")
    tailer = make_tailer()
    await tailer.read_available()
    append(log, b"first")
    await tailer.read_available()
    assert collector.lines == []
    append(log, b" line\n")
    await tailer.read_available()
    assert collector.raws == [b"first line"]


async def test_follows_rename_and_create_rotation_without_loss(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"before\n")
    tailer = make_tailer()
    await tailer.read_available()
    old_id = collector.lines[0].file_id
    with log.open("ab") as writer:  # the app's fd, still open across the rotation
        log.rename(logs / "app.log.1")
        writer.write(b"after-rename\n")
        writer.flush()
        log.write_bytes(b"new-file\n")
        await tailer.read_available()
    assert sorted(collector.raws) == [b"after-rename", b"before", b"new-file"]
    by_raw = {line.raw: line for line in collector.lines}
    assert by_raw[b"after-rename"].file_id == old_id
    assert by_raw[b"new-file"].file_id != old_id
    assert by_raw[b"new-file"].offset == 0


async def test_rotated_file_is_closed_once_read_idle_and_acknowledged(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\nlast line without newline")
    tailer = make_tailer()
    await tailer.read_available()
    log.rename(logs / "app.log.1")
    await tailer.read_available()
    assert collector.raws == [b"one"]  # not idle yet: the writer may still finish the line
    await asyncio.sleep(0.15)  # > 2 poll intervals
    await tailer.read_available()
    assert collector.raws == [b"one", b"last line without newline"]
    assert tailer.open_files == 1  # held: its lines are not acknowledged yet
    ack(store, collector.lines)
    await tailer.read_available()
    assert tailer.positions() == {}


async def test_resumes_after_copytruncate_without_loss(
    logs: Path, make_tailer: MakeTailer, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 two\n")
    tailer = make_tailer()
    await tailer.read_available()
    old_id = collector.lines[0].file_id
    shutil.copyfile(log, logs / "app.log.1")  # not matched by *.log
    with log.open("r+b") as f:
        f.truncate(0)
    with caplog.at_level(logging.INFO, logger="logpipe.tail"):
        await tailer.read_available()
        append(log, b"2024-01-02 three\n")
        await tailer.read_available()
    assert "file_truncated" in caplog.messages
    assert collector.raws[-1] == b"2024-01-02 three"
    new = collector.lines[-1]
    # New first line, new identity: its ids cannot collide with the old lines'.
    assert (new.offset, new.end) == (0, 17)
    assert new.file_id != old_id


async def test_truncation_with_same_first_line_bumps_the_generation(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"header\nold body line\n")
    tailer = make_tailer()
    await tailer.read_available()
    log.write_bytes(b"header\n")  # truncated in place, same first line
    await tailer.read_available()
    append(log, b"new\n")
    await tailer.read_available()
    assert collector.raws == [b"header", b"old body line", b"header", b"new"]
    assert [line.generation for line in collector.lines] == [0, 0, 1, 1]
    assert len({line.file_id for line in collector.lines}) == 1


async def test_detects_truncate_and_rewrite_past_the_old_offset(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"a1\n")
    tailer = make_tailer()
    await tailer.read_available()
    with log.open("r+b") as f:  # same inode, rewritten longer between two looks
        f.truncate(0)
        f.write(b"b1\nb2\nb3\n")
    await tailer.read_available()
    assert collector.raws == [b"a1", b"b1", b"b2", b"b3"]


async def test_truncated_while_stopped_restarts_at_zero(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"first\nsecond\n")
    await make_tailer().read_available()
    last = collector.lines[-1]
    store.advance(last.file_id, last.path, last.generation, last.end)
    with log.open("r+b") as f:
        f.truncate(6)  # keeps the first line, so the same fingerprint
    collector.lines.clear()
    append(log, b"x\n")
    await make_tailer().read_available()
    assert collector.raws == [b"first", b"x"]
    assert {line.generation for line in collector.lines} == {1}


async def test_symlinked_file_is_read_once(
    tmp_path: Path, logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "app.log").write_bytes(b"only once\n")
    (logs / "app.log").symlink_to(real / "app.log")
    tailer = make_tailer([str(logs / "*.log"), str(real / "*.log")])
    await tailer.read_available()
    await tailer.read_available()
    assert collector.raws == [b"only once"]


async def test_deleted_while_unread_file_is_read_to_end(
    logs: Path, make_tailer: MakeTailer, collector: Collector, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"one\n")
    tailer = make_tailer()
    await tailer.read_available()
    append(log, b"two\nthree\n")
    log.unlink()
    await tailer.read_available()
    assert collector.raws == [b"one", b"two", b"three"]
    ack(store, collector.lines)
    await tailer.read_available()
    assert tailer.positions() == {}  # fully read, acknowledged and gone: closed


async def test_overlong_line_is_shipped_truncated(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    (logs / "app.log").write_bytes(b"x" * 5000 + b"\nnext\n")
    await make_tailer(max_line_bytes=100, read_chunk=64).read_available()
    assert [(len(line.raw), line.truncated) for line in collector.lines] == [
        (100, True),
        (4, False),
    ]
    assert collector.lines[0].end == 5001


async def test_emit_backpressure_pauses_reading(logs: Path, make_tailer: MakeTailer) -> None:
    (logs / "app.log").write_bytes(b"".join(b"line %d\n" % i for i in range(100)))
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=5)
    tailer = make_tailer(emit=queue.put)
    reader = asyncio.create_task(tailer.read_available())
    await asyncio.sleep(0.05)
    assert queue.full() and not reader.done()  # waiting on the sink, not buffering
    got = [(await queue.get()).raw for _ in range(100)]
    await asyncio.wait_for(reader, TIMEOUT)
    assert got == [b"line %d" % i for i in range(100)]


async def test_cancelled_emit_loses_no_line(logs: Path, make_tailer: MakeTailer) -> None:
    (logs / "app.log").write_bytes(b"".join(b"line %d\n" % i for i in range(10)))
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=3)
    tailer = make_tailer(emit=lambda line: queue.put(line))
    reader = asyncio.create_task(tailer.read_available())
    await asyncio.sleep(0.05)
    reader.cancel()  # e.g. the pipeline restarting its source task
    with pytest.raises(asyncio.CancelledError):
        await reader
    got = [queue.get_nowait().raw for _ in range(3)]
    reader = asyncio.create_task(tailer.read_available())
    while len(got) < 10:
        got.append((await asyncio.wait_for(queue.get(), TIMEOUT)).raw)
    await asyncio.wait_for(reader, TIMEOUT)
    assert got == [b"line %d" % i for i in range(10)]


async def run_until(tailer: Tailer, body: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(tailer.run(stop))
    try:
        await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)


@pytest.mark.parametrize("use_inotify", [True, False])
async def test_glob_picks_up_a_file_created_later(
    logs: Path, make_tailer: MakeTailer, collector: Collector, use_inotify: bool
) -> None:
    tailer = make_tailer(poll_interval=0.2, use_inotify=use_inotify)

    async def body() -> None:
        await asyncio.sleep(0.1)
        (logs / "later.log").write_bytes(b"hello\n")
        await collector.wait_for(1)
        append(logs / "later.log", b"again\n")
        await collector.wait_for(2)

    await run_until(tailer, body)
    assert collector.raws == [b"hello", b"again"]


async def test_inotify_wakes_before_the_poll_interval(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    (logs / "app.log").write_bytes(b"")
    tailer = make_tailer(poll_interval=30.0)

    async def body() -> None:
        await asyncio.sleep(0.2)
        if not tailer.watching:
            pytest.skip("inotify unavailable here")
        append(logs / "app.log", b"woken\n")
        await collector.wait_for(1)

    await run_until(tailer, body)
    assert collector.raws == [b"woken"]


async def test_inotify_wakes_for_a_file_in_a_directory_made_after_start(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    # A recursive root (logs/*/app.log): the new directory gets its own watch.
    tailer = make_tailer([str(logs / "*" / "app.log")], poll_interval=30.0)

    async def body() -> None:
        await asyncio.sleep(0.2)
        if not tailer.watching:
            pytest.skip("inotify unavailable here")
        (logs / "pod-1").mkdir()
        await asyncio.sleep(0.2)  # the directory's notice wakes the tailer, which watches it
        (logs / "pod-1" / "app.log").write_bytes(b"first\n")
        await collector.wait_for(1)
        append(logs / "pod-1" / "app.log", b"second\n")
        await collector.wait_for(2)

    await run_until(tailer, body)
    assert collector.raws == [b"first", b"second"]


async def test_falls_back_to_polling_when_inotify_is_unavailable(
    logs: Path,
    make_tailer: MakeTailer,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def no_inotify() -> None:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(asyncinotify, "Inotify", no_inotify)
    tailer = make_tailer(poll_interval=0.1)

    async def body() -> None:
        (logs / "app.log").write_bytes(b"polled\n")
        await collector.wait_for(1)

    with caplog.at_level(logging.WARNING, logger="logpipe.tail"):
        await run_until(tailer, body)
    assert "watcher_failed" in caplog.messages
    assert collector.raws == [b"polled"]


async def test_stop_is_honoured_between_chunks(
    logs: Path, make_tailer: MakeTailer, collector: Collector
) -> None:
    (logs / "app.log").write_bytes(b"a\n" * 10_000)
    stop = asyncio.Event()

    async def emit(line: Event) -> None:
        collector.lines.append(line)
        stop.set()

    tailer = make_tailer(emit=emit, read_chunk=1024)
    await asyncio.wait_for(tailer.run(stop), TIMEOUT)
    assert 0 < len(collector.lines) <= 512  # the chunk in hand is finished, no more


async def test_unreadable_file_is_warned_about_once(
    logs: Path,
    make_tailer: MakeTailer,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"secret\n")
    real_open = os.open

    def denied(path: str, flags: int, mode: int = 0o777) -> int:
        if str(path) == str(log):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", denied)
    tailer = make_tailer()
    with caplog.at_level(logging.WARNING, logger="logpipe.tail"):
        await tailer.read_available()
        await tailer.read_available()
    assert caplog.messages.count("file_open_failed") == 1
    assert collector.lines == []
    monkeypatch.undo()
    await tailer.read_available()  # readable again: picked up from the start
    assert collector.raws == [b"secret"]


@pytest.mark.parametrize(
    ("pattern", "root"),
    [
        ("/var/log/erp/*.log", ("/var/log/erp", False)),
        ("/var/log/erp/application.log", ("/var/log/erp", False)),
        ("/var/log/*/app.log", ("/var/log", True)),
        ("/var/log/pods/**/*.log", ("/var/log/pods", True)),
        ("/*/x.log", ("/", True)),
    ],
)
def test_watch_root_is_the_deepest_directory_without_wildcards(
    pattern: str, root: tuple[str, bool]
) -> None:
    assert watch_root(pattern) == root
