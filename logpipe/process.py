"""The per-line step: decode → parse → add source fields → enrich, giving an Event.

Built once per input (parser chosen, dataset fixed); the call itself is the hot
path, so it does no lookups it could have done in ``__init__``.
"""

from __future__ import annotations

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


class LineProcessor:
    """Turns one input's lines into enriched events."""

    def __init__(self, config: InputConfig, enricher: Enricher) -> None:
        self._parse = make_parser(config)
        self._dataset = config.dataset
        self._enrich = enricher

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
        _source_fields(fields, line, self._dataset, now or datetime.now(UTC))
        self._enrich(fields)
        if parsed.tags:
            tags.extend(parsed.tags)
        return Event(fields, line, tags, parsed.timestamp)


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
