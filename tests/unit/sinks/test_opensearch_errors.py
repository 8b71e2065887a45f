"""opensearch-py's failures become the elasticsearch-py ones the sink already maps.

The last test runs each translation through ``ElasticsearchSink._call``: what an
OpenSearch server answers must be retried or fatal exactly as the same answer
from Elasticsearch is.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    ConflictError,
    NotFoundError,
)
from opensearchpy import exceptions as os_errors

from logpipe.config import ElasticsearchConfig
from logpipe.errors import FatalSinkError, RetryableSinkError
from logpipe.sinks.deadletter import DeadLetterFile
from logpipe.sinks.elasticsearch.sink import ElasticsearchSink
from logpipe.sinks.opensearch import OpenSearchIlm, translate_error

REFUSED_BODY = {
    "error": {
        "type": "cluster_block_exception",
        "reason": "index [x] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded];",
        "root_cause": [{"type": "cluster_block_exception", "reason": "blocked"}],
    },
    "status": 429,
}


def answered(status: int, error: str = "some_exception", body: Any = None) -> Exception:
    """An opensearch-py error for an HTTP answer, as its connection raises it."""
    cls = os_errors.HTTP_EXCEPTIONS.get(status, os_errors.TransportError)
    return cls(status, error, body)


def connection_failed() -> Exception:
    return os_errors.ConnectionError("N/A", "Cannot connect to host 127.0.0.1:1", OSError(111))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BadRequestError),
        (401, AuthenticationException),
        (403, AuthorizationException),
        (404, NotFoundError),
        (409, ConflictError),
        (413, ApiError),
        (429, ApiError),
        (500, ApiError),
        (503, ApiError),
    ],
)
def test_an_answer_becomes_the_api_error_elasticsearch_py_raises_for_its_status(
    status: int, expected: type[ApiError]
) -> None:
    error = translate_error(answered(status, "cluster_block_exception", REFUSED_BODY))
    assert type(error) is expected
    assert isinstance(error, ApiError)
    assert error.meta.status == status
    assert error.message == "cluster_block_exception"
    assert error.body == REFUSED_BODY


def test_an_answer_without_a_json_body_keeps_its_status() -> None:
    error = translate_error(answered(502, "<html>Bad Gateway</html>", None))
    assert isinstance(error, ApiError)
    assert (error.meta.status, error.body) == (502, None)
    assert "Bad Gateway" in error.message


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            lambda: os_errors.ConnectionTimeout("TIMEOUT", "read timed out", TimeoutError()),
            ConnectionTimeout,
        ),
        (lambda: os_errors.SSLError("N/A", "certificate verify failed", OSError()), TlsError),
        # opensearch-py wraps a failed handshake in a plain ConnectionError.
        (
            lambda: os_errors.ConnectionError(
                "N/A", "certificate verify failed", ssl.SSLCertVerificationError(1, "failed")
            ),
            TlsError,
        ),
        (connection_failed, TransportConnectionError),
    ],
)
def test_connection_failures_become_transport_errors(
    raised: Callable[[], Exception], expected: type[Exception]
) -> None:
    original = raised()
    error = translate_error(original)
    assert type(error) is expected
    assert isinstance(error, TransportError)
    # The cause stays reachable for a debugger, as elastic-transport keeps it.
    assert error.errors == (original,)


@pytest.mark.parametrize(
    "raised",
    [
        lambda: os_errors.TransportError("N/A", "connection reset", None),
        lambda: os_errors.SerializationError("not json", ValueError("bad")),
    ],
)
def test_failures_without_an_answer_become_plain_transport_errors(
    raised: Callable[[], Exception],
) -> None:
    error = translate_error(raised())
    assert type(error) is TransportError


def test_no_ilm_on_opensearch_reads_as_an_elasticsearch_without_ilm() -> None:
    with pytest.raises(NotFoundError) as caught:
        OpenSearchIlm().get_status()
    assert caught.value.meta.status == 404


@pytest.mark.parametrize(
    ("raised", "outcome", "text"),
    [
        (connection_failed, RetryableSinkError, "ConnectionError"),
        (
            lambda: os_errors.ConnectionTimeout("TIMEOUT", "timed out", TimeoutError()),
            RetryableSinkError,
            "ConnectionTimeout",
        ),
        (lambda: answered(429), RetryableSinkError, "HTTP 429"),
        (lambda: answered(503), RetryableSinkError, "HTTP 503"),
        (lambda: answered(401), FatalSinkError, "refused the credentials (401)"),
        (lambda: answered(403), FatalSinkError, "refused the credentials (403)"),
        (lambda: answered(400, "parse_exception"), FatalSinkError, "400: parse_exception"),
    ],
)
async def test_sink_retries_and_stops_on_opensearch_failures_as_on_elasticsearch_ones(
    tmp_path: Path, raised: Callable[[], Exception], outcome: type[Exception], text: str
) -> None:
    config = ElasticsearchConfig(hosts=["http://127.0.0.1:9200"], kind="opensearch")
    # The client is never reached: _call is handed the failing request itself.
    sink = ElasticsearchSink(
        config,
        DeadLetterFile(tmp_path / "dead.ndjson"),
        client=object(),  # type: ignore[arg-type]
    )

    async def request() -> None:
        raise translate_error(raised())

    with pytest.raises(outcome) as caught:
        await sink._call(request)
    assert text in str(caught.value)


def test_a_failed_handshake_keeps_the_reason_the_operator_must_fix() -> None:
    reason = (
        "Cannot connect to host os:9200 ssl:True [certificate verify failed: Hostname mismatch]"
    )
    error = translate_error(
        os_errors.ConnectionError("N/A", reason, ssl.SSLCertVerificationError(1, "failed"))
    )
    assert isinstance(error, TlsError)
    assert error.message == reason
