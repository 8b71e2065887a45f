"""Fixtures of the fault suite: one noida-db for the package, one proxy and scenario per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from logpipe.devservers.noida import NoidaServer
from tests.faults.harness import (
    REPO,
    SCALE,
    SUMMARY,
    AppLog,
    LogpipeProcess,
    LogWriter,
    PipelineSpec,
)
from tests.faults.proxy import FaultProxy
from tests.faults.verify import Delivery, Indexed, Verifier


@pytest.fixture(scope="package")
def noida(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoidaServer]:
    """The real server behind every proxy (faults are the proxy's job, not the server's)."""
    server = NoidaServer(tmp_path_factory.mktemp("faults-noida"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class OnceRun:
    """``logpipe run --once`` over what is left: its exit code and its summary line."""

    code: int
    read: int
    created: int
    duplicates: int
    dead_lettered: int
    output: str


@dataclass
class Scenario:
    """Everything one fault scenario needs, cleaned up after the test."""

    name: str
    tmp: Path
    log_dir: Path
    data_dir: Path
    prefix: str
    es_url: str
    proxy: FaultProxy
    writer: LogWriter = field(default_factory=LogWriter)
    processes: list[LogpipeProcess] = field(default_factory=list)
    app_logs: list[AppLog] = field(default_factory=list)
    verifier: Verifier = field(init=False)

    def __post_init__(self) -> None:
        self.verifier = Verifier(self.es_url, self.prefix, self.data_dir)

    def spec(self, paths: list[str] | None = None, **overrides: Any) -> PipelineSpec:
        spec = PipelineSpec(
            data_dir=self.data_dir,
            paths=paths or [str(self.log_dir / "app.log")],
            index_prefix=self.prefix,
        )
        for key, value in overrides.items():
            setattr(spec, key, value)
        return spec

    def pipeline(self, paths: list[str] | None = None, **overrides: Any) -> Path:
        return self.spec(paths, **overrides).write(self.tmp / "pipeline.yml")

    def logpipe(self, pipeline: Path | None = None, *, direct: bool = False) -> LogpipeProcess:
        """A logpipe process (not started) talking to the proxy, or ``direct`` to noida."""
        process = LogpipeProcess(
            pipeline or self.pipeline(),
            {"ES_URL": self.es_url if direct else self.proxy.url},
            self.tmp / f"logpipe-{len(self.processes)}.log",
        )
        self.processes.append(process)
        return process

    def wait(self, expected: int | None = None, timeout: float = 60.0) -> float:
        """Wait until ``expected`` (default: every line written) documents are indexed,
        failing at once if a logpipe process died; seconds waited. ``timeout`` grows
        with the scale."""
        count = len(self.writer.expected) if expected is None else expected
        return self.verifier.wait_for(count, timeout * max(1.0, SCALE), running=self.processes)

    def recovery(self, since: float, timeout: float = 60.0) -> float | None:
        """Seconds from ``since`` until every line written is indexed; None on timeout."""
        return self.verifier.wait_quietly(
            len(self.writer.expected), timeout * max(1.0, SCALE), since, running=self.processes
        )

    def app_log(self, name: str = "app.log") -> AppLog:
        log = AppLog(self.writer, self.log_dir / name)
        self.app_logs.append(log)
        return log

    def run_once(self, pipeline: Path | None = None, timeout: float = 60.0) -> OnceRun:
        """Read what is left with ``--once`` straight against noida (no faults)."""
        result = subprocess.run(
            [
                *(sys.executable, "-m", "logpipe", "run"),
                str(pipeline or self.tmp / "pipeline.yml"),
                *("--once", "--timeout", str(timeout)),
            ],
            cwd=REPO,
            env={**os.environ, "ES_URL": self.es_url},
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        match = SUMMARY.search(result.stderr)
        read, created, duplicates, dead = (int(g) for g in match.groups()) if match else (-1,) * 4
        return OnceRun(result.returncode, read, created, duplicates, dead, result.stderr)

    @property
    def peak_rss_mib(self) -> float | None:
        peaks = [p.peak_rss_mib for p in self.processes if p.peak_rss_kib]
        return max(peaks) if peaks else None

    def check(
        self, *, recovery_seconds: float | None = None, notes: str = ""
    ) -> tuple[Delivery, Indexed]:
        """The verdict on this scenario, recorded in ``$LOGPIPE_FAULTS_RESULTS`` if set."""
        verdict, found = self.verifier.check(
            self.name,
            self.writer.expected,
            recovery_seconds=recovery_seconds,
            peak_rss_mib=self.peak_rss_mib,
            notes=notes,
        )
        verdict.record()
        return verdict, found

    def close(self) -> None:
        for process in self.processes:
            process.stop_quietly()
        for log in self.app_logs:
            log.close()
        self.verifier.drop_indices()
        self.verifier.close()


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, tmp_path: Path, noida: NoidaServer
) -> Iterator[Scenario]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    proxy = FaultProxy(noida.url, seed=zlib.crc32(request.node.name.encode())).start()
    scenario = Scenario(
        name=request.node.name.removeprefix("test_"),
        tmp=tmp_path,
        log_dir=log_dir,
        data_dir=tmp_path / "data",
        prefix=f"f{uuid.uuid4().hex[:10]}-logs",
        es_url=noida.url,
        proxy=proxy,
    )
    try:
        yield scenario
    finally:
        scenario.close()
        proxy.stop()
