"""Pure bulk encoding: index names, document ids, and the NDJSON body.

Nothing here touches the network or the clock; the sink passes "now" in.
"""

from __future__ import annotations

import hashlib
import json
from binascii import b2a_base64
from datetime import UTC, datetime, tzinfo
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from logpipe.event import Event, Line, encode_source

__all__ = ["IdMaker", "IndexNamer", "bulk_body", "document_id", "encode_source", "index_template"]


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def document_id(line: Line) -> str:
    """A deterministic id for the document made from ``line``.

    It covers the file's identity, its truncation generation, the byte offset and
    the line's content: re-reading the same line yields the same id (so
    ``op_type: create`` answers 409 and nothing is indexed twice), while a
    different line written at a reused offset (after copytruncate) gets a new id
    instead of being mistaken for one already delivered.
    """
    return IdMaker().make(line)


class IdMaker:
    """:func:`document_id`, with the per-file part of the key encoded once per file.

    Lines of one file arrive in runs, so the encoded file id and generation are
    kept, and each line costs one formatting and one hash call.
    """

    __slots__ = ("_key", "_prefix")

    def __init__(self) -> None:
        self._key: tuple[str, int] | None = None
        self._prefix = b""

    def make(self, line: Line) -> str:
        key = (line.file_id, line.generation)
        if key != self._key:
            self._key = key
            self._prefix = f"{key[0]}\0{key[1]}\0".encode()
        data = b"%b%d\0%b" % (self._prefix, line.offset, line.raw)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        # urlsafe_b64encode, minus a Python call; 22 characters, padding dropped.
        return b2a_base64(digest, newline=False)[:22].translate(_URLSAFE).decode()


class IndexNamer:
    """Daily index names from the event's own time: ``<prefix>-YYYY.MM.dd``.

    The day is taken in ``timezone`` (UTC unless a site wants local days). Names
    are cached per day, since consecutive events nearly always share one.
    """

    def __init__(self, prefix: str, timezone: str = "UTC") -> None:
        self._prefix = prefix
        self._tz: tzinfo = ZoneInfo(timezone)
        self._utc = timezone in ("UTC", "Etc/UTC")
        self._cache: dict[tuple[int, int, int], str] = {}

    def name(self, when: datetime) -> str:
        """Index for an aware ``when``."""
        # The parsers hand over UTC datetimes: no conversion needed for UTC days.
        local = when if self._utc and when.tzinfo is UTC else when.astimezone(self._tz)
        key = (local.year, local.month, local.day)
        name = self._cache.get(key)
        if name is None:
            name = f"{self._prefix}-{local.year:04d}.{local.month:02d}.{local.day:02d}"
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = name
        return name


def bulk_body(events: list[Event]) -> bytes:
    """The NDJSON body for ``events``, every one as ``create`` with its own id."""
    parts: list[bytes] = []
    append = parts.append
    action = b'{"create":{"_index":"%s","_id":"%s"}}\n'
    for event in events:
        append(action % (event.index.encode(), event.doc_id.encode()))
        append(event.source)
        append(b"\n")
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
