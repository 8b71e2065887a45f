"""logpipe as a sidecar (``logpipe run PIPELINE``, no ``--once``), and what /proc says of it.

Shared by the long-running benchmarks (latency.py, memory.py, idle.py):

- :func:`pipeline_yaml` writes a pipeline like pipelines/erp.yml without alerts;
- :class:`Sidecar` starts ``python -m logpipe run PIPELINE`` as a child (stderr
  kept in a file), waits for it to connect, and stops it with SIGTERM;
- :func:`rss_kib`, :func:`hwm_kib`, :func:`cpu_seconds`, :func:`context_switches`
  read ``/proc/<pid>`` directly (stdlib only, Linux only), and
  :class:`RssSampler` reads VmRSS on a timer from a thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from servers import BenchError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Input:
    """One pipeline input: a file read by one parser."""

    name: str
    path: Path
    parser: str  # app_json, nginx
    dataset: str


def pipeline_yaml(
    inputs: list[Input], url: str, data_dir: Path, prefix: str, extra: str = ""
) -> str:
    """A pipeline like pipelines/erp.yml (static fields, no alerts) over ``inputs``.

    ``extra`` is appended as is (e.g. a ``queue:`` section).
    """
    lines = [f"data_dir: {data_dir}", "inputs:"]
    for i in inputs:
        lines += [
            f"  {i.name}:",
            f'    paths: ["{i.path}"]',
            f"    parser: {i.parser}",
            f"    dataset: {i.dataset}",
        ]
    lines += [
        "enrich:",
        "  fields:",
        "    service.environment: production",
        "    cloud.region: asia-southeast",
        "output:",
        "  elasticsearch:",
        f'    hosts: ["{url}"]',
        f"    index_prefix: {prefix}",
    ]
    return "\n".join(lines) + "\n" + extra


# -- /proc ------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    return _status_path(f"/proc/{pid}/status")


def _status_path(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def rss_kib(pid: int) -> int:
    """The process's resident set now (VmRSS), KiB."""
    return int(_status(pid)["VmRSS"].split()[0])


def hwm_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM, kept by the kernel), KiB."""
    return int(_status(pid)["VmHWM"].split()[0])


def threads(pid: int) -> int:
    return int(_status(pid)["Threads"])


def cpu_seconds(pid: int) -> float:
    """utime + stime of all threads of ``pid`` so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all live threads of ``pid``.

    Voluntary switches are the thread going to sleep: a fair count of wake-ups.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            status = _status_path(f"/proc/{pid}/task/{task}/status")
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        total += int(status["voluntary_ctxt_switches"])
        total += int(status["nonvoluntary_ctxt_switches"])
    return total


class RssSampler(threading.Thread):
    """Reads VmRSS of ``pid`` every ``interval`` s; each sample carries the current phase.

    ``samples`` holds ``(time.monotonic(), phase, rss KiB)``; set ``phase`` from
    the main thread to label what comes next. Stops at :meth:`stop` or when the
    process is gone.
    """

    def __init__(self, pid: int, interval: float = 0.5, phase: str = "") -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.phase = phase
        self.samples: list[tuple[float, str, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic(), self.phase, rss_kib(self.pid)))
            except (FileNotFoundError, ProcessLookupError, KeyError):
                return  # gone, or a zombie without VmRSS
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def of(self, phase: str) -> list[int]:
        """The RSS readings (KiB) taken in ``phase``."""
        return [kib for _, p, kib in self.samples if p == phase]


# -- the child --------------------------------------------------------------------------


class Sidecar:
    """``python -m logpipe run PIPELINE`` as a child process; a context manager.

    Leaving the block sends SIGTERM and waits (then SIGKILL): ``code`` and
    ``summary`` (logpipe's "read N lines: ..." line) are set then. ``log_level``
    is passed as ``--log-level`` when given.
    """

    def __init__(self, pipeline: Path, workdir: Path, log_level: str | None = None) -> None:
        self.pipeline = pipeline
        self.log_level = log_level
        self.stderr_path = workdir / "logpipe.stderr"
        self.started = 0.0
        self.code: int | None = None
        self.exit_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> Sidecar:
        argv = [sys.executable, "-m", "logpipe", "run", str(self.pipeline)]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        with self.stderr_path.open("wb") as err:
            self.started = time.monotonic()
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout`` s (then SIGKILL); the exit code."""
        proc = self._proc
        assert proc is not None
        if proc.poll() is None:
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.exit_seconds = time.monotonic() - signalled
        self.code = proc.returncode
        return self.code

    def check_alive(self) -> None:
        """Raise (with logpipe's last words) if the child has exited."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise BenchError(f"logpipe exited ({self._proc.returncode}):\n{self.stderr_tail()}")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stderr_tail(self, chars: int = 2000) -> str:
        return self.stderr_text()[-chars:]

    @property
    def summary(self) -> str:
        """logpipe's closing "read N lines: ..." line, once it has exited."""
        lines = [ln for ln in self.stderr_text().splitlines() if ln.startswith("read ")]
        return lines[-1] if lines else ""

    def wait_for_log(self, message: str, timeout: float = 60.0) -> float:
        """Wait until logpipe logs the event ``message``; the seconds since start."""
        deadline = time.monotonic() + timeout
        needle = f'"message":"{message}"'
        while time.monotonic() < deadline:
            self.check_alive()
            if needle in self.stderr_text():
                return time.monotonic() - self.started
            time.sleep(0.02)
        raise BenchError(f"logpipe did not log {message} in {timeout:.0f} s:\n{self.stderr_tail()}")


def mib(kib: float) -> float:
    return kib / 1024


def loadavg() -> str:
    """The machine's 1-, 5- and 15-minute load averages (``/proc/loadavg``)."""
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


class LoadWatch:
    """The load averages at start and when read: how busy others kept the machine."""

    def __init__(self) -> None:
        self.before = loadavg()

    def note(self) -> str:
        return (
            f"machine load average (1, 5, 15 min) before: {self.before}; after: {loadavg()} "
            "(other processes compete for the cores when these are well above the run's own)"
        )
