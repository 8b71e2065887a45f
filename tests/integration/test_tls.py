"""TLS to Elasticsearch: verified by default, refused when it does not verify.

A TLS-terminating proxy (certificates from trustme) sits in front of the test
server, and ``logpipe run --once`` ships a file through it. A certificate that
does not verify must stop everything before a byte of data is sent: nothing
indexed, nothing checkpointed, and the reason in the output.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from elasticsearch import NotFoundError

from logpipe.config import ElasticsearchConfig
from logpipe.sinks.elasticsearch.sink import make_client
from tests.integration.helpers import (
    EsTarget,
    app_line,
    es_client,
    search,
    write_pipeline,
)
from tests.integration.proxies import TcpProxy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOGPIPE = [sys.executable, "-m", "logpipe", "run"]
# How long a run whose TLS never verifies keeps retrying before it gives up.
REFUSED_RUN_SECONDS = "3"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="logpipe test CA")


@pytest.fixture
def upstream_port(es_server: EsTarget) -> int:
    if not es_server.url.startswith("http://"):
        pytest.skip("the TLS proxy forwards plain HTTP; LOGPIPE_TEST_ES_URL is not http://")
    port = es_server.url.rsplit(":", 1)[1].rstrip("/")
    return int(port)


def tls_proxy(upstream_port: int, ca: trustme.CA, *names: str) -> TcpProxy:
    """A proxy presenting a certificate for ``names``, issued by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return TcpProxy(upstream_port, tls=context)


@pytest.fixture
def trusted_proxy(upstream_port: int, ca: trustme.CA) -> Iterator[TcpProxy]:
    with tls_proxy(upstream_port, ca, "127.0.0.1", "localhost") as proxy:
        yield proxy


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def ship(
    tmp_path: Path, log_dir: Path, prefix: str, env: dict[str, str], *, extra: str = ""
) -> subprocess.CompletedProcess[str]:
    """``logpipe run --once`` on one ERROR-free line; ``extra`` goes under elasticsearch:."""
    (log_dir / "app.log").write_text(app_line("2026-11-27T08:00:00", "INFO", "Shift started"))
    path = write_pipeline(tmp_path, log_dir, prefix)
    if extra:
        text = path.read_text().replace("    index_prefix:", f"    {extra}\n    index_prefix:")
        path.write_text(text)
    return subprocess.run(
        [*LOGPIPE, "--once", "--timeout", REFUSED_RUN_SECONDS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **env},
    )


def indexed(es_server: EsTarget, prefix: str) -> int:
    try:
        result = search(es_client(es_server.env), prefix, size=0)
    except NotFoundError:  # no index at all
        return 0
    return int(result["hits"]["total"]["value"])


def checkpointed(tmp_path: Path) -> list[int]:
    """The acknowledged offsets (none when no checkpoint was ever written)."""
    path = tmp_path / "data" / "checkpoints.json"
    if not path.exists():
        return []
    return [entry["offset"] for entry in json.loads(path.read_text())["files"].values()]


def assert_refused(
    result: subprocess.CompletedProcess[str],
    proxy: TcpProxy,
    tmp_path: Path,
    es_server: EsTarget,
    prefix: str,
) -> str:
    """The run failed, nothing got through the handshake; returns the output."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert proxy.counts.connections == 0  # no handshake succeeded, no request forwarded
    assert indexed(es_server, prefix) == 0
    assert not any(checkpointed(tmp_path))
    assert "certificate verify failed" in output, output
    return output


def test_indexes_through_tls_verified_against_the_given_ca(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    trusted_proxy: TcpProxy,
    ca_file: Path,
) -> None:
    env = {"ES_URL": trusted_proxy.url, "ES_CA_CERT": str(ca_file)}
    result = ship(tmp_path, log_dir, index_prefix, env)

    assert result.returncode == 0, result.stderr
    assert trusted_proxy.counts.connections >= 1
    assert indexed(es_server, index_prefix) == 1
    assert checkpointed(tmp_path) == [(log_dir / "app.log").stat().st_size]
    assert "tls_verification_disabled" not in result.stderr


def test_ca_given_as_pem_text_through_a_file_variable(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    trusted_proxy: TcpProxy,
    ca_file: Path,
) -> None:
    # ES_CA_CERT_FILE interpolates ca_cert to the PEM text itself, not to a path.
    env = {"ES_URL": trusted_proxy.url, "ES_CA_CERT_FILE": str(ca_file)}
    result = ship(tmp_path, log_dir, index_prefix, env)

    assert result.returncode == 0, result.stderr
    assert indexed(es_server, index_prefix) == 1


def test_certificate_for_another_hostname_is_refused(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    upstream_port: int,
    ca: trustme.CA,
    ca_file: Path,
) -> None:
    # Signed by the trusted CA, but for a name that is not the one connected to.
    with tls_proxy(upstream_port, ca, "es.example.com") as proxy:
        env = {"ES_URL": proxy.url, "ES_CA_CERT": str(ca_file)}
        result = ship(tmp_path, log_dir, index_prefix, env)
        output = assert_refused(result, proxy, tmp_path, es_server, index_prefix)
    assert "mismatch, certificate is not valid for '127.0.0.1'" in output


def test_certificate_from_an_unknown_ca_is_refused_without_ca_cert(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    trusted_proxy: TcpProxy,
) -> None:
    # The right name, but no ca_cert: the system's CAs do not know the test CA.
    result = ship(tmp_path, log_dir, index_prefix, {"ES_URL": trusted_proxy.url})
    output = assert_refused(result, trusted_proxy, tmp_path, es_server, index_prefix)
    assert "unable to get local issuer certificate" in output


def test_verify_certs_false_connects_anyway_and_says_so(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    upstream_port: int,
    ca: trustme.CA,
) -> None:
    # Unknown CA and the wrong name: only turning verification off gets through.
    with tls_proxy(upstream_port, ca, "es.example.com") as proxy:
        result = ship(
            tmp_path,
            log_dir,
            index_prefix,
            {"ES_URL": proxy.url},
            extra="verify_certs: false",
        )
    assert result.returncode == 0, result.stderr
    assert indexed(es_server, index_prefix) == 1
    warnings = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if "tls_verification_disabled" in line
    ]
    assert len(warnings) == 1
    assert warnings[0]["log.level"] == "warning"
    assert warnings[0]["logpipe"]["hosts"] == proxy.url
    # logpipe's own warning, once: not urllib3's raw one for each request.
    assert "InsecureRequestWarning" not in result.stderr, result.stderr


async def test_connecting_leaves_the_tls_context_trusting_only_the_given_ca(
    trusted_proxy: TcpProxy, ca_file: Path
) -> None:
    # Regression: with the blocking client, urllib3 loaded certifi's bundle into
    # logpipe's context at every new connection (elastic-transport hands it over
    # next to ssl_context), so ca_cert was no longer the only CA trusted.
    config = ElasticsearchConfig(hosts=[trusted_proxy.url], ca_cert=str(ca_file))
    client = make_client(config)
    try:
        await client.info()
    finally:
        await client.close()
    assert trusted_proxy.counts.connections >= 1
    (node,) = client.blocking.transport.node_pool.all()
    context = node.pool.conn_kw["ssl_context"]
    assert context.cert_store_stats()["x509_ca"] == 1
    assert context.verify_mode is ssl.CERT_REQUIRED
