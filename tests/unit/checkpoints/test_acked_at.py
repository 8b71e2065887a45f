"""``acked_at``: when an acknowledgement last moved a file's offset, and reading the store
from another process (``logpipe status``) without disturbing the pipeline that owns it."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from logpipe.checkpoints.store import CheckpointStore, FileCheckpoint, read_checkpoints


def test_advance_records_when_the_offset_moved(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    before = time.time()
    store.advance("f", "p", 0, 10)
    checkpoint = store.get("f")
    assert checkpoint is not None
    assert checkpoint.acked_at is not None
    assert before <= checkpoint.acked_at <= time.time()


def test_acked_at_survives_a_save_and_reload(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("f", "p", 0, 10)
    store.save()
    stored = json.loads((tmp_path / "cp.json").read_bytes())["files"]["f"]
    reloaded = CheckpointStore(tmp_path / "cp.json").get("f")
    assert reloaded is not None
    assert reloaded.acked_at == stored["acked_at"] == store.snapshot()["f"].acked_at


def test_registered_file_was_never_acked(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.register("f", "p", 0, 0)
    store.save()
    assert "acked_at" not in json.loads((tmp_path / "cp.json").read_bytes())["files"]["f"]
    reloaded = CheckpointStore(tmp_path / "cp.json").get("f")
    assert reloaded is not None
    assert reloaded.acked_at is None


def test_refused_advance_keeps_the_last_ack_time(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("f", "p", 0, 100)
    first = store.snapshot()["f"].acked_at
    time.sleep(0.01)
    assert not store.advance("f", "p", 0, 50)  # out of order: not progress
    assert store.snapshot()["f"].acked_at == first


def test_ending_a_generation_is_not_an_ack(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("f", "p", 0, 100)
    acked = store.snapshot()["f"].acked_at
    assert acked is not None
    time.sleep(0.01)
    assert store.end_generation("f", "p", 0)
    moved = store.snapshot()["f"]
    assert (moved.generation, moved.offset, moved.acked_at) == (1, 0, acked)
    assert moved.updated > acked  # the entry changed, though
    assert not store.end_generation("f", "p", 0)  # already past generation 0


def test_reads_files_written_before_acked_at_existed(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text(
        '{"version": 1, "files": {"1:2:ab": {"path": "/var/log/app.log", "offset": 120,'
        ' "generation": 0, "updated": 1700000000.5}}}'
    )
    store = CheckpointStore(path)
    # Written before ``ids`` existed too: scheme-1 ids (see test_ids.py).
    assert store.get("1:2:ab") == FileCheckpoint("/var/log/app.log", 120, 0, 1700000000.5, ids=1)
    assert store.get("1:2:ab").acked_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ['"yesterday"', "true", "[1]"])
def test_invalid_acked_at_makes_the_entry_unreadable(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "cp.json"
    path.write_text(
        '{"version": 1, "files": {"f": {"path": "p", "offset": 1, "generation": 0,'
        ' "acked_at": ' + bad + "}}}"
    )
    with pytest.raises(ValueError):
        read_checkpoints(path)


def test_read_checkpoints_without_a_file_is_empty(tmp_path: Path) -> None:
    assert read_checkpoints(tmp_path / "cp.json") == ({}, None)


def test_read_checkpoints_changes_nothing_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 10)
    store.save()
    before = sorted(os.listdir(tmp_path)), path.read_bytes(), os.stat(path).st_mtime_ns
    entries, source = read_checkpoints(path)
    assert source == path
    assert entries == store.snapshot()
    assert (sorted(os.listdir(tmp_path)), path.read_bytes(), os.stat(path).st_mtime_ns) == before


def test_read_checkpoints_falls_back_to_prev_and_leaves_the_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 10)
    store.save()
    store.advance("f", "p", 0, 20)
    store.save()  # the first save is now cp.json.prev
    path.write_bytes(b'{"version": 1, "fi')  # torn by a lying filesystem
    entries, source = read_checkpoints(path)
    assert source == tmp_path / "cp.json.prev"
    assert entries["f"].offset == 10
    assert path.read_bytes() == b'{"version": 1, "fi'  # not moved aside: not ours
    assert not (tmp_path / "cp.json.corrupt").exists()


def test_read_checkpoints_raises_when_no_copy_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable checkpoints"):
        read_checkpoints(path)


def test_reader_sees_whole_states_while_the_owner_saves(tmp_path: Path) -> None:
    # The owner replaces the file by rename, so a reader in another thread (or
    # process) sees one whole state per read, never a torn mix, and never blocks it.
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 1)
    store.save()
    done = threading.Event()

    def owner() -> None:
        for offset in range(2, 300):
            store.advance("f", "p", 0, offset)
            store.save()
        done.set()

    writer = threading.Thread(target=owner)
    writer.start()
    seen = []
    while not done.is_set():
        entries, source = read_checkpoints(path)
        assert source == path
        seen.append(entries["f"].offset)
    writer.join()
    assert seen == sorted(seen)
    assert read_checkpoints(path)[0]["f"].offset == 299
