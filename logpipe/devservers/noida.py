"""Start and stop a local Elasticsearch-compatible server (noida-db) for the demo and tests.

noida-db is a development dependency (``pip install -e '.[dev]'``); nothing in
the shipping path imports this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from logpipe.devservers import free_port


def _binary() -> str:
    here = Path(sys.executable).parent / "noida-db"
    if here.exists():
        return str(here)
    found = shutil.which("noida-db")
    if found is None:
        raise RuntimeError("noida-db is not installed: pip install -e '.[dev]'")
    return found


class NoidaServer:
    """``noida-db start --only elasticsearch`` on a free loopback port with its own data dir."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = data_dir / "noida.log"

    def start(self, timeout: float = 60.0) -> NoidaServer:
        """Start the server and wait until it answers HTTP."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    _binary(),
                    "start",
                    "--only",
                    "elasticsearch",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--elasticsearch-port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"noida-db exited early; see {self._log}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"noida-db did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def __enter__(self) -> NoidaServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        self.stop()
