"""Shared fixtures: real servers on loopback, started and stopped by the tests.

Elasticsearch: noida-db (Elasticsearch-compatible) on a free port with its own
data dir — or, when ``LOGPIPE_TEST_ES_URL`` is set, a real cluster
(credentials from ``LOGPIPE_TEST_ES_API_KEY`` or ``LOGPIPE_TEST_ES_USERNAME`` /
``LOGPIPE_TEST_ES_PASSWORD``, CA from ``LOGPIPE_TEST_ES_CA_CERT``). Each test
gets its own index prefix, so tests never see each other's documents.
SMTP: aiosmtpd via :class:`logpipe.devservers.smtp.RecordingSMTP`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logpipe.devservers.noida import NoidaServer
from logpipe.devservers.smtp import RecordingSMTP
from tests.integration.helpers import EsTarget


@pytest.fixture(scope="session")
def es_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EsTarget]:
    url = os.environ.get("LOGPIPE_TEST_ES_URL")
    if url:
        env = {"ES_URL": url}
        for name in ("API_KEY", "USERNAME", "PASSWORD", "CA_CERT"):
            value = os.environ.get(f"LOGPIPE_TEST_ES_{name}")
            if value:
                env[f"ES_{name}"] = value
        yield EsTarget(url, env)
        return
    server = NoidaServer(tmp_path_factory.mktemp("noida"))
    server.start()
    try:
        yield EsTarget(server.url, {"ES_URL": server.url})
    finally:
        server.stop()


@pytest.fixture
def index_prefix() -> str:
    """A prefix no other test uses (daily indices are ``<prefix>-YYYY.MM.dd``)."""
    return f"t{uuid.uuid4().hex[:10]}-logs"


@pytest.fixture
def smtp_server() -> Iterator[RecordingSMTP]:
    server = RecordingSMTP()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path
