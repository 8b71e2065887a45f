"""``logpipe run`` under a stricter or leaner interpreter than the test's own.

- Warnings raised as errors (``python -W error``, PYTHONWARNINGS): aiohttp,
  logpipe's HTTP layer once, warned about every bulk body over 1 MiB, and the
  client turned the warning into a ConnectionError, retried until the run
  gave up.
- aiohttp not importable: logpipe dropped it (the Elasticsearch client's async
  transport, the monitoring server) to save a sidecar 8 to 10 MiB and 0.2 s per
  start. It may still be installed beside logpipe by another package, and
  elastic-transport then imports it, which costs the memory but changes
  nothing else; blocking the import makes any code path still needing it fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logpipe.devservers import free_port
from tests.integration.helpers import EsTarget, app_line, write_pipeline

pytestmark = pytest.mark.integration

WITHOUT_AIOHTTP = (
    "import runpy, sys\n"
    "sys.modules['aiohttp'] = None  # import aiohttp raises ImportError\n"
    "runpy.run_module('logpipe', run_name='__main__', alter_sys=True)\n"
)


def run_once(
    interpreter: list[str], pipeline: Path, es: EsTarget, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *interpreter, "run", str(pipeline), "--once", "--timeout", "60", *options],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **es.env},
    )


def write_lines(log_dir: Path, count: int) -> None:
    with (log_dir / "app.log").open("w") as fh:
        for i in range(count):
            fh.write(app_line(f"2026-11-27T06:{i // 60 % 60:02d}:{i % 60:02d}", "INFO", f"n{i}"))


def test_bulk_body_over_one_mebibyte_is_delivered_with_warnings_as_errors(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    # Encoded and enriched, a 2000-document batch of these is about 1.3 MB.
    write_lines(log_dir, 3000)
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    result = run_once(["-W", "error", "-m", "logpipe"], pipeline, es_server)
    assert result.returncode == 0, result.stderr
    assert "read 3000 lines: 3000 indexed" in result.stderr


def test_run_once_with_monitoring_needs_no_aiohttp(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    write_lines(log_dir, 50)
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    with pipeline.open("a") as fh:
        fh.write(f'monitoring:\n  address: "127.0.0.1:{free_port()}"\n')
    result = run_once(["-c", WITHOUT_AIOHTTP], pipeline, es_server, "--monitoring")
    assert result.returncode == 0, result.stderr
    assert "read 50 lines: 50 indexed" in result.stderr
    assert "monitoring_listening" in result.stderr
    assert "aiohttp" not in result.stderr
