"""Checkpoint pruning: entries of files gone for good go, after a while; the rest stay."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from logpipe.checkpoints import CheckpointStore
from logpipe.sources.recover import PRUNE_AFTER, prune_checkpoints
from tests.files import file_id_of

LATER = PRUNE_AFTER + 3600.0


def checkpoint(store: CheckpointStore, path: Path, offset: int) -> str:
    file_id = file_id_of(path)
    store.advance(file_id, str(path), 0, offset)
    return file_id


@pytest.fixture
def patterns(logs: Path) -> list[str]:
    return [str(logs / "*.log")]


def test_old_entry_of_a_deleted_file_is_pruned(
    logs: Path, store: CheckpointStore, patterns: list[str]
) -> None:
    gone = logs / "gone.log"
    gone.write_bytes(b"bye\n")
    file_id = checkpoint(store, gone, 4)
    gone.unlink()
    assert prune_checkpoints(store, patterns, now=time.time() + LATER) == [file_id]
    assert store.snapshot() == {}
    assert store.dirty  # the caller saves


def test_recent_entry_of_a_deleted_file_is_kept(
    logs: Path, store: CheckpointStore, patterns: list[str]
) -> None:
    gone = logs / "gone.log"
    gone.write_bytes(b"bye\n")
    checkpoint(store, gone, 4)
    gone.unlink()
    assert prune_checkpoints(store, patterns) == []


def test_old_entries_of_files_still_there_are_kept(
    logs: Path, store: CheckpointStore, patterns: list[str]
) -> None:
    live = logs / "live.log"
    live.write_bytes(b"quiet for a week\n")
    rotated = logs / "app.log"
    rotated.write_bytes(b"rotated away\n")
    checkpoint(store, live, 17)
    checkpoint(store, rotated, 5)  # not all acknowledged: a restart recovers it
    rotated.rename(logs / "app.log.1")
    assert prune_checkpoints(store, patterns, now=time.time() + LATER) == []
    assert len(store.snapshot()) == 2


def test_old_identity_of_a_copytruncated_file_is_pruned(
    logs: Path, store: CheckpointStore, patterns: list[str]
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n")
    old_id = checkpoint(store, log, 15)  # fully acknowledged
    shutil.copyfile(log, logs / "app.log.1")
    log.write_bytes(b"2024-01-02 new\n")  # same inode, new first line
    new_id = checkpoint(store, log, 15)
    assert prune_checkpoints(store, patterns, now=time.time() + LATER) == [old_id]
    assert list(store.snapshot()) == [new_id]


def test_old_identity_whose_copy_holds_unacknowledged_lines_is_kept(
    logs: Path, store: CheckpointStore, patterns: list[str]
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"2024-01-01 one\n2024-01-01 two\n")
    checkpoint(store, log, 15)
    shutil.copyfile(log, logs / "app.log.1")
    log.write_bytes(b"2024-01-02 new\n")
    assert prune_checkpoints(store, patterns, now=time.time() + LATER) == []


def test_entry_that_is_not_a_fingerprint_is_pruned_when_old(
    logs: Path, store: CheckpointStore, patterns: list[str]
) -> None:
    store.advance("not-a-fingerprint", str(logs / "x.log"), 0, 1)
    assert prune_checkpoints(store, patterns, now=time.time() + LATER) == ["not-a-fingerprint"]
