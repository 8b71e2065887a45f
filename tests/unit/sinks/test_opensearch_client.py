"""How the pipeline's settings become an opensearch-py client: TLS, failover, auth, bulk bytes.

Each test reads what each of the transport's connections will use.
"""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from logpipe.config import ElasticsearchConfig
from logpipe.sinks.opensearch import OpenSearchClient, make_opensearch_client
from logpipe.sinks.threaded import AwaitedClient


def built(**settings: Any) -> tuple[AwaitedClient, Any]:
    """The client, and its transport."""
    client = make_opensearch_client(ElasticsearchConfig(kind="opensearch", **settings))
    assert isinstance(client.blocking, OpenSearchClient)
    transport: Any = client.blocking._client.transport
    return client, transport


def contexts(transport: Any) -> list[ssl.SSLContext | None]:
    """Each connection's TLS context, as urllib3 will connect with it."""
    found = []
    for conn in transport.connection_pool.connections:
        context = conn.pool.conn_kw.get("ssl_context")
        if context is not None:
            # Checked at each connect: urllib3 sets verify_mode from cert_reqs
            # and loads ca_certs into the context.
            assert conn.pool.cert_reqs == context.verify_mode
            assert conn.pool.ca_certs is None
        found.append(context)
    return found


async def test_https_verifies_certificate_and_hostname_by_default() -> None:
    client, transport = built(hosts=["https://os1:9200", "https://os2:9200"])
    found = contexts(transport)
    assert len(found) == 2
    for context in found:
        assert context is not None
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    await client.close()


async def test_ca_cert_path_and_pem_text_are_both_trusted_alone(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    for ca_cert in (str(path), ca.cert_pem.bytes().decode()):
        client, transport = built(hosts=["https://os:9200"], ca_cert=ca_cert)
        (context,) = contexts(transport)
        assert context is not None
        assert context.cert_store_stats()["x509_ca"] == 1
        await client.close()


async def test_verify_certs_false_turns_verification_off_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="logpipe.opensearch"):
        client, transport = built(hosts=["https://os1:9200"], verify_certs=False)
    (context,) = contexts(transport)
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    (record,) = [r for r in caplog.records if r.getMessage() == "tls_verification_disabled"]
    assert record.__dict__["hosts"] == "https://os1:9200"
    await client.close()


async def test_plain_http_has_no_tls_context() -> None:
    client, transport = built(hosts=["http://127.0.0.1:9200"])
    assert contexts(transport) == [None]
    await client.close()


@pytest.mark.parametrize(("hosts", "retries"), [(1, 0), (2, 1), (3, 2)])
async def test_connection_errors_fail_over_to_every_other_host_once(
    hosts: int, retries: int
) -> None:
    client, transport = built(hosts=[f"https://os{n}:9200" for n in range(hosts)])
    assert transport.max_retries == retries
    # Answers and timeouts are logpipe's to retry, per item and with backoff.
    assert tuple(transport.retry_on_status) == ()
    assert transport.retry_on_timeout is False
    assert not transport.sniff_on_start and not transport.sniff_on_connection_fail
    if hosts > 1:
        # A dead node waits 1 s, doubling (at most 32 s), before it is tried again.
        pool = transport.connection_pool
        assert (pool.dead_timeout, pool.timeout_cutoff) == (1.0, 5)
    await client.close()


async def test_request_timeout_applies_to_every_host() -> None:
    client, transport = built(
        hosts=["http://127.0.0.1:9200", "http://127.0.0.2:9200"], request_timeout_seconds=7.5
    )
    assert [c.timeout for c in transport.connection_pool.connections] == [7.5, 7.5]
    await client.close()


@pytest.mark.parametrize(
    ("settings", "header"),
    [
        ({"api_key": "b3NfYWJjOmRlZg=="}, "ApiKey b3NfYWJjOmRlZg=="),
        (
            {"username": "logpipe", "password": "s3cret"},
            "Basic " + base64.b64encode(b"logpipe:s3cret").decode(),
        ),
        ({}, None),
    ],
)
async def test_credentials_go_in_the_authorization_header(
    settings: dict[str, str], header: str | None
) -> None:
    client, transport = built(hosts=["http://127.0.0.1:9200"], **settings)
    (conn,) = transport.connection_pool.connections
    assert conn.headers.get("authorization") == header
    await client.close()


async def test_bulk_body_reaches_the_http_layer_as_the_same_bytes_with_the_filter() -> None:
    client, transport = built(hosts=["http://127.0.0.1:9200"])
    (conn,) = transport.connection_pool.connections
    seen: list[tuple[str, str, Any, Any]] = []

    def record(method: str, url: str, params: Any, body: Any, **kw: Any) -> Any:
        seen.append((method, url, params, body))
        answer = b'{"errors":false,"items":[{"create":{"status":201}}]}'
        return 200, {"content-type": "application/json"}, answer.decode()

    conn.perform_request = record
    body = b'{"create":{"_index":"x-2026.11.27","_id":"a"}}\n{"message":"caf\xc3\xa9"}\n' * 1000
    result = await client.bulk(operations=body, filter_path=["errors", "items.*.status"])
    ((method, url, params, sent),) = seen
    assert (method, url) == ("POST", "/_bulk")
    # Not copied, not re-encoded: the very object the sink built.
    assert sent is body
    (name, value) = params.popitem()
    assert name == "filter_path" and params == {}
    assert (value.decode() if isinstance(value, bytes) else value) == "errors,items.*.status"
    assert result.body == {"errors": False, "items": [{"create": {"status": 201}}]}
    await client.close()
