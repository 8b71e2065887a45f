"""``logpipe dlq``: look at dead letters and re-send them once the cause is fixed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from logpipe.config import PipelineConfig
from logpipe.event import Event, encode_source
from logpipe.sinks.deadletter import DeadLetterFile


@dataclass(slots=True)
class ReplayReport:
    replayed: int
    created: int
    duplicates: int
    still_dead: int


def dead_letters(config: PipelineConfig) -> DeadLetterFile:
    return DeadLetterFile(config.data_dir / "dead_letters.ndjson")


def summarize(config: PipelineConfig) -> tuple[int, list[tuple[str, int]]]:
    """How many dead letters there are, and the commonest reasons (first 80 chars)."""
    entries = dead_letters(config).read()
    reasons = Counter(str(e.get("reason", "?"))[:80] for e in entries)
    return len(entries), reasons.most_common(10)


def _item(entry: dict[str, Any]) -> Event:
    document = entry.get("document")
    if not isinstance(document, dict):
        document = {"message": str(document)}
    position = Event(
        "dlq", 0, str(entry.get("file", "")), int(entry.get("offset", 0) or 0), 0, b"", "dlq"
    )
    # The stored index and id: a letter that reached Elasticsearch meanwhile is a 409.
    return Event.of(position, str(entry["index"]), str(entry["id"]), encode_source(document))


async def replay(config: PipelineConfig, timeout: float | None = None) -> ReplayReport:
    """Re-send every dead letter; those refused again are dead-lettered anew."""
    # Here, not at the top: `logpipe dlq list` needs no Elasticsearch client.
    import asyncio

    from logpipe.sinks.elasticsearch.sink import ElasticsearchSink

    letters = dead_letters(config)
    entries = [e for e in letters.take_for_replay() if "index" in e and "id" in e]
    sink = ElasticsearchSink(config.output.elasticsearch, letters)
    try:
        await sink.start()
        if timeout is not None:
            sink.give_up_at = asyncio.get_running_loop().time() + timeout
        await sink.send([_item(e) for e in entries])
    finally:
        await sink.close()
    letters.finish_replay()
    stats = sink.stats
    return ReplayReport(len(entries), stats.created, stats.duplicates, stats.dead_lettered)
