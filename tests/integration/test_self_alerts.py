"""logpipe e-mails ops about its own trouble, end to end through a real SMTP server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from logpipe.devservers import free_port
from logpipe.devservers.smtp import RecordingSMTP
from logpipe.pipeline import Pipeline
from tests.integration.helpers import app_line, load, write_pipeline

pytestmark = pytest.mark.integration


async def test_elasticsearch_unreachable_beyond_threshold_emails_ops_once(
    tmp_path: Path, log_dir: Path, index_prefix: str, smtp_server: RecordingSMTP
) -> None:
    (log_dir / "app.log").write_text(app_line("2026-11-27T03:00:00", "INFO", "waiting"))
    path = write_pipeline(tmp_path, log_dir, index_prefix, smtp_port=smtp_server.port)
    path.write_text(
        path.read_text() + "    self_alerts:\n      elasticsearch_unreachable_seconds: 1\n"
    )
    nobody = f"http://127.0.0.1:{free_port()}"
    pipeline = Pipeline(load(path, {"ES_URL": nobody}), {})
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run_forever(stop))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not smtp_server.messages and loop.time() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(6)  # a second watch period must not send it again
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    (message,) = smtp_server.messages
    parsed = message.parsed()
    assert "Elasticsearch unreachable" in str(parsed["Subject"])
    body = parsed.get_body(("plain",))
    assert body is not None and nobody.split("//")[1] in body.get_content()
