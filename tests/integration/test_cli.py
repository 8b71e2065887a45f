"""The ``logpipe`` command as ops run it: a real process, real servers, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elasticsearch import NotFoundError

from tests.integration.helpers import (
    EsTarget,
    app_line,
    es_client,
    search,
    write_pipeline,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def logpipe(*args: str) -> list[str]:
    return [sys.executable, "-m", "logpipe", *args]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        logpipe(*args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def count(es_server: EsTarget, prefix: str) -> int:
    client = es_client(es_server.env)
    return int(search(client, prefix, size=0)["hits"]["total"]["value"])


def wait_for_count(es_server: EsTarget, prefix: str, expected: int, timeout: float = 30) -> float:
    """Seconds until ``expected`` documents are searchable (polls sparingly: noida
    rebuilds its view of an index on every read)."""
    start = time.monotonic()
    while True:
        try:
            if count(es_server, prefix) >= expected:
                return time.monotonic() - start
        except NotFoundError:  # no index yet
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{expected} documents not searchable after {timeout}s")
        time.sleep(0.5)


def test_check_accepts_the_shipped_pipeline() -> None:
    result = run_cli("check", "pipelines/erp.yml")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_reports_every_problem_and_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "data_dir: /tmp/x\ninputs:\n  app:\n    paths: []\n    parser: xml\n"
        "    dataset: a\noutput:\n  elasticsearch:\n    hosts: [nope]\n"
    )
    result = run_cli("check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: inputs.app.paths" in result.stderr
    assert f"{bad}:5: inputs.app.parser" in result.stderr
    assert f"{bad}:9: output.elasticsearch.hosts" in result.stderr


def test_once_exits_zero_when_delivered_and_nonzero_when_elasticsearch_is_unreachable(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    (log_dir / "app.log").write_text(app_line("2026-11-27T08:00:00", "INFO", "hello"))
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    ok = run_cli("run", str(pipeline), "--once", env=es_server.env)
    assert ok.returncode == 0, ok.stderr
    assert "1 indexed" in ok.stderr

    with (log_dir / "app.log").open("a") as fh:
        fh.write(app_line("2026-11-27T08:00:01", "INFO", "more"))
    down = run_cli(
        "run",
        str(pipeline),
        "--once",
        "--timeout",
        "2",
        env={**es_server.env, "ES_URL": "http://127.0.0.1:9"},
    )
    assert down.returncode == 1
    assert "not delivered" in down.stderr and "did not accept" in down.stderr
    # The undelivered line was not checkpointed: the next run delivers it.
    again = run_cli("run", str(pipeline), "--once", env=es_server.env)
    assert again.returncode == 0 and "1 indexed" in again.stderr


def test_sidecar_ships_new_lines_follows_rotation_and_drains_on_sigterm(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    app_log = log_dir / "app.log"
    app_log.write_text(app_line("2026-11-27T09:00:00", "INFO", "before start"))
    proc = subprocess.Popen(
        logpipe("run", str(pipeline)),
        cwd=REPO,
        env={**os.environ, **es_server.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_count(es_server, index_prefix, 1)
        with app_log.open("a") as fh:
            for i in range(5):
                fh.write(app_line(f"2026-11-27T09:00:0{i + 1}", "INFO", f"live {i}"))
        latency = wait_for_count(es_server, index_prefix, 6)
        # Rename-and-create rotation; the app's old descriptor writes once more.
        with app_log.open("a") as old_fd:
            app_log.rename(log_dir / "app.log.1")
            app_log.write_text(app_line("2026-11-27T09:01:00", "INFO", "new file"))
            old_fd.write(app_line("2026-11-27T09:00:59", "INFO", "late write to old file"))
        wait_for_count(es_server, index_prefix, 8)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert latency < 10  # generous: this is not a timing test, see bench/ for latency
    checkpoints = json.loads((tmp_path / "data" / "checkpoints.json").read_text())
    offsets = sorted(entry["offset"] for entry in checkpoints["files"].values())
    sizes = sorted([(log_dir / "app.log.1").stat().st_size, app_log.stat().st_size])
    assert offsets == sizes

    rerun = run_cli("run", str(pipeline), "--once", env=es_server.env)
    assert rerun.returncode == 0 and "read 0 lines" in rerun.stderr
    messages = [
        h["_source"]["message"]
        for h in search(es_client(es_server.env), index_prefix)["hits"]["hits"]
    ]
    assert sorted(messages) == sorted(
        ["before start", *(f"live {i}" for i in range(5)), "new file", "late write to old file"]
    )


def test_demo_runs_the_main_job_and_shows_what_landed() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "erp-logs-2026.11.26" in out and "erp-logs-2026.11.27" in out
    assert "0 dead-lettered" in out
    # 9 ERROR/CRITICAL lines: 5 of them the same fault, so one first e-mail and one
    # digest for the other 4, plus the 4 distinct ones.
    assert "E-mails received by the SMTP catcher: 6" in out
    assert "Subject: Critical Error: Database error recording daily input\n" in out
    assert "Subject: Critical Error: Database error recording daily input (+4 more)" in out


def test_credentials_never_appear_in_output_even_at_debug(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    if "ES_API_KEY" in es_server.env or "ES_USERNAME" in es_server.env:
        pytest.skip("the target cluster has real credentials; this test sets its own")
    marker = "s3cr3t-Pa55-d0-not-print"
    secret_file = tmp_path / "es_password"
    secret_file.write_text(marker + "\n")
    (log_dir / "app.log").write_text(app_line("2026-11-27T08:00:00", "ERROR", "boom"))
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    env = {**es_server.env, "ES_USERNAME": "logpipe", "ES_PASSWORD_FILE": str(secret_file)}
    delivered = run_cli("run", str(pipeline), "--once", "--log-level", "debug", env=env)
    refused = run_cli(
        "run",
        str(pipeline),
        "--once",
        "--log-level",
        "debug",
        "--timeout",
        "1",
        env={**env, "ES_URL": "http://127.0.0.1:9"},
    )
    checked = run_cli("check", str(pipeline), env=env)
    outputs = [
        delivered.stdout,
        delivered.stderr,
        refused.stdout,
        refused.stderr,
        checked.stdout,
        checked.stderr,
    ]
    assert delivered.returncode == 0, delivered.stderr
    assert "debug" in delivered.stderr  # debug logging really was on
    assert all(marker not in text for text in outputs)
