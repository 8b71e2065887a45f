"""The Elasticsearch sink: the I/O around the pure encoder and classifier.

``send`` does not return until every event of the batch is settled — created,
already there (409), or dead-lettered with its reason. Items answered 429/5xx,
and whole requests that fail with 429/5xx/timeouts/connection errors, are
retried with capped, jittered backoff; nothing already accepted is resent.
Only once ``send`` returns may the caller advance the files' checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from logpipe.config import ElasticsearchConfig
from logpipe.errors import DeliveryError, FatalSinkError, RetryableSinkError
from logpipe.event import Event
from logpipe.sinks.deadletter import DeadLetterFile
from logpipe.sinks.elasticsearch.classify import Outcome, classify_response
from logpipe.sinks.elasticsearch.encode import (
    bulk_body,
    encode_source,
    index_template,
    retry_delay,
)
from logpipe.sinks.elasticsearch.repair import (
    MAX_FIELD_REPAIRS,
    is_mapping_conflict,
    move_conflicting_field,
    safe_core,
)
from logpipe.sinks.threaded import AwaitedClient
from logpipe.sinks.tls import ContextOnlyNode, tls_context
from logpipe.stats import Durations

log = logging.getLogger("logpipe.elasticsearch")

_BULK_FILTER = ["errors", "items.*.status", "items.*.error"]


@dataclass(slots=True)
class SinkStats:
    """Counters since start, read by the metrics endpoint and the run report.

    ``sent_bytes``: bulk bodies Elasticsearch answered (retries included).
    ``dead_letter_reasons`` / ``request_errors``: counts by a short
    cause (the error ``type``, ``HTTP 503``, ``ConnectionError``), so that a
    metric label never carries a document's text. ``request_seconds``: every
    answered bulk request's round trip.
    """

    created: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    repaired: int = 0
    retried_items: int = 0
    failed_requests: int = 0
    sent_bytes: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    request_errors: Counter[str] = field(default_factory=Counter)
    request_seconds: Durations = field(default_factory=Durations)


class _BulkBodySerializer(NdjsonSerializer, OrjsonSerializer):
    """NDJSON that passes a prebuilt body through as it is (orjson for anything else).

    The stock serializer copies even a ``bytes`` body twice (into a bytearray,
    then back to bytes): for a multi-megabyte bulk request that is memory and
    time spent for nothing.
    """

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def make_client(config: ElasticsearchConfig) -> AwaitedClient:
    """A client with logpipe's own retry policy, failing over between ``hosts``.

    The blocking client, its calls awaited in threads (``logpipe.sinks.threaded``
    says why).

    Answers (429, 5xx) and timeouts are never retried by the client: ``send``
    retries them per item, with backoff. A connection error is different: the
    node is down, and the request goes at once to the next live node. The
    client marks the dead node out of rotation and tries it again, alone, after
    a growing pause (1 s, doubling, at most 30 s). Sniffing stays off: logpipe
    may sit behind a load balancer, and the nodes' publish addresses may not be
    reachable from the pod.
    """
    kwargs: dict[str, Any] = {
        "request_timeout": config.request_timeout_seconds,
        "max_retries": len(config.hosts) - 1,
        "retry_on_status": (),
        "retry_on_timeout": False,
        "serializers": {
            OrjsonSerializer.mimetype: OrjsonSerializer(),
            _BulkBodySerializer.mimetype: _BulkBodySerializer(),
        },
        "http_compress": False,
    }
    if config.api_key is not None:
        kwargs["api_key"] = config.api_key.get_secret_value()
    elif config.username is not None:
        password = config.password.get_secret_value() if config.password else ""
        kwargs["basic_auth"] = (config.username, password)
    if any(h.startswith("https://") for h in config.hosts):
        # One context for every https host: certificate and hostname verified
        # against the system's CAs, or only against ca_cert when it is set.
        kwargs["ssl_context"] = tls_context(config)
        kwargs["node_class"] = ContextOnlyNode
    return AwaitedClient(Elasticsearch(config.hosts, **kwargs))


class ElasticsearchSink:
    """Bulk-indexes batches of events into daily indices."""

    def __init__(
        self,
        config: ElasticsearchConfig,
        dead_letters: DeadLetterFile,
        *,
        on_created: Callable[[list[Event]], None] | None = None,
        client: AwaitedClient | None = None,
    ) -> None:
        self._config = config
        if client is None and config.kind == "opensearch":
            from logpipe.sinks.opensearch import make_opensearch_client

            client = make_opensearch_client(config)
        self._client = client or make_client(config)
        self._dead_letters = dead_letters
        self._on_created = on_created
        self._rng = random.Random()
        self.stats = SinkStats()
        self.give_up_at: float | None = None  # loop time; set by --once
        self._failing_since: float | None = None  # loop time of the first failure in a row
        self.last_error: str | None = None
        self.connected = False  # start() has reached the server (and checked the template)

    @property
    def client(self) -> AwaitedClient:
        """The client (shared by retention; closed by :meth:`close`)."""
        return self._client

    def unreachable_for(self) -> float | None:
        """Seconds since requests started failing as a whole, or None while they succeed."""
        if self._failing_since is None:
            return None
        return asyncio.get_running_loop().time() - self._failing_since

    async def start(self) -> None:
        """Check the server and install the index template when missing or older."""
        attempt = 0
        while True:
            try:
                info = await self._call(self._client.info)
                if self._config.install_template:
                    await self._call(self._install_template)
                break
            except RetryableSinkError as exc:
                await self._backoff(attempt, f"Elasticsearch unreachable: {exc}")
                attempt += 1
        self.connected = True
        version = str(info.get("version", {}).get("number", "?"))
        log.info("elasticsearch_connected", extra={"version": version})

    async def _install_template(self) -> None:
        name = self._config.index_prefix
        wanted = index_template(name)
        try:
            current = await self._client.indices.get_index_template(name=name)
            have = current["index_templates"][0]["index_template"].get("_meta", {})
            if have.get("template_version") == wanted["_meta"]["template_version"]:
                return
        except ApiError as exc:
            if exc.meta.status != 404:
                raise
        await self._client.indices.put_index_template(name=name, **wanted)
        log.info("index_template_installed", extra={"template": name})

    async def close(self) -> None:
        await self._client.close()

    async def send(self, events: list[Event]) -> None:
        """Deliver ``events``; return only when each is created, a duplicate, or dead-lettered."""
        pending = events
        body = bulk_body(pending)
        attempt = 0
        while pending:
            try:
                response = await self._bulk(body)
            except RetryableSinkError as exc:
                self.stats.failed_requests += 1
                await self._backoff(attempt, f"bulk request failed: {exc}")
                attempt += 1
                continue
            retry, repaired = self._settle(pending, response)
            log.debug(
                "bulk_settled",
                extra={"items": len(pending), "to_retry": len(retry), "repaired": len(repaired)},
            )
            pending = retry + repaired
            # Built once per set of pending items: a request that failed as a whole
            # (Elasticsearch down for an hour) is re-sent as the same bytes.
            body = bulk_body(pending) if pending else b""
            if retry:
                # Repaired items alone go straight back; 429/5xx ones wait first.
                self.stats.retried_items += len(retry)
                await self._backoff(attempt, f"{len(retry)} items answered 429/5xx")
                attempt += 1

    async def _bulk(self, body: bytes) -> dict[str, Any]:
        async def request() -> dict[str, Any]:
            # A prebuilt NDJSON body: the client's serializer passes bytes through.
            # Only what classification reads: a full answer repeats index, id,
            # version and shards per item, and decoding it costs more than the request.
            operations: Any = body
            resp = await self._client.bulk(operations=operations, filter_path=_BULK_FILTER)
            return dict(resp.body)

        started = time.monotonic()
        result: dict[str, Any] = await self._call(request)
        self.stats.request_seconds.observe(time.monotonic() - started)
        self.stats.sent_bytes += len(body)
        return result

    def _settle(
        self, items: list[Event], response: dict[str, Any]
    ) -> tuple[list[Event], list[Event]]:
        """Account for each answered item; return (to retry later, repaired to resend)."""
        answered = response.get("items")
        if (
            response.get("errors") is False
            and isinstance(answered, list)
            and len(answered) == len(items)
        ):
            # Every item created (a 409 or any failure sets "errors"): the common case.
            self.stats.created += len(items)
            self._created(items)
            return [], []
        classified = classify_response(response, len(items))
        created: list[Event] = []
        retry: list[Event] = []
        repaired: list[Event] = []
        rejected: list[tuple[Event, str]] = []
        for item, outcome, reason in zip(
            items, classified.outcomes, classified.reasons, strict=True
        ):
            if outcome is Outcome.CREATED:
                created.append(item)
            elif outcome is Outcome.DUPLICATE:
                self.stats.duplicates += 1
            elif outcome is Outcome.RETRY:
                retry.append(item)
            elif self._repair(item, reason or ""):
                repaired.append(item)
            else:
                rejected.append((item, reason or "rejected"))
        self.stats.created += len(created)
        self._created(created)
        if rejected:
            try:
                self._dead_letters.write([self._dead_letter_entry(i, r) for i, r in rejected])
            except OSError as exc:
                # Disk full or read-only: the documents are neither indexed nor safely
                # dead-lettered, so they stay pending (and unacknowledged) and are retried.
                log.error("dead_letter_write_failed", extra={"reason": str(exc)})
                return retry + [item for item, _ in rejected], repaired
            self.stats.dead_lettered += len(rejected)
            self.stats.dead_letter_reasons.update(_cause(reason) for _, reason in rejected)
            # The events are real even if their documents were refused: alert on them.
            self._created([item for item, _ in rejected])
        return retry, repaired

    def _created(self, items: list[Event]) -> None:
        if self._on_created is not None and items:
            self._on_created(items)

    def _repair(self, item: Event, reason: str) -> bool:
        """Re-encode a mapping-conflict rejection in a safe form; False if out of options."""
        if not is_mapping_conflict(reason) or item.repairs > MAX_FIELD_REPAIRS:
            return False
        doc = item.document()
        if item.repairs < MAX_FIELD_REPAIRS and move_conflicting_field(doc, reason):
            item.repairs += 1
        else:
            doc = safe_core(doc, reason)
            item.repairs = MAX_FIELD_REPAIRS + 1
        item.source = encode_source(doc)
        self.stats.repaired += 1
        log.warning("document_repaired", extra={"reason": reason[:300], "id": item.doc_id})
        return True

    @staticmethod
    def _dead_letter_entry(item: Event, reason: str) -> dict[str, Any]:
        return {
            "reason": reason,
            "index": item.index,
            "id": item.doc_id,
            "file": item.path,
            "offset": item.offset,
            "document": item.document(),
        }

    async def _backoff(self, attempt: int, why: str) -> None:
        loop = asyncio.get_running_loop()
        if self.give_up_at is not None and loop.time() >= self.give_up_at:
            raise DeliveryError(f"Elasticsearch did not accept the events in time: {why}")
        delay = retry_delay(
            attempt, 0.1, self._config.retry_backoff_max_seconds, self._rng.random()
        )
        log.warning("bulk_retry_scheduled", extra={"reason": why, "delay": round(delay, 2)})
        await asyncio.sleep(delay)

    def _failed(self, error: str) -> None:
        self.last_error = error
        self.stats.request_errors[error] += 1
        if self._failing_since is None:
            self._failing_since = asyncio.get_running_loop().time()

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one request, mapping transport failures onto logpipe's error tree."""
        try:
            result = await fn()
        except TlsError as exc:
            # Say why ("certificate verify failed: Hostname mismatch, ..."): it is
            # what the operator has to fix. The message names host, port and the
            # TLS error, never a credential; the metric label stays short.
            self._failed("TlsError")
            raise RetryableSinkError(f"TlsError: {exc.message}") from None
        except (TransportConnectionError, ConnectionTimeout) as exc:
            self._failed(type(exc).__name__)
            raise RetryableSinkError(type(exc).__name__) from None
        except ApiError as exc:
            status = exc.meta.status
            if status in (401, 403):
                raise FatalSinkError(f"Elasticsearch refused the credentials ({status})") from None
            if status == 429 or status >= 500:
                self._failed(f"HTTP {status}")
                raise RetryableSinkError(f"HTTP {status}") from None
            raise FatalSinkError(f"Elasticsearch answered {status}: {exc.message}") from None
        except TransportError as exc:
            self._failed(type(exc).__name__)
            raise RetryableSinkError(type(exc).__name__) from None
        self._failing_since = None
        if hasattr(result, "body"):
            return result.body
        return result


def _cause(reason: str) -> str:
    """The short cause of a rejection reason: ``400 mapper_parsing_exception: ...`` -> its type."""
    head = reason.partition(":")[0]
    return head.split(" ", 1)[1] if head[:3].isdigit() and " " in head else head or "rejected"
