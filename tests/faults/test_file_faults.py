"""Faults of the files: rotation (rename, copytruncate), truncation, deletion, inode reuse,
partial lines, huge and broken lines, many short-lived files."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import Scenario
from tests.faults.harness import Load, LogpipeProcess, logrotate_shift, scaled, scaled_timeout
from tests.faults.test_process_faults import assert_exactly_once

pytestmark = pytest.mark.integration

ROTATION_GLOBS = ["app.log", "app.log*"]


def start_following(scenario: Scenario, pattern: str = "app.log") -> LogpipeProcess:
    logpipe = scenario.logpipe(scenario.pipeline([str(scenario.log_dir / pattern)]))
    logpipe.start()
    return logpipe


def finish(scenario: Scenario, logpipe: LogpipeProcess, since: float, notes: str = "") -> None:
    recovery = scenario.recovery(since, 60)
    assert logpipe.terminate().code == 0, logpipe.output()[-2000:]
    assert_exactly_once(scenario, recovery, notes)


@scaled_timeout(180)
@pytest.mark.parametrize("pattern", ROTATION_GLOBS)
def test_rename_rotation_every_2s_under_load_loses_and_duplicates_nothing(
    scenario: Scenario, pattern: str
) -> None:
    app = scenario.app_log()
    app.write(50)
    logpipe = start_following(scenario, pattern)
    scenario.wait(50)
    with Load(app, rate=300):
        for _ in range(scaled(4)):
            time.sleep(2.0)
            with scenario.writer.lock:
                app.rotate_by_rename(logrotate_shift(app.path))
    finish(scenario, logpipe, time.monotonic(), f"{app.rotations} rotations, glob {pattern}")


@pytest.mark.parametrize("pattern", ROTATION_GLOBS)
def test_rotation_while_stopped_resumes_the_rotated_file_without_loss(
    scenario: Scenario, pattern: str
) -> None:
    app = scenario.app_log()
    app.write(200)
    logpipe = start_following(scenario, pattern)
    scenario.wait(200)
    assert logpipe.terminate().code == 0
    # While logpipe is stopped: more lines, rotation, lines in the new file.
    app.write(300)
    with scenario.writer.lock:
        app.rotate_by_rename(logrotate_shift(app.path))
    app.write(200)
    restarted = time.monotonic()
    logpipe.start()
    finish(scenario, logpipe, restarted, f"glob {pattern}")


@scaled_timeout(180)
@pytest.mark.parametrize("pattern", ROTATION_GLOBS)
def test_copytruncate_under_load_loses_and_duplicates_nothing(
    scenario: Scenario, pattern: str
) -> None:
    app = scenario.app_log()
    app.write(50)
    logpipe = start_following(scenario, pattern)
    scenario.wait(50)
    with Load(app, rate=300):
        for _ in range(scaled(4)):
            time.sleep(2.0)
            with scenario.writer.lock:
                # A burst the reader is still busy with when the file is copied and
                # emptied: the unread tail is only in the copy.
                app.write(1000)
                app.copytruncate(logrotate_shift(app.path))
    finish(scenario, logpipe, time.monotonic(), f"{app.rotations} copytruncates, glob {pattern}")


def test_truncation_in_place_resumes_at_the_new_content_without_loss(scenario: Scenario) -> None:
    app = scenario.app_log()
    app.write(300)
    logpipe = start_following(scenario)
    scenario.wait()
    # Shorter than before: the reader sees the file shrink.
    app.truncate()
    app.write(50)
    scenario.wait()
    # Longer than before by the time the reader looks: only the first line tells.
    app.truncate()
    app.write(600)
    scenario.wait()
    # Truncated while logpipe is stopped, then rewritten.
    assert logpipe.terminate().code == 0
    app.truncate()
    app.write(40)
    restarted = time.monotonic()
    logpipe.start()
    finish(scenario, logpipe, restarted, "3 truncations, one while stopped")


def test_file_deleted_while_unread_is_still_delivered_in_full(scenario: Scenario) -> None:
    proxy = scenario.proxy
    app = scenario.app_log()
    app.write(100)
    logpipe = scenario.logpipe(scenario.pipeline(queue_max_events=200, batch_max_events=100))
    logpipe.start()
    scenario.wait(100)
    proxy.down()
    unread = len(app.write(scaled(3000)))
    time.sleep(2.0)  # the reader is now waiting for room in the queue
    app.close()
    app.path.unlink()
    time.sleep(1.5)
    proxy.up()
    finish(scenario, logpipe, time.monotonic(), f"deleted with ~{unread} lines unread")


@pytest.mark.parametrize("first_line", ["distinct", "same_header"])
def test_inode_reuse_by_delete_and_create_loses_and_duplicates_nothing(
    scenario: Scenario, first_line: str
) -> None:
    writer = scenario.writer
    path = scenario.log_dir / "app.log"
    logpipe = start_following(scenario)
    inodes: set[int] = set()
    reused = 0
    for i in range(scaled(6)):
        header = b"# erp backend log, format 1\n" if first_line == "same_header" else b""
        data, seqs = writer.lines(50 + 40 * i)  # each file longer than the one before
        writer.append_raw(path, header + data, seqs)
        inode = path.stat().st_ino
        reused += inode in inodes
        inodes.add(inode)
        scenario.wait()
        path.unlink()
        # Once logpipe lets go of the deleted file, its inode is free for the next one.
        logpipe.wait_until(
            lambda: f"{path} (deleted)" not in logpipe.open_paths(), "deleted file released"
        )
    recovery = scenario.recovery(time.monotonic(), 60)
    assert logpipe.terminate().code == 0
    files = scaled(6)
    verdict, found = scenario.check(
        recovery_seconds=recovery, notes=f"{files} files, {reused} on a reused inode, {first_line}"
    )
    assert verdict.lost == 0 and verdict.duplicated == 0, str(verdict)
    if first_line == "same_header":
        # The header carries no number, but each of them is a line written to a new file.
        assert found.unattributed == files, (
            f"{files - found.unattributed} of {files} header lines are missing: "
            "a new file on a reused inode with the same first line gets the old file's "
            f"document ids ({verdict})"
        )


def test_partial_last_line_across_restart_is_shipped_once_and_whole(scenario: Scenario) -> None:
    writer = scenario.writer
    app = scenario.app_log()
    app.write(100)
    logpipe = start_following(scenario)
    scenario.wait(100)
    for stop in ("sigterm", "kill"):
        seq = writer.take()[0]
        line = writer.app_line(seq)
        app.write_raw(line[: len(line) // 2])
        time.sleep(1.5)  # the reader has seen the half line
        exit_ = logpipe.terminate() if stop == "sigterm" else logpipe.kill()
        assert stop == "kill" or exit_.code == 0
        app.write_raw(line[len(line) // 2 :], [seq])
        app.write(50)
        logpipe.start()
        scenario.wait()
    finish(scenario, logpipe, time.monotonic(), "half a line across SIGTERM and kill -9")


def test_huge_nul_and_invalid_utf8_lines_between_good_lines_are_each_indexed_once(
    scenario: Scenario,
) -> None:
    writer = scenario.writer
    app = scenario.app_log()
    logpipe = start_following(scenario)
    app.write(20)
    special: dict[str, int] = {}

    def odd(name: str, make: bytes) -> None:
        seq = writer.take()[0]
        special[name] = seq
        app.write_raw(make.replace(b"SEQ", b"%d" % seq), [seq])
        app.write(5)

    odd("huge", b'{"seq": SEQ, "message": "' + b"x" * (10 << 20) + b'"}\n')
    odd("nul_plain", b"seq=SEQ \x00\x00\x00 after three NULs\n")
    odd("nul_run", b"seq=SEQ " + b"\x00" * 4096 + b"\n")
    odd("nul_escaped_json", b'{"seq": SEQ, "message": "a\\u0000b"}\n')
    odd("nul_raw_json", b'{"seq": SEQ, "message": "a\x00b"}\n')
    odd("bad_utf8_plain", b"seq=SEQ caf\xe9 \xff\xfe\xc3(\n")
    odd("bad_utf8_json", b'{"seq": SEQ, "message": "caf\xe9 \xff"}\n')
    odd("crlf", b'{"seq": SEQ, "timestamp": "2026-11-27T10:00:00", "message": "crlf"}\r\n')
    odd("bom", b'\xef\xbb\xbf{"seq": SEQ, "timestamp": "2026-11-27T10:00:00"}\n')
    recovery = scenario.recovery(time.monotonic(), 60)
    assert logpipe.terminate().code == 0
    verdict, found = scenario.check(recovery_seconds=recovery, notes="10 MB, NUL, bad UTF-8")
    assert verdict.lost == 0 and verdict.duplicated == 0, str(verdict)
    tags = {name: _tags(found.special.get(seq)) for name, seq in special.items()}
    assert "_line_truncated" in tags["huge"], tags
    assert "_invalid_utf8" in tags["bad_utf8_plain"], tags


def _tags(documents: list[dict[str, Any]] | None) -> list[str]:
    return list(documents[0].get("tags") or []) if documents else []


@scaled_timeout(240)
def test_hundreds_of_files_appearing_and_disappearing_lose_and_duplicate_nothing(
    scenario: Scenario,
) -> None:
    writer = scenario.writer
    rng = random.Random(300)
    logpipe = start_following(scenario, "*.log")
    live: list[Path] = []
    for i in range(scaled(300)):
        path = scenario.log_dir / f"job-{i:05d}.log"
        writer.append(path, rng.randint(1, 6))
        live.append(path)
        if live and rng.random() < 0.3:
            writer.append(rng.choice(live), rng.randint(1, 3))
        if i % 10 == 9:
            time.sleep(0.1)
            live = _delete_opened(logpipe, live, rng, keep=20, chance=0.7)
    # The rest go too, each once logpipe has opened it.
    deadline = time.monotonic() + 60
    while live:
        assert time.monotonic() < deadline, f"logpipe never opened {live[:5]}..."
        logpipe.assert_running()
        time.sleep(0.1)
        live = _delete_opened(logpipe, live, rng, keep=0, chance=1.0)
    finish(scenario, logpipe, time.monotonic(), f"{scaled(300)} files")


def _delete_opened(
    logpipe: LogpipeProcess, live: list[Path], rng: random.Random, keep: int, chance: float
) -> list[Path]:
    """Delete files logpipe has opened (each with ``chance``), leaving at least ``keep``;
    return those still there. A file deleted before logpipe ever opened it would be
    lost by design, not by logpipe, so none is."""
    opened = logpipe.open_paths() | set(logpipe.paths_of("file_opened"))
    budget = len(live) - keep
    remaining: list[Path] = []
    for path in live:
        if budget > 0 and str(path) in opened and rng.random() < chance:
            os.unlink(path)
            budget -= 1
        else:
            remaining.append(path)
    return remaining
