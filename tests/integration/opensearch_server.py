"""An OpenSearch-compatible server on loopback for the ``kind: opensearch`` tests.

osmem-server (PyPI ``osmem-server``) is an in-memory OpenSearch 3.x lookalike:
bulk, composable index templates, mappings, search, 409 on duplicate
``create``, 400 on mapping errors. Nothing is kept on disk, so a stopped server
comes back empty. It exits by itself when the test process goes away.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from opensearchpy import NotFoundError, OpenSearch
from osmem_server import OsmemServer  # type: ignore[import-untyped]


class OpenSearchTestServer:
    """One osmem-server process; ``port`` chooses its port (any free one if None)."""

    def __init__(self, port: int | None = None) -> None:
        self._addr = f"127.0.0.1:{port}" if port is not None else None
        self._server: OsmemServer | None = None
        self.url = ""

    def start(self) -> OpenSearchTestServer:
        # Japanese analysis off: nothing here needs it, and it slows the start.
        self._server = OsmemServer.start(japanese=False, addr=self._addr, startup_timeout=30)
        self.url = self._server.url
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # OsmemServer.close leaves its end of the stdout pipe open (a ResourceWarning).
        if server.process.stdout is not None:
            server.process.stdout.close()

    def client(self) -> OpenSearch:
        return OpenSearch([self.url], timeout=60)

    def __enter__(self) -> OpenSearchTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def search_all(client: OpenSearch, prefix: str, query: dict[str, Any] | None = None) -> list[Any]:
    """Every hit in the daily indices of ``prefix`` (after a refresh); none if none exist."""
    try:
        client.indices.refresh(index=f"{prefix}-*")
        result = client.search(
            index=f"{prefix}-*",
            body={"query": query or {"match_all": {}}, "size": 1000},
        )
    except NotFoundError:
        return []
    return list(result["hits"]["hits"])
