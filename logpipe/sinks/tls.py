"""The TLS context both search-engine clients use (Elasticsearch and OpenSearch)."""

from __future__ import annotations

import logging
import ssl

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
