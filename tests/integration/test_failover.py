"""Several Elasticsearch hosts: when one dies mid-stream, the other takes over.

Two proxies in front of one test server are two nodes of one cluster: each
reaches the same data, as nodes of a real cluster do (two separate servers
would not share documents, so "nothing lost" could not be checked). logpipe
runs as the sidecar does, following the file, while lines keep coming; one
node is killed (listener closed, open connections cut) after part of the
stream is indexed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import NotFoundError

from logpipe.config import ElasticsearchConfig
from logpipe.sinks.elasticsearch.sink import make_client
from tests.integration.helpers import EsTarget, app_line, es_client, hits, search, write_pipeline
from tests.integration.proxies import TcpProxy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINES = 600


@pytest.fixture
def nodes(es_server: EsTarget) -> Iterator[tuple[TcpProxy, TcpProxy]]:
    if not es_server.url.startswith("http://"):
        pytest.skip("the node proxies forward plain HTTP; LOGPIPE_TEST_ES_URL is not http://")
    port = int(es_server.url.rsplit(":", 1)[1].rstrip("/"))
    with TcpProxy(port) as first, TcpProxy(port) as second:
        yield first, second


def indexed(es_server: EsTarget, prefix: str) -> int:
    try:
        result = search(es_client(es_server.env), prefix, size=0)
    except NotFoundError:
        return 0
    return int(result["hits"]["total"]["value"])


def wait_until(condition: object, what: str, timeout: float = 60) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


class Writer(threading.Thread):
    """Appends lines ``start..stop`` to the log, a few at a time, as an app would."""

    def __init__(self, log: Path, start: int, stop: int) -> None:
        super().__init__(daemon=True)
        self._log, self._range = log, range(start, stop)

    def run(self) -> None:
        with self._log.open("a") as fh:
            for n in self._range:
                fh.write(app_line("2026-11-27T08:00:00", "INFO", f"Daily input {n:04d}"))
                if n % 10 == 9:
                    fh.flush()
                    time.sleep(0.01)


def test_node_dying_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    nodes: tuple[TcpProxy, TcpProxy],
) -> None:
    dying, surviving = nodes
    path = write_pipeline(tmp_path, log_dir, index_prefix)
    path.write_text(
        path.read_text().replace(
            'hosts: ["${ES_URL}"]', f'hosts: ["{dying.url}", "{surviving.url}"]'
        )
    )
    log = log_dir / "app.log"
    log.touch()
    stderr = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "logpipe", "run", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        cwd=REPO,
        env={**os.environ, **es_server.env},
    )
    try:
        first = Writer(log, 0, LINES // 2)
        first.start()
        # Part of the stream indexed, through both nodes (the client takes turns).
        wait_until(lambda: indexed(es_server, index_prefix) >= LINES // 6, "first lines indexed")
        wait_until(
            lambda: dying.counts.bytes_up > 0 and surviving.counts.bytes_up > 0,
            "both nodes used",
        )
        dying.kill()
        survivor_before = surviving.counts.bytes_up
        first.join()
        second = Writer(log, LINES // 2, LINES)
        second.start()
        second.join()
        wait_until(lambda: indexed(es_server, index_prefix) >= LINES, "every line indexed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()

    result = search(es_client(es_server.env), index_prefix, size=LINES + 10)
    messages = [h["_source"]["message"] for h in hits(result)]
    assert result["hits"]["total"]["value"] == LINES
    assert sorted(messages) == [f"Daily input {n:04d}" for n in range(LINES)]
    assert surviving.counts.bytes_up > survivor_before
    # The request that met the dead node went straight to the live one: logpipe's
    # own retry with backoff (for a cluster that is down as a whole) never ran.
    output = (tmp_path / "stderr.log").read_text()
    assert "bulk_retry_scheduled" not in output, output


async def test_requests_take_turns_between_the_hosts(
    nodes: tuple[TcpProxy, TcpProxy],
) -> None:
    # Regression: the blocking client's round-robin keeps its turn per thread, and
    # a thread per request sent every request to the same host.
    first, second = nodes
    client = make_client(ElasticsearchConfig(hosts=[first.url, second.url]))
    try:
        for _ in range(4):
            await client.info()
    finally:
        await client.close()
    assert first.counts.bytes_up > 0 and second.counts.bytes_up > 0
    assert first.counts.bytes_up == second.counts.bytes_up  # two identical requests each
