"""The TLS context both search-engine clients use (Elasticsearch and OpenSearch)."""

from __future__ import annotations

import logging
import ssl

import urllib3
from elastic_transport import NodeConfig, Urllib3HttpNode
from urllib3 import HTTPSConnectionPool
from urllib3.exceptions import InsecureRequestWarning

from logpipe.config import ElasticsearchConfig

log = logging.getLogger("logpipe.tls")


def tls_context(config: ElasticsearchConfig) -> ssl.SSLContext:
    """Certificate and hostname verified, against ``ca_cert`` when set (a path or PEM text).

    TLS 1.2 or later. ``verify_certs: false`` turns verification off, and says so.
    """
    ca = config.ca_cert
    if ca is not None and ca.lstrip().startswith("-----BEGIN"):
        # ES_CA_CERT_FILE interpolates to the PEM text, not to a path.
        context = ssl.create_default_context(cadata=ca)
    else:
        context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not config.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning(
            "tls_verification_disabled",
            extra={"hosts": ", ".join(h for h in config.hosts if h.startswith("https://"))},
        )
    return context


def follow_context(pool: object) -> None:
    """Make a urllib3 pool connect with its ``ssl_context`` as logpipe built it.

    At every new connection urllib3 sets the context's ``verify_mode`` from the
    pool's ``cert_reqs`` (unset reads as CERT_REQUIRED: ``verify_certs: false``
    would verify anyway) and loads the pool's ``ca_certs`` into it
    (elastic-transport hands it certifi's bundle: the context would trust
    those CAs besides ``ca_cert``, and parse ~150 certificates per connect).
    """
    if not isinstance(pool, HTTPSConnectionPool):
        return
    context = pool.conn_kw.get("ssl_context")
    if isinstance(context, ssl.SSLContext):
        pool.cert_reqs = context.verify_mode
        pool.ca_certs = None
        pool.ca_cert_dir = None
        if context.verify_mode == ssl.CERT_NONE:
            # tls_context has logged tls_verification_disabled once; urllib3
            # would print its own warning, raw, for every request.
            urllib3.disable_warnings(InsecureRequestWarning)


class ContextOnlyNode(Urllib3HttpNode):
    """elastic-transport's urllib3 node, connecting with ``ssl_context`` as it is."""

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        follow_context(self.pool)
