"""The fault suite's harness: numbered log lines and a real logpipe process.

* :class:`LogWriter` hands out sequence numbers and writes lines that carry
  them, the way the backend's ``JSONFormatter`` writes (plus ``"seq": n``,
  written first so that even a line that fails to parse, or a fragment of one,
  still starts with its number), or as plain text ``seq=<n> ...`` for garbage
  lines. :class:`AppLog` is one log file as a running app holds it (one
  ``O_APPEND`` descriptor), with the file operations of apps and logrotate.
* :class:`LogpipeProcess` runs ``python -m logpipe run PIPELINE`` (sidecar
  mode) as a subprocess: SIGTERM / SIGKILL, exit code and time to exit, peak
  RSS (``VmHWM``, polled and read again right before a signal).
* The verdict (lost, duplicated, recovery time) is ``verify.py``'s.

``LOGPIPE_FAULTS_SCALE`` (default 1) multiplies line counts and durations (a
soak run: 10); ``LOGPIPE_FAULTS_RESULTS`` names a file that gets one JSON line
per scenario result (``tests/faults/report.py`` turns it into a table).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCALE = float(os.environ.get("LOGPIPE_FAULTS_SCALE", "1"))
DAY = "2026-11-27"
SUMMARY = re.compile(r"read (\d+) lines: (\d+) indexed, (\d+) already indexed, (\d+) dead")


def scaled(n: int) -> int:
    """A line count (or iteration count) at the current scale."""
    return max(1, round(n * SCALE))


def scaled_seconds(seconds: float) -> float:
    """A duration at the current scale."""
    return seconds * SCALE


def scaled_timeout(seconds: float) -> pytest.MarkDecorator:
    """``pytest.mark.timeout`` for a scenario whose duration grows with the scale."""
    return pytest.mark.timeout(seconds * max(1.0, SCALE))


# -- pipeline files ----------------------------------------------------------------------


@dataclass
class PipelineSpec:
    """A pipeline file tuned for fault tests: short backoff, small batches, small queue."""

    data_dir: Path
    paths: list[str]
    index_prefix: str
    parser: str = "app_json"
    max_line_bytes: int | None = None
    request_timeout_seconds: float = 10.0
    retry_backoff_max_seconds: float = 1.0
    batch_max_events: int = 500
    batch_max_age_seconds: float = 0.2
    queue_max_events: int = 2000
    queue_max_bytes: int = 4 << 20

    def render(self) -> str:
        max_line = (
            f"\n    max_line_bytes: {self.max_line_bytes}"
            if self.max_line_bytes is not None
            else ""
        )
        return f"""\
data_dir: {self.data_dir}
inputs:
  application:
    paths: {json.dumps(self.paths)}
    parser: {self.parser}
    dataset: erp.application{max_line}
enrich:
  fields:
    service.environment: faults
  kubernetes: false
output:
  elasticsearch:
    hosts: ["${{ES_URL}}"]
    index_prefix: {self.index_prefix}
    request_timeout_seconds: {self.request_timeout_seconds}
    retry_backoff_max_seconds: {self.retry_backoff_max_seconds}
    batch:
      max_events: {self.batch_max_events}
      max_age_seconds: {self.batch_max_age_seconds}
queue:
  max_events: {self.queue_max_events}
  max_bytes: {self.queue_max_bytes}
"""

    def write(self, path: Path) -> Path:
        path.write_text(self.render())
        return path


# -- writing lines ------------------------------------------------------------------------


class LogWriter:
    """Hands out sequence numbers and remembers which lines must reach Elasticsearch.

    ``lock`` serialises every write and file operation, so a background writer
    never interleaves with a rotation done from the test thread (logrotate's own
    copy-then-truncate race is not what these tests measure).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._next = 0
        self.written: list[int] = []

    @property
    def expected(self) -> set[int]:
        return set(self.written)

    def take(self, count: int = 1) -> list[int]:
        with self.lock:
            seqs = list(range(self._next, self._next + count))
            self._next += count
            return seqs

    def app_line(self, seq: int, **extra: Any) -> bytes:
        """One line as the backend's JSONFormatter writes it, numbered."""
        micro = seq % 1_000_000
        second = seq // 1000 % 86400
        record = {
            "seq": seq,
            "timestamp": f"{DAY}T{second // 3600:02d}:{second // 60 % 60:02d}:"
            f"{second % 60:02d}.{micro:06d}",
            "level": "INFO",
            "logger": "app.api.production",
            "message": f"recorded daily input {seq}",
            "module": "daily_production",
            "function": "record_daily_input",
            "line": 88,
            **extra,
        }
        return json.dumps(record).encode() + b"\n"

    @staticmethod
    def plain_line(seq: int, payload: bytes) -> bytes:
        """A line that is not JSON; the verifier finds ``seq=<n>`` at the start of ``message``."""
        return b"seq=%d " % seq + payload + b"\n"

    def lines(self, count: int, **extra: Any) -> tuple[bytes, list[int]]:
        seqs = self.take(count)
        return b"".join(self.app_line(s, **extra) for s in seqs), seqs

    def record(self, seqs: Iterable[int]) -> None:
        with self.lock:
            self.written.extend(seqs)

    def append(self, path: Path, count: int, **extra: Any) -> list[int]:
        """Open, append ``count`` lines, close (what a cron job or a short-lived app does)."""
        with self.lock:
            data, seqs = self.lines(count, **extra)
            with path.open("ab") as fh:
                fh.write(data)
            self.record(seqs)
            return seqs

    def append_raw(self, path: Path, data: bytes, seqs: Iterable[int]) -> None:
        with self.lock, path.open("ab") as fh:
            fh.write(data)
            self.record(seqs)


class AppLog:
    """A log file as a running app holds it: one ``O_APPEND`` descriptor, kept open.

    The rotation methods do what logrotate (and the app's reaction to it) does;
    each holds the writer's lock, so a :class:`Load` thread never writes half-way
    through one.
    """

    def __init__(self, writer: LogWriter, path: Path) -> None:
        self.writer = writer
        self.path = path
        self.rotations = 0
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, count: int, **extra: Any) -> list[int]:
        with self.writer.lock:
            data, seqs = self.writer.lines(count, **extra)
            os.write(self._fd, data)
            self.writer.record(seqs)
            return seqs

    def write_raw(self, data: bytes, seqs: Iterable[int] = ()) -> None:
        with self.writer.lock:
            os.write(self._fd, data)
            self.writer.record(seqs)

    def reopen(self) -> None:
        with self.writer.lock:
            os.close(self._fd)
            self._fd = self._open()

    def close(self) -> None:
        with self.writer.lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def rotate_by_rename(self, to: Path, late_lines: int = 2) -> None:
        """``mv app.log app.log.1``; the app writes a few more lines to the old file, then
        reopens its log (a new ``app.log``), like Python's WatchedFileHandler."""
        with self.writer.lock:
            os.rename(self.path, to)
            if late_lines:
                self.write(late_lines)
            self.reopen()
            self.rotations += 1

    def copytruncate(self, copy: Path) -> None:
        """logrotate ``copytruncate``: copy the file, then truncate it; the app keeps its fd."""
        with self.writer.lock:
            shutil.copyfile(self.path, copy)
            os.truncate(self.path, 0)
            self.rotations += 1

    def truncate(self) -> None:
        """``truncate -s 0 app.log`` (or ``: > app.log``): the app keeps writing at offset 0."""
        with self.writer.lock:
            os.truncate(self.path, 0)

    def delete_and_recreate(self) -> None:
        """``rm app.log`` and the app reopens a fresh one (same name, likely the same inode)."""
        with self.writer.lock:
            os.unlink(self.path)
            self.reopen()


def logrotate_shift(path: Path, keep: int = 50) -> Path:
    """Make room for ``<path>.1`` as logrotate does: ``.k`` becomes ``.k+1``, oldest first."""
    for k in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{k}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{k + 1}"))
    return path.with_name(f"{path.name}.1")


class Load:
    """A background thread writing ``rate`` lines per second to an :class:`AppLog`."""

    def __init__(self, log: AppLog, rate: float, tick: float = 0.05) -> None:
        self._log = log
        self._per_tick = max(1, round(rate * tick))
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._tick):
                self._log.write(self._per_tick)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.error is not None:
            raise self.error


# -- the logpipe process --------------------------------------------------------------------


@dataclass(frozen=True)
class Exit:
    """How a logpipe process ended."""

    code: int
    seconds: float  # from the signal to the exit
    signal_sent: str


class LogpipeProcess:
    """``python -m logpipe run PIPELINE`` as a sidecar; restartable; output in ``log_path``."""

    def __init__(self, pipeline: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.pipeline = pipeline
        self.env = dict(env)
        self.log_path = log_path
        self.peak_rss_kib = 0
        self.exits: list[Exit] = []
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._poller: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> LogpipeProcess:
        assert not self.alive, "already running"
        with self.log_path.open("ab") as out:
            out.write(f"--- start {self.starts} ---\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "logpipe", "run", str(self.pipeline)],
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        self._poller = threading.Thread(target=self._poll_rss, args=(self._proc,), daemon=True)
        self._poller.start()
        return self

    def _poll_rss(self, proc: subprocess.Popen[bytes]) -> None:
        while proc.poll() is None:
            self._read_rss(proc.pid)
            time.sleep(0.1)

    def _read_rss(self, pid: int) -> None:
        # VmHWM is the peak resident set size of the process so far.
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024

    def terminate(self, timeout: float = 30.0) -> Exit:
        """SIGTERM; wait for the exit (SIGKILL after ``timeout``)."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> Exit:
        """SIGKILL: no shutdown at all, like the OOM killer or a node failure."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> Exit:
        proc = self._proc
        assert proc is not None, "not started"
        self._read_rss(proc.pid)
        start = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
        exit_ = Exit(code, time.monotonic() - start, sig.name)
        self.exits.append(exit_)
        self._proc = None
        if self._poller is not None:
            self._poller.join(5)
        return exit_

    def open_paths(self) -> set[str]:
        """Paths of the files the process holds open now (a deleted one ends in " (deleted)")."""
        found: set[str] = set()
        if not self.alive:
            return found
        fd_dir = Path(f"/proc/{self.pid}/fd")
        with contextlib.suppress(OSError):
            for entry in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    found.add(os.readlink(entry))
        return found

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        """Poll ``condition`` every 50 ms; fail with ``what`` if it stays false."""
        deadline = time.monotonic() + timeout
        while not condition():
            self.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s")
            time.sleep(0.05)

    def assert_running(self) -> None:
        """Fail at once, with logpipe's last words, if the process exited by itself."""
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError(
                f"logpipe exited by itself with code {self._proc.returncode}:\n"
                f"{self.output()[-3000:]}"
            )

    def stop_quietly(self) -> None:
        """For teardown: make sure nothing keeps running."""
        if self.alive:
            self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | None = None, *, last_start: bool = False) -> list[dict[str, Any]]:
        """logpipe's own JSON log records (``message`` is the event name).

        ``last_start``: only those of the latest start (an earlier start killed
        before it logged anything must not shift a count).
        """
        out: list[dict[str, Any]] = []
        text = self.output()
        if last_start:
            text = text.rpartition(f"--- start {self.starts - 1} ---\n")[2]
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if name is None or record.get("message") == name:
                    out.append(record)
        return out

    def summaries(self) -> list[dict[str, int]]:
        """The ``read N lines: ...`` summary of every run that exited by itself."""
        return [
            dict(zip(("read", "created", "duplicates", "dead_lettered"), map(int, m), strict=True))
            for m in SUMMARY.findall(self.output())
        ]

    def paths_of(self, name: str) -> list[str]:
        """``path`` of every ``name`` event logged (``file_opened``, ``file_closed``...)."""
        return [str(e.get("logpipe", {}).get("path")) for e in self.events(name)]

    def wait_for_event(
        self,
        name: str,
        timeout: float = 20.0,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        count: int = 1,
        *,
        last_start: bool = False,
    ) -> list[dict[str, Any]]:
        """Wait until logpipe logged ``count`` ``name`` events matching ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(name, last_start=last_start) if where(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"logpipe did not log {count} {name!r} within {timeout}s; "
                    f"output tail:\n{self.output()[-3000:]}"
                )
            time.sleep(0.1)
