"""``logpipe status`` against what a real ``logpipe run`` left in its data directory,
and while a sidecar ``logpipe run`` is working on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from logpipe.cli import main
from tests.integration.helpers import EsTarget, access_line, app_line, write_pipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def status(pipeline: Path, env: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["status", str(pipeline), "--json"], env=env)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.output)
    return doc


def by_path(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in doc["files"]}


def run_once(pipeline: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "logpipe", "run", str(pipeline), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr


def test_status_follows_offsets_lag_and_rotation_across_runs(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    app, access = log_dir / "app.log", log_dir / "access.log"
    app.write_text("".join(app_line(f"2026-11-27T08:00:0{i}", "INFO", f"m{i}") for i in range(3)))
    access.write_text(access_line("10.0.0.1", "27/Nov/2026:08:00:00 +0000", "GET / HTTP/1.1", 200))
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)

    before = by_path(status(pipeline, es_server.env))
    assert {p: (f["state"], f["lag_bytes"]) for p, f in before.items()} == {
        str(app): ("new", app.stat().st_size),
        str(access): ("new", access.stat().st_size),
    }
    assert not (tmp_path / "data").exists()  # status only reads

    started = time.time()
    run_once(pipeline, es_server.env)
    after = by_path(status(pipeline, es_server.env))
    for path in (app, access):
        entry = after[str(path)]
        assert (entry["state"], entry["offset"], entry["lag_bytes"]) == (
            "tracked",
            path.stat().st_size,
            0,
        )
        assert started <= entry["acked_at"] <= time.time()

    appended = app_line("2026-11-27T08:00:09", "ERROR", "appended since")
    with app.open("a") as fh:
        fh.write(appended)
    access.rename(log_dir / "access.log.1")
    access.write_text(access_line("10.0.0.2", "27/Nov/2026:08:01:00 +0000", "GET /a HTTP/1.1", 404))
    now = by_path(status(pipeline, es_server.env))
    assert now[str(app)]["lag_bytes"] == len(appended.encode())
    assert now[str(app)]["acked_at"] == after[str(app)]["acked_at"]
    rotated = now[str(log_dir / "access.log.1")]
    assert (rotated["state"], rotated["read_as"], rotated["lag_bytes"]) == (
        "rotated",
        str(access),
        0,
    )
    assert (now[str(access)]["state"], now[str(access)]["lag_bytes"]) == (
        "new",
        access.stat().st_size,
    )

    table = CliRunner().invoke(main, ["status", str(pipeline)], env=es_server.env)
    assert table.exit_code == 0, table.output
    assert f"{log_dir / 'access.log.1'} (was {access})" in table.output
    assert "dead letters: 0" in table.output


def wait_for_status(
    pipeline: Path, env: dict[str, str], path: Path, check: Any, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll ``status`` until ``path``'s entry passes ``check``; every answer must be valid."""
    deadline = time.monotonic() + timeout
    while True:
        entry = by_path(status(pipeline, env)).get(str(path))
        if entry is not None and check(entry):
            return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"status of {path} never passed the check: {entry}")
        time.sleep(0.2)


def test_status_answers_while_a_sidecar_runs(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    app = log_dir / "app.log"
    app.write_text(app_line("2026-11-27T09:00:00", "INFO", "before start"))
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    proc = subprocess.Popen(
        [sys.executable, "-m", "logpipe", "run", str(pipeline)],
        cwd=REPO,
        env={**os.environ, **es_server.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = wait_for_status(
            pipeline, es_server.env, app, lambda e: e["state"] == "tracked" and e["lag_bytes"] == 0
        )
        with app.open("a") as fh:
            fh.write(app_line("2026-11-27T09:00:01", "INFO", "while running"))
        second = wait_for_status(
            pipeline, es_server.env, app, lambda e: e["offset"] == app.stat().st_size
        )
        assert second["lag_bytes"] == 0
        assert second["acked_at"] > first["acked_at"]
        assert proc.poll() is None  # reading never disturbed the running pipeline
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
