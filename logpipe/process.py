"""The per-line step: decode → parse → add source fields → enrich → encode, giving Events.

Built once per input (parser chosen, dataset fixed); :meth:`LineProcessor.process`
is the hot path, so it does no lookups it could have done in ``__init__``, and
works a read chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event, Line, encode_source
from logpipe.parsers import Parsed, Parser
from logpipe.sinks.elasticsearch.encode import IdMaker, IndexNamer


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
    """Turns one input's lines into encoded events, a read chunk at a time.

    Per line: decode, parse, add the source fields (``log.file.path``,
    ``log.offset``, ``event.dataset``, ``event.ingested``) and the static
    enrichment, merge the tags, then name the daily index, derive the document
    id and serialise the document. Everything that is the same for a whole
    chunk (the ingest time, the per-file part of the id) is computed once per
    call of :meth:`process`.

    A line without a usable time of its own (a parse failure, a stray print)
    gets the time of the line before it in the same file, tagged
    ``_timestamp_inferred``: it shows up in Kibana next to its neighbours, and
    — since ``resume_time`` gives that time back from the checkpoint after a
    restart — a re-read of the line lands in the same daily index, so its
    deterministic id is answered 409 instead of creating a copy elsewhere.
    Only a file whose first lines are undated falls back to the time of reading.

    ``alert_levels``: the log levels some alert rule matches; an event at one of
    them keeps its fields (enriched) in :attr:`Event.alert` for the rules to see.
    """

    _MAX_FILES = 10_000

    def __init__(
        self,
        config: InputConfig,
        enricher: Enricher,
        namer: IndexNamer,
        resume_time: ResumeTime | None = None,
        alert_levels: frozenset[str] = frozenset(),
    ) -> None:
        self._parse = make_parser(config)
        self._dataset = config.dataset
        self._enrich = enricher
        self._namer = namer
        self._resume_time = resume_time
        self._alert_levels = alert_levels
        self._ids = IdMaker()
        self._last_time: dict[tuple[str, int], datetime] = {}

    def __call__(self, line: Line, now: datetime | None = None) -> Event:
        """One line on its own (see :meth:`process`)."""
        return self.process((line,), now)[0]

    def process(self, lines: Iterable[Line], now: datetime | None = None) -> list[Event]:
        """The events of ``lines``, in order; never raises on bad input."""
        now = now or datetime.now(UTC)
        ingested = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        parse, dataset, enrich, namer = self._parse, self._dataset, self._enrich, self._namer
        make_id, alert_levels, last_time = self._ids.make, self._alert_levels, self._last_time
        events: list[Event] = []
        for line in lines:
            raw = line.raw
            try:
                text = raw.decode("utf-8")
                tags: list[str] = []
            except UnicodeDecodeError:
                # Never fatal: the bytes that are not UTF-8 become U+FFFD and the event says so.
                text = raw.decode("utf-8", "replace")
                tags = ["_invalid_utf8"]
            if line.truncated:
                tags.append("_line_truncated")
            parsed = parse(text)
            fields = parsed.fields
            log = fields.get("log")
            if log is None:
                fields["log"] = {"file": {"path": line.path}, "offset": line.offset}
            else:
                _add_position(fields, log, line)
            if "event" in fields:
                _add_event_fields(fields, dataset, ingested)
            else:
                fields["event"] = {"dataset": dataset, "ingested": ingested}
            if parsed.tags:
                tags += parsed.tags
            timestamp = parsed.timestamp
            key = (line.file_id, line.generation)
            if timestamp is None:
                timestamp = self._previous_time(key) or now
                fields["@timestamp"] = _iso(timestamp)
                tags.append("_timestamp_inferred")
            if len(last_time) >= self._MAX_FILES and key not in last_time:
                last_time.clear()
            last_time[key] = timestamp
            if tags:
                existing = fields.get("tags", enrich.static_tags)
                fields["tags"] = [*existing, *tags] if isinstance(existing, list) else tags
            alert = None
            if alert_levels and _level(fields) in alert_levels:
                enrich(fields)
                alert = fields
                source = encode_source(fields)
            else:
                source = enrich.encode(fields)
            index = namer.name(timestamp)
            events.append(Event(line, index, make_id(line), source, timestamp.timestamp(), alert))
        return events

    def _previous_time(self, key: tuple[str, int]) -> datetime | None:
        known = self._last_time.get(key)
        if known is None and self._resume_time is not None:
            known = self._resume_time(*key)
        return known


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _level(fields: dict[str, Any]) -> str | None:
    log = fields.get("log")
    level = log.get("level") if isinstance(log, dict) else None
    return level.strip().lower() if isinstance(level, str) else None


def _add_position(fields: dict[str, Any], log: Any, line: Line) -> None:
    if not isinstance(log, dict):
        log = fields["log"] = {}
    log["file"] = {"path": line.path}
    log["offset"] = line.offset


def _add_event_fields(fields: dict[str, Any], dataset: str, ingested: str) -> None:
    event = fields["event"]
    if not isinstance(event, dict):
        event = fields["event"] = {}
    event["dataset"] = dataset
    event["ingested"] = ingested
