"""The per-line step: decode → parse → add source fields → enrich, giving an Event.

Built once per input (parser chosen, dataset fixed); the call itself is the hot
path, so it does no lookups it could have done in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event, Line
from logpipe.parsers import Parsed, Parser


def plain_parser(text: str) -> Parsed:
    """The ``plain`` parser: the line is the message."""
    return Parsed({"message": text})


def make_parser(config: InputConfig) -> Parser:
    """The parser an input names."""
    if config.parser == "app_json":
        from logpipe.parsers.app_json import make_app_json_parser

        return make_app_json_parser(config.extra_namespace)
    if config.parser == "nginx":
        from logpipe.parsers.nginx import parse_nginx

        return parse_nginx
    if config.parser == "nginx_json":
        from logpipe.parsers.nginx import parse_nginx_json

        return parse_nginx_json
    return plain_parser


ResumeTime = Callable[[str, int], datetime | None]


class LineProcessor:
    """Turns one input's lines into enriched events.

    A line without a usable time of its own (a parse failure, a stray print)
    gets the time of the line before it in the same file, tagged
    ``_timestamp_inferred``: it shows up in Kibana next to its neighbours, and
    — since ``resume_time`` gives that time back from the checkpoint after a
    restart — a re-read of the line lands in the same daily index, so its
    deterministic id is answered 409 instead of creating a copy elsewhere.
    Only a file whose first lines are undated falls back to the time of reading.
    """

    _MAX_FILES = 10_000

    def __init__(
        self, config: InputConfig, enricher: Enricher, resume_time: ResumeTime | None = None
    ) -> None:
        self._parse = make_parser(config)
        self._dataset = config.dataset
        self._enrich = enricher
        self._resume_time = resume_time
        self._last_time: dict[tuple[str, int], datetime] = {}

    def __call__(self, line: Line, now: datetime | None = None) -> Event:
        tags: list[str] = []
        try:
            text = line.raw.decode("utf-8")
        except UnicodeDecodeError:
            # Never fatal: the bytes that are not UTF-8 become U+FFFD and the event says so.
            text = line.raw.decode("utf-8", "replace")
            tags.append("_invalid_utf8")
        if line.truncated:
            tags.append("_line_truncated")
        parsed = self._parse(text)
        fields = parsed.fields
        now = now or datetime.now(UTC)
        _source_fields(fields, line, self._dataset, now)
        self._enrich(fields)
        if parsed.tags:
            tags.extend(parsed.tags)
        timestamp = parsed.timestamp
        key = (line.file_id, line.generation)
        if timestamp is None:
            timestamp = self._previous_time(key) or now
            fields["@timestamp"] = _iso(timestamp)
            tags.append("_timestamp_inferred")
        if len(self._last_time) >= self._MAX_FILES and key not in self._last_time:
            self._last_time.clear()
        self._last_time[key] = timestamp
        return Event(fields, line, tags, timestamp)

    def _previous_time(self, key: tuple[str, int]) -> datetime | None:
        known = self._last_time.get(key)
        if known is None and self._resume_time is not None:
            known = self._resume_time(*key)
        return known


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _source_fields(fields: dict[str, Any], line: Line, dataset: str, now: datetime) -> None:
    log = fields.get("log")
    if not isinstance(log, dict):
        log = fields["log"] = {}
    log["file"] = {"path": line.path}
    log["offset"] = line.offset
    event = fields.get("event")
    if not isinstance(event, dict):
        event = fields["event"] = {}
    event["dataset"] = dataset
    event["ingested"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
