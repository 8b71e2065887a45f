"""The ``kind: opensearch`` output: opensearch-py behind the client surface the sink uses.

The Elasticsearch client refuses to talk to an OpenSearch server (it checks the
product), so ``ElasticsearchSink`` is handed :class:`OpenSearchClient` instead (awaited
in threads, as the Elasticsearch client is: ``logpipe.sinks.threaded``):
the same calls (``info``, ``bulk``, ``indices.get_index_template`` /
``put_index_template``, ``close``, and ``RetentionKeeper``'s ``indices`` and
``ilm`` calls), answers with a ``.body``, and failures
raised as the *elasticsearch* exceptions the sink already maps. Retrying,
dead-lettering and checkpointing therefore stay the sink's, unchanged::

    opensearchpy.ConnectionTimeout      -> elastic_transport.ConnectionTimeout   (retryable)
    opensearchpy.SSLError, or a ConnectionError from a failed TLS handshake
                                        -> elastic_transport.TlsError            (retryable)
    opensearchpy.ConnectionError        -> elastic_transport.ConnectionError     (retryable)
    opensearchpy.TransportError, status -> elasticsearch.ApiError (or its 400/401/403/404/409
                                           subclass), same status and body; the sink retries
                                           429/5xx and stops on 401/403
    opensearchpy.TransportError, no status / SerializationError
                                        -> elastic_transport.TransportError      (retryable)

opensearch-py is an optional extra (``pip install logpipe[opensearch]``) and is
imported only when :func:`make_opensearch_client` is called.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from elastic_transport import (
    ApiResponseMeta,
    ConnectionTimeout,
    HttpHeaders,
    NodeConfig,
    TlsError,
    TransportError,
)
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch import ApiError
from elasticsearch.exceptions import HTTP_EXCEPTIONS

from logpipe.config import ElasticsearchConfig
from logpipe.sinks.threaded import AwaitedClient
from logpipe.sinks.tls import follow_context, tls_context

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger("logpipe.opensearch")

# A dead node is tried again, alone, after 1 s, doubling up to 32 s: as the
# Elasticsearch client does for kind elasticsearch (1 s doubling to 30 s).
_DEAD_NODE_SECONDS = 1.0
_DEAD_NODE_DOUBLINGS = 5


@dataclass(frozen=True, slots=True)
class OpenSearchResponse:
    """A decoded answer, read as the Elasticsearch client's are: ``.body`` or ``[key]``."""

    body: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.body[key]


class OpenSearchIndices:
    """``indices`` calls: the sink's (template) and ``RetentionKeeper``'s (settings, delete)."""

    def __init__(self, client: OpenSearch) -> None:
        self._client = client

    def get_index_template(self, *, name: str) -> OpenSearchResponse:
        return _answer(lambda: self._client.indices.get_index_template(name=name))

    def put_index_template(self, *, name: str, **template: Any) -> OpenSearchResponse:
        return _answer(lambda: self._client.indices.put_index_template(name=name, body=template))

    def get_settings(
        self, *, index: str, expand_wildcards: str, flat_settings: bool
    ) -> OpenSearchResponse:
        return _answer(
            lambda: self._client.indices.get_settings(
                index=index, expand_wildcards=expand_wildcards, flat_settings=flat_settings
            )
        )

    def put_settings(self, *, index: str, settings: dict[str, Any]) -> OpenSearchResponse:
        return _answer(lambda: self._client.indices.put_settings(index=index, body=settings))

    def delete(self, *, index: str, expand_wildcards: str) -> OpenSearchResponse:
        return _answer(
            lambda: self._client.indices.delete(index=index, expand_wildcards=expand_wildcards)
        )


class OpenSearchIlm:
    """OpenSearch has no ILM (its Index State Management is another API).

    ``get_status`` answers as an Elasticsearch without ILM does (404), without a
    request: ``RetentionKeeper`` then deletes expired daily indices itself.
    """

    def get_status(self) -> OpenSearchResponse:
        raise _no_ilm()

    def get_lifecycle(self, *, name: str) -> OpenSearchResponse:
        raise _no_ilm()

    def put_lifecycle(self, *, name: str, policy: dict[str, Any]) -> OpenSearchResponse:
        raise _no_ilm()


def _no_ilm() -> ApiError:
    return _api_error(404, "OpenSearch has no index lifecycle management (ILM) API", None)


class OpenSearchClient:
    """An ``OpenSearch`` client answering and failing the way ``Elasticsearch`` does."""

    def __init__(self, client: OpenSearch) -> None:
        self._client = client
        self.indices = OpenSearchIndices(client)
        self.ilm = OpenSearchIlm()

    def info(self) -> OpenSearchResponse:
        return _answer(self._client.info)

    def bulk(self, *, operations: bytes, filter_path: list[str]) -> OpenSearchResponse:
        """Send a prebuilt NDJSON body.

        opensearch-py sends ``bytes`` ending in a newline as they are: its bulk
        helper only joins non-strings, its serializer returns strings and bytes
        unchanged, and the transport's ``str.encode`` does not apply to bytes.
        """
        return _answer(lambda: self._client.bulk(body=operations, filter_path=filter_path))

    def close(self) -> None:
        self._client.close()
        # opensearch-py closes only the hosts in rotation: one marked dead would
        # keep its HTTP session (and sockets) open. Closing twice is harmless.
        pool = self._client.transport.connection_pool
        for connection in getattr(pool, "orig_connections", ()):
            connection.close()


def make_opensearch_client(config: ElasticsearchConfig) -> AwaitedClient:
    """An opensearch-py client with the same policy as ``make_client`` has for Elasticsearch.

    No retries of answers (429, 5xx) or timeouts in the client: the sink retries
    them per item, with backoff. A connection error sends the request at once
    to the next host, and the dead one waits out of rotation. Sniffing stays
    off. ``api_key`` is sent as ``Authorization: ApiKey <api_key>``, which the
    OpenSearch Security plugin accepts from OpenSearch 3.7 on (earlier servers
    answer 401, which stops logpipe with a clear error).
    """
    try:
        from opensearchpy import OpenSearch
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ValueError(
            "output.elasticsearch.kind is opensearch, but opensearch-py is not installed: "
            "pip install 'logpipe[opensearch]'"
        ) from exc
    _quiet_library_logs()
    kwargs: dict[str, Any] = {
        "timeout": config.request_timeout_seconds,
        "max_retries": len(config.hosts) - 1,
        "retry_on_status": (),
        "retry_on_timeout": False,
        "dead_timeout": _DEAD_NODE_SECONDS,
        "timeout_cutoff": _DEAD_NODE_DOUBLINGS,
        "http_compress": False,
    }
    if config.api_key is not None:
        kwargs["headers"] = {"authorization": f"ApiKey {config.api_key.get_secret_value()}"}
    elif config.username is not None:
        password = config.password.get_secret_value() if config.password else ""
        kwargs["http_auth"] = (config.username, password)
    if any(h.startswith("https://") for h in config.hosts):
        kwargs["ssl_context"] = tls_context(config)
        kwargs["connection_class"] = _context_only_connection()
    return AwaitedClient(OpenSearchClient(OpenSearch(list(config.hosts), **kwargs)))


def _context_only_connection() -> type[Any]:
    """opensearch-py's urllib3 connection, connecting with ``ssl_context`` as it is."""
    from opensearchpy import Urllib3HttpConnection

    class ContextOnlyConnection(Urllib3HttpConnection):
        def _create_urllib3_pool(self) -> None:
            super()._create_urllib3_pool()
            follow_context(self.pool)

    return ContextOnlyConnection


def _quiet_library_logs() -> None:
    """Keep opensearch-py's own log lines off stderr.

    It logs every request at INFO and every failed one at WARNING with a
    traceback; logpipe configures only its own loggers, so Python's last-resort
    handler would print those unformatted. The sink logs what matters itself.
    """
    library = logging.getLogger("opensearch")
    if not library.handlers:
        library.addHandler(logging.NullHandler())


def _answer(call: Callable[[], Any]) -> OpenSearchResponse:
    """Run one opensearch-py call; its answer wrapped, its failure translated."""
    from opensearchpy.exceptions import OpenSearchException

    try:
        body = call()
    except OpenSearchException as exc:
        error = translate_error(exc)
        if isinstance(error, TransportConnectionError | ConnectionTimeout):
            # The sink reports only the error's type; the cause (refused, which
            # host, "certificate verify failed") is only here.
            log.warning("opensearch_request_failed", extra={"reason": str(exc)[:500]})
        raise error from exc
    return OpenSearchResponse(body if isinstance(body, dict) else {})


def translate_error(exc: Exception) -> Exception:
    """The elasticsearch-py exception the sink maps, for an opensearch-py one."""
    from opensearchpy import exceptions as os_errors

    if isinstance(exc, os_errors.ConnectionError):
        # ``error`` is the HTTP library's own text, e.g. "[SSL:
        # CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch ...".
        text = str(exc.error)
        if isinstance(exc, os_errors.ConnectionTimeout):
            return ConnectionTimeout(text, errors=(exc,))
        if isinstance(exc, os_errors.SSLError) or _is_tls_failure(exc):
            return TlsError(text, errors=(exc,))
        return TransportConnectionError(text, errors=(exc,))
    if isinstance(exc, os_errors.TransportError) and isinstance(exc.status_code, int):
        return _api_error(exc.status_code, exc.error, exc.info)
    return TransportError(f"{type(exc).__name__}: {exc}", errors=(exc,))


def _is_tls_failure(exc: Exception) -> bool:
    """Whether opensearch-py's ConnectionError hides a failed handshake (it wraps most)."""
    from urllib3.exceptions import SSLError as Urllib3SSLError

    cause = getattr(exc, "info", None)
    return isinstance(cause, Urllib3SSLError | ssl.SSLError)


def _api_error(status: int, error: Any, body: Any) -> ApiError:
    """An answer refused with ``status``, as elasticsearch-py raises it."""
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig(scheme="http", host="opensearch", port=0),
    )
    message = error if isinstance(error, str) else str(error)
    cls = HTTP_EXCEPTIONS.get(status, ApiError)
    return cls(message, meta=meta, body=body if isinstance(body, dict | str) else None)
