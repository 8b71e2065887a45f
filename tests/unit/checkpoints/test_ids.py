"""The document id scheme each checkpoint entry records (``ids``), for in-place upgrades."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logpipe.checkpoints.store import CheckpointStore, read_checkpoints


def write(path: Path, **entries: dict[str, object]) -> Path:
    path.write_text(json.dumps({"version": 1, "files": entries}))
    return path


def old_entry(offset: int = 120, generation: int = 3) -> dict[str, object]:
    """An entry as a logpipe from before id scheme 2 wrote it: no ``ids``."""
    return {"path": "/var/log/app.log", "offset": offset, "generation": generation, "updated": 1.5}


def ids_on_disk(path: Path) -> dict[str, object]:
    return {f: e.get("ids") for f, e in json.loads(path.read_bytes())["files"].items()}


def test_entry_written_before_id_scheme_2_loads_as_scheme_1(tmp_path: Path) -> None:
    store = CheckpointStore(write(tmp_path / "cp.json", f=old_entry()))
    cp = store.get("f")
    assert cp is not None and (cp.offset, cp.generation, cp.ids) == (120, 3, 1)


def test_scheme_survives_a_save_and_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path / "cp.json", old=old_entry())
    store = CheckpointStore(path)
    store.register("new", "/var/log/new.log", 0, 0)
    store.advance("old", "/var/log/app.log", 3, 200)
    store.save()
    assert ids_on_disk(path) == {"old": 1, "new": 2}
    reloaded = read_checkpoints(path)[0]
    assert {f: cp.ids for f, cp in reloaded.items()} == {"old": 1, "new": 2}


def test_advance_keeps_scheme_1_within_the_generation_and_turns_2_on_the_next(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(write(tmp_path / "cp.json", f=old_entry(generation=3)))
    assert store.advance("f", "p", 3, 500)
    assert store.snapshot()["f"].ids == 1
    assert not store.advance("f", "p", 3, 400)  # ignored, and changes nothing
    assert store.snapshot()["f"].ids == 1
    assert store.advance("f", "p", 4, 10)  # truncated: the new content was never sent
    assert store.snapshot()["f"].ids == 2
    assert store.advance("g", "q", 0, 10)  # a file first seen by this version
    assert store.snapshot()["g"].ids == 2


def test_register_and_end_generation_start_scheme_2(tmp_path: Path) -> None:
    store = CheckpointStore(write(tmp_path / "cp.json", f=old_entry(generation=3)))
    assert store.register("g", "q", 0, 0)
    assert not store.register("f", "p", 3, 0)  # an existing entry keeps its scheme
    assert store.end_generation("f", "p", 3)
    ended = store.get("f")
    registered = store.get("g")
    assert ended is not None and (ended.generation, ended.ids) == (4, 2)
    assert registered is not None and registered.ids == 2


@pytest.mark.parametrize("bad", ["0", "3", "true", "1.0", '"1"', "null"])
def test_unknown_id_scheme_makes_the_entry_unreadable(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "cp.json"
    path.write_text(
        '{"version": 1, "files": {"f": {"path": "p", "offset": 1, "generation": 0,'
        ' "ids": ' + bad + "}}}"
    )
    with pytest.raises(ValueError, match="invalid checkpoint entry"):
        read_checkpoints(path)
    assert CheckpointStore(path).snapshot() == {}  # set aside as corrupt, like any bad entry


@pytest.mark.parametrize(
    ("file_id", "generation", "legacy"),
    [
        ("old", 3, True),  # the generation an older logpipe was reading
        ("old", 2, True),  # an earlier one (a copy of it read again) was shipped by it too
        ("old", 4, False),  # content written after the upgrade
        ("new", 0, False),  # an entry written by this version
        ("unknown", 0, False),  # no entry at all: a file first seen now
    ],
)
def test_uses_legacy_ids_only_for_what_an_older_logpipe_shipped(
    tmp_path: Path, file_id: str, generation: int, legacy: bool
) -> None:
    new_entry = {"path": "/var/log/new.log", "offset": 9, "generation": 0, "ids": 2}
    store = CheckpointStore(write(tmp_path / "cp.json", old=old_entry(), new=new_entry))
    assert store.uses_legacy_ids(file_id, generation) is legacy


def test_legacy_generation_is_remembered_after_the_entry_moves_on(tmp_path: Path) -> None:
    # A copytruncate copy of generation 3 may be read (as "old", generation 3)
    # after the original's entry moved to generation 4: its lines keep their ids.
    store = CheckpointStore(write(tmp_path / "cp.json", old=old_entry()))
    store.advance("old", "/var/log/app.log", 4, 50)
    assert store.uses_legacy_ids("old", 3)
    assert not store.uses_legacy_ids("old", 4)
    store.end_generation("old", "/var/log/app.log", 4)
    assert store.uses_legacy_ids("old", 3)
    assert not store.uses_legacy_ids("old", 5)
