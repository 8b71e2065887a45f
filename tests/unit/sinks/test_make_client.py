"""How the pipeline's Elasticsearch settings become a client: TLS, failover, auth."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from elasticsearch import Elasticsearch

from logpipe.config import ElasticsearchConfig
from logpipe.sinks.elasticsearch.sink import make_client


def built(**settings: Any) -> Elasticsearch:
    client = make_client(ElasticsearchConfig.model_validate(settings)).blocking
    assert isinstance(client, Elasticsearch)
    return client


def contexts(client: Elasticsearch) -> list[ssl.SSLContext | None]:
    """Each node's TLS context, as urllib3 will connect with it."""
    found = []
    for node in client.transport.node_pool.all():
        pool = node.pool  # type: ignore[attr-defined]
        context = pool.conn_kw.get("ssl_context")
        if context is not None:
            # Checked at each connect: urllib3 sets verify_mode from cert_reqs
            # and loads ca_certs into the context.
            assert pool.cert_reqs == context.verify_mode
            assert pool.ca_certs is None
        found.append(context)
    return found


def close(client: Elasticsearch) -> None:
    client.close()


def test_https_verifies_certificate_and_hostname_by_default() -> None:
    client = built(hosts=["https://es1:9200", "https://es2:9200"])
    found = contexts(client)
    assert len(found) == 2
    for context in found:
        assert context is not None
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    close(client)


def test_ca_cert_path_and_pem_text_are_both_trusted(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    for ca_cert in (str(path), ca.cert_pem.bytes().decode()):
        client = built(hosts=["https://es:9200"], ca_cert=ca_cert)
        (context,) = contexts(client)
        assert context is not None
        # Only the given CA: the system's are not loaded next to it.
        assert context.cert_store_stats()["x509_ca"] == 1
        close(client)


def test_verify_certs_false_turns_verification_off_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="logpipe.elasticsearch"):
        client = built(hosts=["https://es1:9200", "https://es2:9200"], verify_certs=False)
    (context, _) = contexts(client)
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    (record,) = [r for r in caplog.records if r.getMessage() == "tls_verification_disabled"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["hosts"] == "https://es1:9200, https://es2:9200"
    close(client)


@pytest.mark.parametrize(("hosts", "retries"), [(1, 0), (2, 1), (3, 2)])
def test_connection_errors_fail_over_to_every_other_host_once(hosts: int, retries: int) -> None:
    client = built(hosts=[f"https://es{n}:9200" for n in range(hosts)])
    # The client's request options (the transport's own defaults are overridden).
    assert client._max_retries == retries
    # Answers and timeouts are logpipe's to retry, per item and with backoff.
    assert tuple(client._retry_on_status) == ()  # type: ignore[arg-type]
    assert client._retry_on_timeout is False
    transport = client.transport
    assert not transport._sniff_on_start and not transport._sniff_on_node_failure
    close(client)
