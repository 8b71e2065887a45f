"""CheckpointStore: monotonic advances, atomic saves, recovery from bad files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from logpipe.checkpoints import CheckpointStore, CheckpointWriteError, FileCheckpoint


def on_disk(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_bytes())
    assert isinstance(doc, dict)
    return doc


def test_starts_empty_without_a_file(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    assert store.get("x") is None
    assert not store.dirty


def test_saved_checkpoints_survive_a_restart(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("1:2:ab", "/var/log/app.log", 0, 120)
    store.save()
    doc = on_disk(tmp_path / "cp.json")
    assert doc["version"] == 1
    reloaded = CheckpointStore(tmp_path / "cp.json").get("1:2:ab")
    assert reloaded is not None
    assert (reloaded.path, reloaded.offset, reloaded.generation) == ("/var/log/app.log", 120, 0)
    assert reloaded.updated > 0


def test_offset_never_moves_backwards_within_a_generation(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    assert store.advance("f", "p", 0, 100)
    assert not store.advance("f", "p", 0, 50)
    assert not store.advance("f", "p", 0, 100)
    updated = store.snapshot()["f"].updated
    assert store.get("f") == FileCheckpoint("p", 100, 0, updated, acked_at=updated)


def test_higher_generation_replaces_and_lower_is_ignored(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("f", "p", 1, 500)
    assert store.advance("f", "p", 2, 10)
    assert not store.advance("f", "p", 1, 900)
    cp = store.get("f")
    assert cp is not None and (cp.generation, cp.offset) == (2, 10)


def test_forget_removes_the_file_on_next_save(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("f", "p", 0, 1)
    store.save()
    store.forget("f")
    store.save()
    assert CheckpointStore(tmp_path / "cp.json").get("f") is None


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    for offset in range(1, 4):
        store.advance("f", "p", 0, offset)
        store.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json", "cp.json.prev"]
    prev = on_disk(tmp_path / "cp.json.prev")["files"]
    assert isinstance(prev, dict) and prev["f"]["offset"] == 2


def test_save_without_changes_writes_nothing(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.save()
    assert not (tmp_path / "cp.json").exists()


def test_torn_file_falls_back_to_prev(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 10)
    store.save()
    store.advance("f", "p", 0, 20)
    store.save()
    torn = path.read_bytes()[:15]
    path.write_bytes(torn)
    with caplog.at_level(logging.WARNING, logger="logpipe.checkpoints"):
        recovered = CheckpointStore(path)
    assert "checkpoint_corrupt" in caplog.messages
    cp = recovered.get("f")
    assert cp is not None and cp.offset == 10
    assert (tmp_path / "cp.json.corrupt").read_bytes() == torn


def test_garbage_without_prev_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_bytes(b"\x00\xff not json")
    store = CheckpointStore(path)
    assert store.snapshot() == {}
    assert (tmp_path / "cp.json.corrupt").exists()


@pytest.mark.parametrize(
    "doc",
    [
        {"version": 2, "files": {}},
        {"files": {}},
        [1, 2],
        {"version": 1, "files": []},
        {"version": 1, "files": {"f": {"path": "p", "offset": -1, "generation": 0}}},
        {"version": 1, "files": {"f": {"path": "p", "offset": True, "generation": 0}}},
        {"version": 1, "files": {"f": {"path": 3, "offset": 1, "generation": 0}}},
        {"version": 1, "files": {"f": "nope"}},
    ],
)
def test_unknown_version_or_bad_entries_do_not_crash(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "cp.json"
    path.write_text(json.dumps(doc))
    assert CheckpointStore(path).snapshot() == {}


def test_corrupt_main_never_replaces_the_good_prev(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 10)
    store.save()
    store.advance("f", "p", 0, 20)
    store.save()
    path.write_bytes(b"{")
    recovered = CheckpointStore(path)
    recovered.advance("f", "p", 0, 30)
    recovered.save()
    prev = on_disk(tmp_path / "cp.json.prev")["files"]
    assert isinstance(prev, dict) and prev["f"]["offset"] == 10
    cp = CheckpointStore(path).get("f")
    assert cp is not None and cp.offset == 30


def test_disk_full_raises_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 10)
    store.save()
    before = path.read_bytes()
    store.advance("f", "p", 0, 99)

    def no_space(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(CheckpointWriteError, match="No space left"):
        store.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert store.dirty
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]  # no temp file left behind
    store.save()  # the next save retries with the progress kept in memory
    cp = CheckpointStore(path).get("f")
    assert cp is not None and cp.offset == 99


def test_failed_replace_raises_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cp.json"
    store = CheckpointStore(path)
    store.advance("f", "p", 0, 10)
    store.save()
    before = path.read_bytes()
    store.advance("f", "p", 0, 99)

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CheckpointWriteError):
        store.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert store.dirty


def test_prune_removes_the_entries_keep_rejects(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("gone", "p", 0, 1)
    store.advance("live", "q", 0, 2)
    store.save()
    assert store.prune(lambda file_id, cp: file_id == "live") == ["gone"]
    assert store.dirty
    store.save()
    assert list(CheckpointStore(tmp_path / "cp.json").snapshot()) == ["live"]


def test_prune_keeping_everything_changes_nothing(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.advance("f", "p", 0, 1)
    store.save()
    assert store.prune(lambda file_id, cp: True) == []
    assert not store.dirty


def test_register_starts_an_entry_but_never_overwrites_one(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    assert store.register("f", "p", 0, 0)
    assert store.dirty
    store.advance("f", "p", 0, 40)
    assert not store.register("f", "p", 0, 0)
    cp = store.get("f")
    assert cp is not None and cp.offset == 40


def test_copy_entries_survive_a_restart(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    store.register("1:9:ab", "/logs/app.log.1", 2, 0, copy_of="1:2:ab")
    store.advance("1:2:ab", "/logs/app.log", 2, 50)
    store.save()
    reloaded = CheckpointStore(tmp_path / "cp.json")
    copy, original = reloaded.get("1:9:ab"), reloaded.get("1:2:ab")
    assert copy is not None and (copy.copy_of, copy.generation) == ("1:2:ab", 2)
    assert original is not None and original.copy_of is None
