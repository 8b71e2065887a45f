"""AlertSpool: e-mails on disk before they are sent, gone only once accepted, bounded."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from logpipe.alerts.outgoing import SUMMARY_KEY, Outgoing
from logpipe.alerts.spool import AlertSpool

T0 = 1_800_000_000.0


def outgoing(n: int = 1, *, count: int = 1, kind: str = "first", **extra: Any) -> Outgoing:
    data: dict[str, Any] = {
        "kind": kind,
        "key": f"group-{n}",
        "title": f"fault {n}",
        "count": count,
        "first_at": T0 + n,
        "last_at": T0 + n,
        "since": T0 + n,
        "at": T0 + n,
        "sample": {"message": f"fault {n}", "log": {"level": "error"}},
        "request_ids": [f"req-{n}"],
    }
    data.update(extra)
    return Outgoing.from_dict(data)


def spool_in(directory: Path, **options: Any) -> AlertSpool:
    spool = AlertSpool(directory, **options)
    assert spool.load() == []
    return spool


def test_entry_is_on_disk_before_anything_is_sent(tmp_path: Path) -> None:
    spool = spool_in(tmp_path)

    entry = spool.add(outgoing(1))

    (path,) = (tmp_path / "pending").iterdir()
    assert path.name == f"{entry.id}.json"
    assert Outgoing.from_dict(json.loads(path.read_bytes())["outgoing"]) == entry.outgoing


def test_crash_between_write_and_send_resends_at_restart(tmp_path: Path) -> None:
    first = spool_in(tmp_path)
    ids = [first.add(outgoing(n)).id for n in range(3)]
    first.ack(ids[0])
    # "Crash": the process is gone, the files stay.

    restarted = spool_in(tmp_path)

    assert [entry.id for entry in restarted.entries()] == ids[1:]
    assert [entry.outgoing.title for entry in restarted.entries()] == ["fault 1", "fault 2"]


def test_ack_removes_the_entry_for_good(tmp_path: Path) -> None:
    spool = spool_in(tmp_path)
    entry = spool.add(outgoing(1))

    spool.ack(entry.id)

    assert len(spool) == 0
    assert len(spool_in(tmp_path)) == 0


def test_failed_entry_is_kept_with_its_reason_and_not_resent(tmp_path: Path) -> None:
    spool = spool_in(tmp_path)
    entry = spool.add(outgoing(1))

    spool.fail(entry.id, "SMTPDataError: (550, 'rejected')")

    assert len(spool_in(tmp_path)) == 0
    kept = json.loads((tmp_path / "failed" / f"{entry.id}.json").read_bytes())
    assert kept["error"] == "SMTPDataError: (550, 'rejected')"
    assert kept["outgoing"]["title"] == "fault 1"


def test_ids_sort_oldest_first_and_are_unique_across_restarts(tmp_path: Path) -> None:
    # Same millisecond, two processes: the boot token keeps the ids apart, so
    # a Message-ID derived from one is never reused for another e-mail.
    first = spool_in(tmp_path, clock=lambda: T0)
    a = first.add(outgoing(1)).id
    b = first.add(outgoing(2)).id
    second = spool_in(tmp_path, clock=lambda: T0)
    c = second.add(outgoing(3)).id
    later = spool_in(tmp_path, clock=lambda: T0 + 0.001).add(outgoing(4)).id

    assert len({a, b, c}) == 3
    assert a < b
    assert max(a, b, c) < later
    assert [e.id for e in spool_in(tmp_path).entries()] == sorted([a, b, c, later])


def test_beyond_the_cap_new_entries_merge_into_a_summary_and_counts_add_up(tmp_path: Path) -> None:
    spool = spool_in(tmp_path, max_entries=3)

    for n in range(10):
        spool.add(outgoing(n, count=n + 1, kind="digest"))

    entries = spool.entries()
    assert len(entries) == 4  # three entries and one summary
    summary = entries[-1]
    assert summary.summary
    assert summary.outgoing.key == SUMMARY_KEY
    assert summary.outgoing.count == sum(range(4, 11))
    assert sum(e.outgoing.count for e in entries) == sum(range(1, 11))
    assert dict(summary.outgoing.breakdown) == {f"fault {n}": n + 1 for n in range(3, 10)}
    assert summary.outgoing.first_at == T0 + 3
    assert summary.outgoing.last_at == T0 + 9
    assert len(list((tmp_path / "pending").iterdir())) == 4


def test_summary_in_flight_is_not_merged_into(tmp_path: Path) -> None:
    spool = spool_in(tmp_path, max_entries=1)
    spool.add(outgoing(0))
    summary = spool.add(outgoing(1))
    spool.in_flight = summary.id

    other = spool.add(outgoing(2))

    assert other.id != summary.id
    assert spool.get(summary.id) == summary  # unchanged while being sent
    assert other.summary


def test_summary_survives_restart_and_takes_further_merges(tmp_path: Path) -> None:
    spool = spool_in(tmp_path, max_entries=1)
    spool.add(outgoing(0))
    spool.add(outgoing(1))

    restarted = spool_in(tmp_path, max_entries=1)
    restarted.add(outgoing(2, count=5))

    assert [e.outgoing.count for e in restarted.entries()] == [1, 6]


def test_leftover_temp_files_are_removed_and_corrupt_entries_set_aside(tmp_path: Path) -> None:
    spool = spool_in(tmp_path)
    good = spool.add(outgoing(1))
    pending = tmp_path / "pending"
    (pending / ".tmp-123.json").write_bytes(b'{"half')
    (pending / "0000000000001-bad-000001.json").write_bytes(b"not json")
    (pending / "0000000000002-bad-000002.json").write_text(json.dumps({"version": 99}))

    restarted = AlertSpool(tmp_path)
    problems = restarted.load()

    assert len(problems) == 2
    assert [e.id for e in restarted.entries()] == [good.id]
    assert sorted(os.listdir(pending)) == [f"{good.id}.json"]
    assert len(os.listdir(tmp_path / "failed")) == 2


def test_state_round_trip_and_corrupt_state_is_set_aside(tmp_path: Path) -> None:
    spool = spool_in(tmp_path)
    assert spool.load_state() is None

    spool.save_state({"version": 1, "groups": []})
    assert spool.load_state() == {"version": 1, "groups": []}

    (tmp_path / "state.json").write_bytes(b"{torn")
    with pytest.raises(ValueError):
        spool.load_state()
    assert spool.load_state() is None
    assert (tmp_path / "state.json.corrupt").exists()


def test_disk_full_on_add_changes_nothing_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spool_in(tmp_path)

    def full_disk(path: Path, data: bytes, *, append: bool = False) -> None:
        path.write_bytes(data[:10])  # a torn write, then the error
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("logpipe.alerts.spool.write_fsynced", full_disk)
    with pytest.raises(OSError):
        spool.add(outgoing(1))

    assert len(spool) == 0
    assert os.listdir(tmp_path / "pending") == []
