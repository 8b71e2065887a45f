"""Pure bulk encoding: index names, document ids, and the NDJSON body.

Nothing here touches the network or the clock; the sink passes "now" in.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from logpipe.event import Event, Line


def document_id(line: Line) -> str:
    """A deterministic id for the document made from ``line``.

    It covers the file's identity, its truncation generation, the byte offset and
    the line's content: re-reading the same line yields the same id (so
    ``op_type: create`` answers 409 and nothing is indexed twice), while a
    different line written at a reused offset (after copytruncate) gets a new id
    instead of being mistaken for one already delivered.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{line.file_id}\0{line.generation}\0{line.offset}\0".encode())
    digest.update(line.raw)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


class IndexNamer:
    """Daily index names from the event's own time: ``<prefix>-YYYY.MM.dd``.

    The day is taken in ``timezone`` (UTC unless a site wants local days). Names
    are cached per day, since consecutive events nearly always share one.
    """

    def __init__(self, prefix: str, timezone: str = "UTC") -> None:
        self._prefix = prefix
        self._tz: tzinfo = ZoneInfo(timezone)
        self._cache: dict[tuple[int, int, int], str] = {}

    def name(self, when: datetime) -> str:
        """Index for an aware ``when``."""
        local = when.astimezone(self._tz)
        key = (local.year, local.month, local.day)
        name = self._cache.get(key)
        if name is None:
            name = f"{self._prefix}-{local.year:04d}.{local.month:02d}.{local.day:02d}"
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = name
        return name


@dataclass(slots=True)
class BulkItem:
    """One event encoded for the bulk API; ``source`` is the serialised document."""

    event: Event
    index: str
    doc_id: str
    source: bytes
    repairs: int = 0


def encode_item(event: Event, index: str) -> BulkItem:
    """Serialise ``event``, merging its tags into the document (once: they move there)."""
    doc = event.fields
    if event.tags:
        existing = doc.get("tags")
        doc["tags"] = [*existing, *event.tags] if isinstance(existing, list) else event.tags
        event.tags = []
    return BulkItem(event, index, document_id(event.line), encode_source(doc))


def encode_source(doc: dict[str, Any]) -> bytes:
    """The JSON bytes of one document (values orjson cannot encode become strings)."""
    return orjson.dumps(doc, default=str)


def bulk_body(items: list[BulkItem]) -> bytes:
    """The NDJSON body for ``items``, every one as ``create`` with its own id."""
    parts: list[bytes] = []
    for item in items:
        parts.append(
            b'{"create":{"_index":"%s","_id":"%s"}}\n' % (item.index.encode(), item.doc_id.encode())
        )
        parts.append(item.source)
        parts.append(b"\n")
    return b"".join(parts)


def index_template(prefix: str) -> dict[str, Any]:
    """The composable index template for ``<prefix>-*`` (mappings for ECS fields)."""
    text = resources.files(__package__).joinpath("template.json").read_text(encoding="utf-8")
    template: dict[str, Any] = json.loads(text)
    template["index_patterns"] = [f"{prefix}-*"]
    return template


def retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff capped at ``cap``; ``jitter`` in [0, 1) spreads retries."""
    delay: float = min(cap, base * 2.0 ** min(attempt, 30))
    return delay * (0.5 + jitter / 2)
