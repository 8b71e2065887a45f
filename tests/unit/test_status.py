"""``logpipe status``: files matched to checkpoints by identity, alerts spool, output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from logpipe.checkpoints.store import CheckpointStore
from logpipe.cli import main
from logpipe.status import (
    AlertStatus,
    DeadLetterStatus,
    FileStatus,
    Status,
    alert_status,
    duration,
    file_statuses,
    human_bytes,
    render,
    to_json,
)
from tests.files import file_id_of

PIPELINE = """
data_dir: {data_dir}
inputs:
  application:
    paths: ["{logs}/app*.log"]
    parser: app_json
    dataset: erp.application
output:
  elasticsearch:
    hosts: ["http://127.0.0.1:9"]
    index_prefix: t-logs
"""


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints.json")


def statuses(logs: Path, store: CheckpointStore) -> dict[str, FileStatus]:
    rows = file_statuses({"application": [str(logs / "app*.log")]}, store.snapshot())
    by_path = {row.path: row for row in rows}
    assert len(by_path) == len(rows), rows
    return by_path


def test_file_without_checkpoint_is_new_and_all_of_it_is_lag(
    logs: Path, store: CheckpointStore
) -> None:
    (logs / "app.log").write_bytes(b"first\nsecond\n")
    (logs / "app-empty.log").write_bytes(b"")
    rows = statuses(logs, store)
    new = rows[str(logs / "app.log")]
    assert (new.input, new.state, new.offset, new.size, new.lag_bytes) == (
        "application",
        "new",
        0,
        13,
        13,
    )
    assert new.acked_at is None
    empty = rows[str(logs / "app-empty.log")]
    assert (empty.state, empty.file_id, empty.lag_bytes) == ("new", None, 0)


def test_checkpointed_file_lags_by_what_was_written_since(
    logs: Path, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"first\nsecond\n")
    store.advance(file_id_of(log), str(log), 0, 6)
    with log.open("ab") as fh:
        fh.write(b"third\n")
    row = statuses(logs, store)[str(log)]
    assert (row.state, row.offset, row.size, row.lag_bytes) == ("tracked", 6, 19, 13)
    assert row.acked_at == store.snapshot()[row.file_id or ""].acked_at


def test_rotated_file_is_found_under_its_new_name(logs: Path, store: CheckpointStore) -> None:
    log = logs / "app.log"
    log.write_bytes(b"old first\nold second\n")
    old_id = file_id_of(log)
    store.advance(old_id, str(log), 0, 10)
    os.rename(log, logs / "app.log.1")  # not matched by app*.log
    log.write_bytes(b"new first\n")
    rows = statuses(logs, store)
    rotated = rows[str(logs / "app.log.1")]
    assert (rotated.state, rotated.read_as, rotated.file_id) == ("rotated", str(log), old_id)
    assert (rotated.offset, rotated.lag_bytes) == (10, 11)
    assert rotated.input == "application"  # by the name it was read under
    assert rows[str(log)].state == "new"


def test_truncated_file_is_told_apart_from_its_new_content(
    logs: Path, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"old first\nold second\n")
    old_id = file_id_of(log)
    store.advance(old_id, str(log), 0, 21)
    with log.open("r+b") as fh:  # copytruncate's second half, same inode
        fh.truncate(0)
        fh.write(b"new first\n")
    rows = file_statuses({"application": [str(logs / "app*.log")]}, store.snapshot())
    by_state = {row.state: row for row in rows}
    assert set(by_state) == {"new", "truncated"}
    assert (by_state["truncated"].file_id, by_state["truncated"].lag_bytes) == (old_id, None)
    assert by_state["new"].lag_bytes == 10


def test_rewritten_shorter_with_the_same_first_line_is_all_lag(
    logs: Path, store: CheckpointStore
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"header\nshort\n")
    store.advance(file_id_of(log), str(log), 2, 5000)  # delivered further than it is long
    row = statuses(logs, store)[str(log)]
    assert (row.state, row.lag_bytes, row.generation) == ("truncated", 13, 2)


def test_deleted_file_is_gone(logs: Path, store: CheckpointStore) -> None:
    log = logs / "app.log"
    log.write_bytes(b"bye\n")
    store.advance(file_id_of(log), str(log), 0, 4)
    log.unlink()
    row = statuses(logs, store)[str(log)]
    assert (row.state, row.size, row.lag_bytes, row.offset) == ("gone", None, None, 4)


def test_copy_progresses_as_the_original(logs: Path, store: CheckpointStore) -> None:
    log, copy = logs / "app.log", logs / "app.log.1"
    log.write_bytes(b"line one\nline two\n")
    original = file_id_of(log)
    copy.write_bytes(log.read_bytes())
    store.register(file_id_of(copy), str(copy), 0, 0, copy_of=original)
    store.advance(original, str(copy), 0, 9)
    with log.open("r+b") as fh:
        fh.truncate(0)
    rows = file_statuses({"application": [str(logs / "app*.log")]}, store.snapshot())
    assert sorted((row.path, row.state) for row in rows) == [
        (str(log), "new"),  # emptied: nothing to identify it by yet
        (str(log), "truncated"),  # the original content's entry
        (str(copy), "copy"),
    ]
    row = next(row for row in rows if row.state == "copy")
    assert (row.offset, row.lag_bytes) == (9, 9)
    assert row.acked_at == store.snapshot()[original].acked_at


def test_copy_of_an_original_that_moved_on_has_unknown_lag(
    logs: Path, store: CheckpointStore
) -> None:
    log, copy = logs / "app.log", logs / "app.log.1"
    log.write_bytes(b"line one\n")
    copy.write_bytes(b"line one\n")
    store.register(file_id_of(copy), str(copy), 0, 0, copy_of=file_id_of(log))
    store.advance(file_id_of(log), str(log), 1, 3)
    row = statuses(logs, store)[str(copy)]
    assert (row.state, row.lag_bytes) == ("copy", None)


def test_file_matched_by_two_globs_is_listed_once(logs: Path, store: CheckpointStore) -> None:
    (logs / "app.log").write_bytes(b"x\n")
    rows = file_statuses(
        {"a": [str(logs / "*.log")], "b": [str(logs / "app.log")]}, store.snapshot()
    )
    assert [(row.input, row.path) for row in rows] == [("a", str(logs / "app.log"))]


def test_alert_spool_counts_pending_and_dates_the_oldest(tmp_path: Path) -> None:
    spool = tmp_path / "alerts"
    (spool / "pending").mkdir(parents=True)
    (spool / "failed").mkdir()
    for name in ("1700000005000-ab-000002.json", "1700000001500-ab-000001.json"):
        (spool / "pending" / name).write_text("{}")
    (spool / "pending" / ".tmp-1700000000000-ab-000009.json").write_text("")  # torn write
    (spool / "failed" / "1600000000000-ab-000001.json").write_text("{}")
    assert alert_status(spool, True) == AlertStatus(True, 2, 1, 1700000001.5)


def test_missing_alert_spool_is_empty(tmp_path: Path) -> None:
    assert alert_status(tmp_path / "alerts", False) == AlertStatus(False, 0, 0, None)


def sample_status() -> Status:
    return Status(
        pipeline="p.yml",
        data_dir="/data",
        checkpoints="/data/checkpoints.json",
        problem=None,
        files=[
            FileStatus("application", "/l/app.log", "tracked", "1:2:ab", 0, 2048, 3072, 1024, 90.0),
            FileStatus("access", "/l/a.log.1", "rotated", "1:3:cd", 0, 5, 5, 0, None, "/l/a.log"),
        ],
        dead_letters=DeadLetterStatus("/data/dead_letters.ndjson", 3, [("mapper_parsing", 3)]),
        alerts=AlertStatus(True, 2, 0, 40.0),
    )


def test_render_shows_a_table_and_the_summaries() -> None:
    lines = render(sample_status(), now=100.0)
    header = next(line for line in lines if line.startswith("INPUT"))
    assert header.split() == ["INPUT", "STATE", "OFFSET", "SIZE", "LAG", "LAST", "ACK", "PATH"]
    tracked = next(line for line in lines if line.startswith("application"))
    assert tracked.split() == [
        "application", "tracked", "2.0", "KiB", "3.0", "KiB", "1.0", "KiB", "10s", "ago",
        "/l/app.log",
    ]  # fmt: skip
    assert any("never" in line and "/l/a.log.1 (was /l/a.log)" in line for line in lines)
    assert "dead letters: 3 in /data/dead_letters.ndjson" in lines
    assert "        3  mapper_parsing" in lines
    assert "alerts: 2 e-mails pending, oldest queued 1m00s ago; 0 refused" in lines


def test_to_json_gives_exact_values_and_ages() -> None:
    doc = to_json(sample_status(), now=100.0)
    assert json.loads(json.dumps(doc)) == doc
    first = doc["files"][0]
    assert (first["offset"], first["size"], first["lag_bytes"]) == (2048, 3072, 1024)
    assert (first["acked_at"], first["seconds_since_ack"]) == (90.0, 10.0)
    assert doc["files"][1]["seconds_since_ack"] is None
    assert doc["dead_letters"]["reasons"] == [{"reason": "mapper_parsing", "count": 3}]
    assert doc["alerts"]["oldest_pending_age_seconds"] == 60.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"), (7500, "2h05m"), (270000, "3d03h")],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (12 << 20, "12.0 MiB")]
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def write_pipeline(tmp_path: Path, logs: Path) -> Path:
    path = tmp_path / "pipeline.yml"
    path.write_text(PIPELINE.format(data_dir=tmp_path / "data", logs=logs))
    return path


def test_status_command_reads_without_creating_anything(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(b"first\n")
    pipeline = write_pipeline(tmp_path, logs)
    result = CliRunner().invoke(main, ["status", str(pipeline), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [(f["state"], f["lag_bytes"]) for f in doc["files"]] == [("new", 6)]
    assert doc["checkpoints"] is None
    assert not (tmp_path / "data").exists()


def test_status_command_reports_unreadable_checkpoints(tmp_path: Path, logs: Path) -> None:
    pipeline = write_pipeline(tmp_path, logs)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "checkpoints.json").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["status", str(pipeline)])
    assert result.exit_code == 0, result.output
    assert "WARNING: unreadable checkpoints" in result.output
    assert (tmp_path / "data" / "checkpoints.json").read_bytes() == b"garbage"


def test_status_command_exits_2_on_an_invalid_pipeline(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("data_dir: /tmp/x\ninputs: {}\n")
    result = CliRunner().invoke(main, ["status", str(bad)])
    assert result.exit_code == 2
    assert "invalid pipeline" in result.output


def test_acked_at_shows_as_age(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    log.write_bytes(b"first\n")
    (tmp_path / "data").mkdir()
    store = CheckpointStore(tmp_path / "data" / "checkpoints.json")
    store.advance(file_id_of(log), str(log), 0, 6)
    store.save()
    result = CliRunner().invoke(main, ["status", str(write_pipeline(tmp_path, logs)), "--json"])
    [row] = json.loads(result.output)["files"]
    assert (row["state"], row["lag_bytes"]) == ("tracked", 0)
    assert 0 <= row["seconds_since_ack"] < 60
    assert row["acked_at"] <= time.time()
