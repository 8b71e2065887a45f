"""Faults of the logpipe process itself: kill -9, bad checkpoints, SIGTERM, restarts, disk full.

Each scenario writes numbered lines, breaks something, repairs it, and then
asserts that every line written is in Elasticsearch exactly once.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Scenario
from tests.faults.harness import LogpipeProcess, scaled, scaled_timeout

pytestmark = pytest.mark.integration


def assert_exactly_once(scenario: Scenario, recovery: float | None = None, notes: str = "") -> None:
    """Every line written is indexed once, and a further ``--once`` run adds nothing."""
    rerun = scenario.run_once()
    verdict, _ = scenario.check(recovery_seconds=recovery, notes=notes)
    assert verdict.lost == 0 and verdict.duplicated == 0, str(verdict)
    assert rerun.code == 0 and rerun.created == 0, rerun.output[-2000:]


def shipping(scenario: Scenario, pipeline: Path) -> tuple[Path, LogpipeProcess]:
    """A logpipe process that has indexed the first 100 lines of app.log."""
    log = scenario.log_dir / "app.log"
    logpipe = scenario.logpipe(pipeline)
    scenario.writer.append(log, 100)
    logpipe.start()
    scenario.wait(100)
    return log, logpipe


@scaled_timeout(240)
def test_kill9_during_inflight_bulk_loses_and_duplicates_nothing(scenario: Scenario) -> None:
    writer, proxy = scenario.writer, scenario.proxy
    log, logpipe = shipping(scenario, scenario.pipeline(batch_max_events=200))

    # The server committed the bulk; its answer is held when the process dies.
    proxy.delay(30, forward_first=True, count=1)
    writer.append(log, 300)
    assert proxy.wait_holding(20), "no bulk request was held"
    logpipe.kill()

    # The server has not seen the bulk yet when the process dies; it arrives
    # there 6 s later, after the restarted process has sent the same lines.
    logpipe.start()
    proxy.delay(6, forward_first=False, count=1)
    writer.append(log, 300)
    assert proxy.wait_holding(20), "no bulk request was held"
    logpipe.kill()

    # kill -9 at random moments, new lines every time.
    rng = random.Random(20261127)
    proxy.pass_through()
    for _ in range(scaled(4)):
        logpipe.start()
        writer.append(log, rng.randint(200, 3000))
        time.sleep(rng.uniform(0.3, 3.0))
        logpipe.kill()

    restarted = time.monotonic()
    logpipe.start()
    recovery = scenario.recovery(restarted, 90)
    # Everything may be indexed before this last start has even connected: let it
    # come up, so that what is checked is a clean stop of a running sidecar.
    # (Counted in this start's output: a start killed before it connected, as the
    # random kills allow, made a count over all starts wait for one too many.)
    logpipe.wait_for_event("elasticsearch_connected", last_start=True)
    assert logpipe.terminate().code == 0, logpipe.output()[-2000:]
    assert_exactly_once(scenario, recovery, notes=f"{logpipe.starts} starts, kill -9 each")


def _torn(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _empty(good: bytes) -> bytes:
    return b""


def _garbage(good: bytes) -> bytes:
    return bytes(random.Random(7).randrange(256) for _ in range(300))


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "torn": _torn,
    "empty": _empty,
    "garbage": _garbage,
}


@pytest.mark.parametrize("damage", [*CORRUPTIONS, "torn_main_and_prev"])
def test_damaged_checkpoint_at_start_loses_and_duplicates_nothing(
    scenario: Scenario, damage: str
) -> None:
    log = scenario.log_dir / "app.log"
    writer = scenario.writer
    logpipe = scenario.logpipe()
    writer.append(log, scaled(300))
    logpipe.start()
    scenario.wait()
    writer.append(log, scaled(100))
    time.sleep(1.5)
    assert logpipe.terminate().code == 0

    checkpoints = scenario.data_dir / "checkpoints.json"
    good = checkpoints.read_bytes()
    corrupt = CORRUPTIONS.get(damage, CORRUPTIONS["torn"])
    checkpoints.write_bytes(corrupt(good))
    if damage == "torn_main_and_prev":
        prev = checkpoints.with_name("checkpoints.json.prev")
        prev.write_bytes(CORRUPTIONS["garbage"](good))

    writer.append(log, scaled(300))
    restarted = time.monotonic()
    logpipe.start()
    recovery = scenario.recovery(restarted, 60)
    assert logpipe.terminate().code == 0
    assert "checkpoint_corrupt" in logpipe.output()
    assert_exactly_once(scenario, recovery, notes=f"checkpoint {damage}")


def test_sigterm_while_elasticsearch_is_down_exits_promptly_and_loses_nothing(
    scenario: Scenario,
) -> None:
    log = scenario.log_dir / "app.log"
    writer, proxy = scenario.writer, scenario.proxy
    logpipe = scenario.logpipe()
    writer.append(log, 200)
    logpipe.start()
    scenario.wait(200)

    # Down while running: a batch is being retried when SIGTERM comes.
    proxy.down()
    writer.append(log, scaled(1000))
    time.sleep(2.0)
    running = logpipe.terminate(timeout=30)
    # Down from the start: the process is still waiting for Elasticsearch to answer.
    logpipe.start()
    time.sleep(2.0)
    starting = logpipe.terminate(timeout=30)
    for exit_ in (running, starting):
        assert exit_.code == 0 and exit_.seconds < 10, (exit_, logpipe.output()[-2000:])

    proxy.up()
    writer.append(log, 100)
    restarted = time.monotonic()
    logpipe.start()
    recovery = scenario.recovery(restarted, 60)
    assert logpipe.terminate().code == 0
    assert_exactly_once(
        scenario,
        recovery,
        notes=f"SIGTERM exits took {running.seconds:.1f} s and {starting.seconds:.1f} s",
    )


def test_sigterm_while_a_bulk_request_hangs_exits_promptly_and_loses_nothing(
    scenario: Scenario,
) -> None:
    # The bulk request runs in the client's worker thread, which cannot be
    # interrupted: the shutdown must not wait for the request to time out.
    writer, proxy = scenario.writer, scenario.proxy
    log, logpipe = shipping(scenario, scenario.pipeline(request_timeout_seconds=120.0))

    proxy.delay(300, forward_first=False, count=1)  # held, never forwarded before the exit
    writer.append(log, 300)
    assert proxy.wait_holding(20), "no bulk request was held"
    stopped = logpipe.terminate(timeout=60)
    assert stopped.seconds < 15, (stopped, logpipe.output()[-2000:])
    assert "were not acknowledged before exit" in logpipe.output()

    proxy.pass_through()
    restarted = time.monotonic()
    logpipe.start()
    recovery = scenario.recovery(restarted, 60)
    assert logpipe.terminate().code == 0
    assert_exactly_once(scenario, recovery, notes=f"SIGTERM exit took {stopped.seconds:.1f} s")


@scaled_timeout(240)
def test_restart_in_the_middle_of_a_large_backlog_loses_and_duplicates_nothing(
    scenario: Scenario,
) -> None:
    log = scenario.log_dir / "app.log"
    total = scaled(30000)
    for _ in range(total // 1000):
        scenario.writer.append(log, 1000)
    logpipe = scenario.logpipe(
        scenario.pipeline(batch_max_events=2000, queue_max_events=10000, queue_max_bytes=16 << 20)
    )
    logpipe.start()
    scenario.wait(2000, timeout=60)  # well under way, far from done
    first = logpipe.terminate()
    assert first.code == 0 and first.seconds < 10, first
    created = logpipe.summaries()[-1]["created"]
    assert 0 < created < total, f"not in the middle of the backlog: {created} of {total} indexed"
    restarted = time.monotonic()
    logpipe.start()
    recovery = scenario.recovery(restarted, 120)
    assert logpipe.terminate().code == 0
    assert_exactly_once(
        scenario,
        recovery,
        notes=f"SIGTERM after {created} of {total} lines, exit took {first.seconds:.1f} s",
    )


@pytest.fixture
def full_disk(scenario: Scenario) -> Iterator[Path]:
    """The data directory on its own 64 KiB tmpfs, so that it can be filled."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the data directory needs root")
    scenario.data_dir.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(scenario.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield scenario.data_dir / "filler"
    finally:
        scenario.close()  # nothing may hold the mount when it goes
        subprocess.run(["umount", "-l", str(scenario.data_dir)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; bytes written."""
    written = 0
    with path.open("wb", buffering=0) as fh:
        try:
            while True:
                written += fh.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return written


@scaled_timeout(180)
def test_disk_full_for_the_data_directory_neither_crashes_nor_loses_nor_duplicates(
    scenario: Scenario, full_disk: Path
) -> None:
    log = scenario.log_dir / "app.log"
    writer = scenario.writer
    logpipe = scenario.logpipe()
    writer.append(log, 200)
    logpipe.start()
    scenario.wait(200)
    time.sleep(1.0)  # a checkpoint is on disk

    fill(full_disk)
    writer.append(log, 500)
    scenario.wait()
    time.sleep(1.5)
    logpipe.assert_running()
    assert "checkpoint_save_failed" in logpipe.output()

    # kill -9 while the disk is full: the checkpoint on disk is behind.
    logpipe.kill()
    logpipe.start()
    writer.append(log, 300)
    scenario.wait()
    time.sleep(1.5)
    logpipe.assert_running()

    full_disk.unlink()
    writer.append(log, 100)
    scenario.wait()
    time.sleep(1.5)
    assert logpipe.terminate().code == 0

    writer.append(log, 100)
    restarted = time.monotonic()
    logpipe.start()
    recovery = scenario.recovery(restarted, 60)
    assert logpipe.terminate().code == 0
    assert_exactly_once(scenario, recovery, notes="64 KiB tmpfs data_dir filled, then freed")
