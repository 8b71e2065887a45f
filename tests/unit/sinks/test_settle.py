"""How one bulk response is accounted for, item by item (no server: the response is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError

from logpipe.config import ElasticsearchConfig
from logpipe.event import Event
from logpipe.sinks.deadletter import DeadLetterFile
from logpipe.sinks.elasticsearch.sink import ElasticsearchSink


def events(count: int) -> list[Event]:
    return [
        Event.of(Event("f", 0, "/p", i, i + 1, b"x", "in"), "erp-logs-2026.11.27", f"id{i}", b"{}")
        for i in range(count)
    ]


def make_sink(tmp_path: Path, created: list[Event]) -> ElasticsearchSink:
    config = ElasticsearchConfig(hosts=["http://127.0.0.1:9"])
    letters = DeadLetterFile(tmp_path / "dead.ndjson")
    return ElasticsearchSink(config, letters, on_created=created.extend)


def item(status: int, error: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": status}
    if error:
        answer["error"] = {"type": error, "reason": "r"}
    return {"create": answer}


def test_response_without_errors_settles_every_item_as_created(tmp_path: Path) -> None:
    created: list[Event] = []
    sink = make_sink(tmp_path, created)
    batch = events(3)
    retry, repaired = sink._settle(batch, {"errors": False, "items": [item(201)] * 3})
    assert (retry, repaired) == ([], [])
    assert created == batch and sink.stats.created == 3


def test_response_without_errors_but_missing_items_retries_the_unanswered(
    tmp_path: Path,
) -> None:
    # "errors": false is only trusted when every item is answered.
    created: list[Event] = []
    sink = make_sink(tmp_path, created)
    batch = events(3)
    retry, _ = sink._settle(batch, {"errors": False, "items": [item(201)] * 2})
    assert retry == batch[2:]
    assert created == batch[:2] and sink.stats.created == 2


def test_mixed_response_is_classified_item_by_item(tmp_path: Path) -> None:
    created: list[Event] = []
    sink = make_sink(tmp_path, created)
    batch = events(4)
    answer = {
        "errors": True,
        "items": [
            item(201),
            item(409, "version_conflict_engine_exception"),
            item(429, "es_rejected_execution_exception"),
            item(404, "index_not_found_exception"),
        ],
    }
    retry, repaired = sink._settle(batch, answer)
    assert retry == [batch[2]] and repaired == []
    assert (sink.stats.created, sink.stats.duplicates, sink.stats.dead_lettered) == (1, 1, 1)
    # The refused event is still a real event: offered for alerting like a created one.
    assert created == [batch[0], batch[3]]


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


class _FlakyClient:
    """Refuses the connection ``failures`` times, then answers every item created."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posted: list[object] = []

    async def bulk(self, operations: object, filter_path: object = None) -> _Answer:
        self.posted.append(operations)
        if len(self.posted) <= self.failures:
            raise TransportConnectionError("connection refused")
        count = bytes(operations).count(b'{"create"')  # type: ignore[call-overload]
        return _Answer({"errors": False, "items": [item(201)] * count})


async def test_request_failed_as_a_whole_is_resent_as_the_same_bytes(tmp_path: Path) -> None:
    # Regression: each retry built a new multi-megabyte body; with connections refused
    # (retries in quick succession) the process held ~15 MiB more through the catch-up.
    client = _FlakyClient(failures=3)
    config = ElasticsearchConfig(hosts=["http://127.0.0.1:9"], retry_backoff_max_seconds=0.01)
    sink = ElasticsearchSink(config, DeadLetterFile(tmp_path / "dead.ndjson"), client=client)  # type: ignore[arg-type]
    batch = events(5)
    await sink.send(batch)
    assert len(client.posted) == 4 and sink.stats.created == 5
    assert all(body is client.posted[0] for body in client.posted)
