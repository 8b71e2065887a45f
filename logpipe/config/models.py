"""The pipeline file's typed models: every key, its default and its checks.

Unknown keys are errors (``extra="forbid"``); every default is defined once, here.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from logpipe.config.alerts import AlertsConfig
from logpipe.config.base import Model, OptSecret, OptStr


class InputConfig(Model):
    """One tailed input: files matching ``paths`` parsed by ``parser``."""

    paths: list[str] = Field(min_length=1)
    parser: Literal["app_json", "nginx", "nginx_json", "plain"]
    dataset: str = Field(min_length=1, pattern=r"^[a-z0-9_.]+$")
    max_line_bytes: int = Field(default=1 << 20, ge=1024)
    # Fields the app adds beyond the JSONFormatter's own go under this key.
    extra_namespace: str = Field(default="app", pattern=r"^[a-z_][a-z0-9_]*$")
    # inotify wakes the reader at once; polling is the safety net (and the only
    # way on filesystems without inotify).
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Ship a last line that never gets its newline after this long (off: wait).
    partial_line_timeout_seconds: float | None = Field(default=None, gt=0)
    # A rotated-away or deleted file stays open until its lines are acknowledged,
    # at most this long.
    rotated_hold_seconds: float = Field(default=3600.0, gt=0)


class EnrichConfig(Model):
    """Static fields (dotted ECS names) and metadata added to every event."""

    fields: dict[str, str | int | float | bool] = Field(default_factory=dict)
    kubernetes: bool = True
    host: bool = True


class BatchConfig(Model):
    """A bulk request is sent when any bound is reached.

    ``max_events`` / ``max_bytes`` are the bounds while logpipe keeps up. While
    a backlog waits (catching up after an outage, a backfill) the bounds double
    per full batch up to ``backlog_max_events`` (and the bytes in proportion,
    never past half the queue's budget), since the server takes far more
    documents per second in large requests; they halve again once caught up.
    """

    max_events: int = Field(default=2000, ge=1)
    max_bytes: int = Field(default=5 << 20, ge=1024)
    max_age_seconds: float = Field(default=0.5, gt=0, le=60)
    backlog_max_events: int = Field(default=8000, ge=1)


class RetentionConfig(Model):
    """Delete daily indices older than ``days`` (off when unset).

    By an ILM policy where the server has ILM; otherwise logpipe deletes them
    itself, only indices named ``<index_prefix>-YYYY.MM.dd``.
    """

    days: int | None = Field(default=None, ge=1)
    check_interval_seconds: float = Field(default=3600.0, gt=0)


class ElasticsearchConfig(Model):
    """Where and how to index."""

    # opensearch: the same bulk API through opensearch-py (the `opensearch` extra);
    # the Elasticsearch client refuses to talk to an OpenSearch server.
    kind: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    hosts: list[str] = Field(min_length=1)
    api_key: OptSecret = None
    username: OptStr = None
    password: OptSecret = None
    ca_cert: OptStr = None
    verify_certs: bool = True
    index_prefix: str = Field(default="erp-logs", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    index_timezone: str = "UTC"
    install_template: bool = True
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=5.0, gt=0)
    # Plain http:// is refused for any host but loopback unless this is set:
    # credentials and logs would cross the network in clear text.
    allow_insecure_http: bool = False
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @model_validator(mode="after")
    def _one_credential(self) -> ElasticsearchConfig:
        if self.api_key is not None and self.username is not None:
            raise ValueError("set either api_key or username/password, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self

    @model_validator(mode="after")
    def _no_clear_text_to_the_network(self) -> ElasticsearchConfig:
        if self.allow_insecure_http:
            return self
        for number, host in enumerate(self.hosts):
            parts = urlsplit(host)
            if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
                raise ValueError(
                    f"hosts[{number}] is plain http:// to {parts.hostname}, which is not "
                    "loopback: use https://, or set allow_insecure_http: true"
                )
        return self

    @field_validator("hosts")
    @classmethod
    def _hosts_are_urls(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not re.match(r"^https?://[^/\s]+", host):
                raise ValueError("each host must be an http:// or https:// URL")
            if urlsplit(host).username is not None:
                # Hosts are shown by `logpipe check` and in self-alerts; a password
                # in the URL would go with them.
                raise ValueError("credentials go in api_key or username/password, not in hosts")
        if len(set(hosts)) != len(hosts):
            raise ValueError("each host may be listed once")
        if len({host.partition(":")[0] for host in hosts}) > 1:
            # One TLS setting for the whole client; the client refuses to mix.
            raise ValueError("all hosts must use the same scheme (all https://, or all http://)")
        return hosts

    @field_validator("ca_cert")
    @classmethod
    def _ca_bundle_loads(cls, ca_cert: str | None) -> str | None:
        # A path, or the PEM text itself (what ES_CA_CERT_FILE interpolates to).
        # Loaded here so that `logpipe check` reports a wrong path or a broken
        # bundle, rather than the client failing at start.
        if ca_cert is None:
            return None
        import ssl

        pem = ca_cert.lstrip().startswith("-----BEGIN")
        try:
            context = ssl.create_default_context(
                cadata=ca_cert if pem else None, cafile=None if pem else ca_cert
            )
        except (OSError, ValueError):
            raise ValueError("ca_cert must be a PEM CA bundle, as a file or as text") from None
        if not context.cert_store_stats()["x509"]:
            raise ValueError("ca_cert holds no certificate")
        return ca_cert

    @field_validator("index_timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name


def _is_loopback(hostname: str) -> bool:
    if hostname.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class OutputConfig(Model):
    elasticsearch: ElasticsearchConfig


class QueueConfig(Model):
    """The memory budget between readers and the sink; readers wait when it is full."""

    max_events: int = Field(default=20000, ge=1)
    # Peak RSS is about 58 MiB of interpreter and libraries plus ~3x this budget
    # (the events, the bulk request, and its copy in the HTTP layer): ~77-80 MiB
    # at 6 MiB, measured with bench/memory.py.
    max_bytes: int = Field(default=6 << 20, ge=1 << 16)


class MonitoringConfig(Model):
    """logpipe's own HTTP endpoint: ``/metrics`` (Prometheus) and ``/health/*`` probes.

    Off unless ``address`` (``host:port``) is set; ``run --once`` serves it only
    when asked (``--monitoring``). In a pod, bind ``0.0.0.0`` so the kubelet's
    probes and Prometheus reach it.
    """

    address: OptStr = None

    @field_validator("address")
    @classmethod
    def _host_port(cls, address: str | None) -> str | None:
        if address is not None and not re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$", address):
            raise ValueError("must be host:port, e.g. 0.0.0.0:9108")
        return address


class PipelineConfig(Model):
    """A whole pipeline file."""

    data_dir: Path
    inputs: dict[str, InputConfig] = Field(min_length=1)
    enrich: EnrichConfig = Field(default_factory=EnrichConfig)
    output: OutputConfig
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    # Processes that run the per-line step (parse, enrich, encode) beside the main
    # one, for throughput on a backlog; 0: it runs in the main process (see
    # logpipe.workers for what they cost).
    workers: int = Field(default=0, ge=0, le=64)
