"""Bulk requests over 1 MiB: aiohttp warns about them, and that must not fail them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import EsTarget, app_line, write_pipeline

pytestmark = pytest.mark.integration


def test_bulk_body_over_one_mebibyte_is_delivered_with_warnings_as_errors(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    # Regression: with warnings raised as errors (`python -W error`, PYTHONWARNINGS),
    # aiohttp's ResourceWarning about a large bytes body became a ConnectionError
    # for every such request, retried until the run gave up.
    with (log_dir / "app.log").open("w") as fh:
        for i in range(3000):
            fh.write(app_line(f"2026-11-27T06:{i // 60 % 60:02d}:{i % 60:02d}", "INFO", f"n{i}"))
    # Encoded and enriched, a 2000-document batch of these is about 1.3 MB.
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "logpipe",
            "run",
            str(pipeline),
            "--once",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **es_server.env},
    )
    assert result.returncode == 0, result.stderr
    assert "read 3000 lines: 3000 indexed" in result.stderr
