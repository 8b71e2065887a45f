"""The per-line step: decode → parse → add source fields → enrich → encode, in each Event.

Built once per input (parser chosen, dataset fixed); :meth:`LineProcessor.process`
is the hot path, so it does no lookups it could have done in ``__init__``, and
works a read chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zlib import crc32

import orjson

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import BULK_ENTRY, EVENT_OVERHEAD, Event, encode_source
from logpipe.parsers import Parsed, Parser
from logpipe.sinks.elasticsearch.encode import ID_ACTION, ID_FORMAT, IdMaker, IndexNamer


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


ENCODE_FAILURE = "_jsonencodefailure"

ResumeTime = Callable[[str, int], datetime | None]
UsualEncoder = Callable[[bytes], tuple[bytes, datetime] | None]


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
    ``legacy_ids`` says which file generations keep the document ids of the
    earlier logpipe versions (see :class:`~logpipe.sinks.elasticsearch.encode.IdMaker`).
    """

    _MAX_FILES = 10_000

    def __init__(
        self,
        config: InputConfig,
        enricher: Enricher,
        namer: IndexNamer,
        resume_time: ResumeTime | None = None,
        alert_levels: frozenset[str] = frozenset(),
        legacy_ids: Callable[[str, int], bool] | None = None,
    ) -> None:
        self._parse = make_parser(config)
        self._dataset = config.dataset
        self._enrich = enricher
        self._namer = namer
        self._resume_time = resume_time
        self._alert_levels = alert_levels
        self._legacy_ids = legacy_ids
        self._ids = IdMaker(legacy_ids)
        self._usual = _usual_path(config, enricher, alert_levels)
        self._last_time: dict[tuple[str, int], datetime] = {}

    @property
    def last_times(self) -> dict[tuple[str, int], datetime]:
        """The last event time per (file id, generation): what its next undated line inherits."""
        return self._last_time

    def known(self, file_id: str, generation: int) -> tuple[datetime | None, bool]:
        """What another process needs to encode this file generation's lines as this one would.

        The time its next undated line inherits (its last event's, else its
        checkpoint's; ``None``: the time of reading), and whether it keeps the
        older document ids. For :mod:`logpipe.workers`; not on the hot path.
        """
        last = self._last_time.get((file_id, generation))
        if last is None and self._resume_time is not None:
            last = self._resume_time(file_id, generation)
        legacy = self._legacy_ids is not None and self._legacy_ids(file_id, generation)
        return last, legacy

    def carry(self, last_times: dict[tuple[str, int], datetime]) -> None:
        """Take the last event times another process reached encoding these files' lines."""
        for (file_id, generation), when in last_times.items():
            self._remember(file_id, generation, when)

    def __call__(self, line: Event, now: datetime | None = None) -> Event:
        """One line on its own (see :meth:`process`)."""
        return self.process((line,), now)[0]

    def process(self, lines: Iterable[Event], now: datetime | None = None) -> list[Event]:
        """Encode the events ``lines`` in place and return them, in order; never raises
        on bad input. An event encoded again (its put was cancelled) is overwritten.

        The hot path: one pass, no helper calls for the usual line (a helper
        call costs about as much as a dict lookup chain here), the static
        sections spliced in as bytes, the index name reused while the day holds,
        the last event time per file kept in locals and stored once per run of
        lines from one file, and each event's bulk item built in one formatting.
        It is longer than a function should be for that reason alone. The
        usual line of a parser with a usual path (most lines) takes the first
        branch; every other line the parsed-fields branch, which shares most of
        the first one's locals. Both stay inline, each commented: as a method,
        either would cost a call and a result tuple per line.
        """
        now = now or datetime.now(UTC)
        ingested = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        parse, dataset, enrich, namer = self._parse, self._dataset, self._enrich, self._namer
        ids, alert_levels, dumps = self._ids, self._alert_levels, orjson.dumps
        static_keys, splice, utc_days = enrich.static_keys, enrich.splice, namer.utc_days
        usual, usual_cut, usual_skeleton = self._usual
        event_json = dumps({"dataset": dataset, "ingested": ingested})
        path, path_json = "", b'""'
        day: float | None = None
        index_bytes = b""
        file_id: str | None = None
        generation = -1
        id_prefix: str | None = None
        id_prefix_bytes = b""
        # The usual line's bulk item with all but the per-line parts filled in (see
        # UsualPath); made again whenever the index, the file or its path changes.
        usual_entry: bytes | None = None
        usual_document = b""
        last: datetime | None = None
        events: list[Event] = []
        append = events.append
        for line in lines:
            if line.file_id is not file_id or line.generation != generation:
                if file_id is not None:
                    self._remember(file_id, generation, last)
                file_id, generation = line.file_id, line.generation
                last = self._last_time.get((file_id, generation))
                id_prefix = ids.prefix(file_id, generation)
                id_prefix_bytes = id_prefix.encode() if id_prefix is not None else b""
                usual_entry = None
            # The usual line is encoded from its bytes, if its parser has such a path
            # (see UsualPath): no decoding, no Parsed, none of the dict steps below.
            found = usual(line.raw) if usual is not None and not line.truncated else None
            if found is not None:
                # Its fields come as JSON already; the bulk item below splices the
                # position and event fields after them (usual_entry), in the order
                # the dict path writes them.
                own, timestamp = found
                if line.path is not path:
                    path, path_json = line.path, dumps(line.path)
                    usual_entry = None
                json_head, json_tail = own[:usual_cut], None
                alert = None
            else:
                try:
                    text = line.raw.decode()
                    head = None
                except UnicodeDecodeError:
                    # Never fatal: the bytes that are not UTF-8 become U+FFFD and the event
                    # says so.
                    text = line.raw.decode("utf-8", "replace")
                    head = ["_invalid_utf8"]
                if line.truncated:
                    head = [*(head or ()), "_line_truncated"]
                parsed = parse(text)
                tags = parsed.tags if head is None else head + parsed.tags
                fields = parsed.fields
                log = fields.get("log")
                if type(log) is dict:
                    log["file"] = {"path": line.path}
                    log["offset"] = line.offset
                else:  # absent (or not an object: the position wins)
                    fields["log"] = {"file": {"path": line.path}, "offset": line.offset}
                event = fields.get("event")
                if type(event) is dict:
                    event["dataset"] = dataset
                    event["ingested"] = ingested
                else:
                    fields["event"] = {"dataset": dataset, "ingested": ingested}
                if parsed.timestamp is not None:
                    timestamp = parsed.timestamp
                else:
                    if last is None and self._resume_time is not None:
                        last = self._resume_time(file_id, generation)
                    timestamp = last or now
                    fields["@timestamp"] = _iso(timestamp)
                    tags = [*tags, "_timestamp_inferred"]
                if tags:
                    existing = fields.get("tags", enrich.static_tags)
                    fields["tags"] = [*existing, *tags] if isinstance(existing, list) else tags
                alert = None
                json_tail = b""
                try:
                    if alert_levels and _level(fields) in alert_levels:
                        enrich(fields)
                        alert = fields
                        json_head = encode_source(fields)
                    elif fields.keys().isdisjoint(static_keys):  # walks the few static keys
                        json_head, json_tail = dumps(fields, default=str)[:-1], splice
                    else:
                        json_head = enrich.encode(fields)
                except TypeError as exc:  # orjson's JSONEncodeError is a TypeError
                    fields = _unencodable(text, fields, exc, enrich.static_tags)
                    enrich(fields)
                    alert = fields if alert_levels and _level(fields) in alert_levels else None
                    json_head = encode_source(fields)
            last = timestamp
            epoch = timestamp.timestamp()
            if not utc_days or epoch // 86400 != day:
                day = epoch // 86400
                index_bytes = namer.name(timestamp).encode()
                usual_entry = None
            # The bulk item in one formatting: action line, document, newline.
            if json_tail is None:  # the usual line: only the id's number, the line's
                # own fields and its offset are formatted per line (see UsualPath)
                if usual_entry is None:
                    usual_document = usual_skeleton % (
                        _escape_percent(path_json),
                        _escape_percent(event_json),
                        _escape_percent(splice),
                    )
                    action = ID_ACTION % (
                        _escape_percent(index_bytes),
                        _escape_percent(id_prefix_bytes),
                    )
                    usual_entry = action + usual_document + b"\n"
                if id_prefix is not None:  # IdMaker.make, inline
                    number = line.offset << 32 | crc32(line.raw)
                    entry = usual_entry % (number, json_head, line.offset)
                else:  # a file that keeps older ids
                    document = usual_document % (json_head, line.offset)
                    entry = BULK_ENTRY % (index_bytes, ids.make(line).encode(), document, b"")
            else:
                if id_prefix is not None:
                    doc_id = ID_FORMAT % (id_prefix, line.offset << 32 | crc32(line.raw))
                else:
                    doc_id = ids.make(line)
                entry = BULK_ENTRY % (index_bytes, doc_id.encode(), json_head, json_tail)
            # Event.encoded, inline: the line becomes its event without a call.
            line.entry, line.event_time, line.alert = entry, epoch, alert
            line.size = len(entry) + EVENT_OVERHEAD
            append(line)
        if file_id is not None:
            self._remember(file_id, generation, last)
        return events

    def _remember(self, file_id: str, generation: int, when: datetime | None) -> None:
        """Keep the last event time of a file (what its next undated line inherits)."""
        if when is None:
            return
        last_time, key = self._last_time, (file_id, generation)
        if len(last_time) >= self._MAX_FILES and key not in last_time:
            last_time.clear()
        last_time[key] = when


class UsualPath(NamedTuple):
    """How an input's usual lines skip the parser and the dict (see :meth:`LineProcessor.process`).

    ``encode`` gives, for a usual line's raw bytes, ``orjson.dumps`` of the
    fields its parser would give, and its time (``None`` for any other line).
    The document is those bytes cut at ``cut`` (``-1``: before the closing
    brace; ``-2``: also inside the ``log`` object the parser put last), then the
    position, the event fields and the static sections.

    ``document`` is that document as a skeleton: the path, the event fields and
    the static sections are filled in once per run of lines (they are the same
    for every line of a file in one call), which leaves a template for the cut
    bytes (``%b``) and the offset (``%d``) of each line. Together with
    :data:`~logpipe.sinks.elasticsearch.encode.ID_ACTION` it makes the template
    of the whole bulk item: per line, one formatting of three values. (Each
    value formatted costs: the item with all eight took ~4.8k instructions of
    a line's ~58k, with three ~3.4k; callgrind.)
    """

    encode: UsualEncoder | None
    cut: int
    document: bytes


_POSITION = b'"file":{"path":%b},"offset":%%d}'
_NGINX_DOCUMENT = b'%%b,"log":{' + _POSITION + b',"event":%b%b'
_APP_DOCUMENT = b"%%b," + _POSITION + b',"event":%b%b'
_NO_USUAL_PATH = UsualPath(None, -1, b"")
# The top-level keys of a usual nginx line's document before the static sections.
_NGINX_KEYS = frozenset(
    {"message", "source", "user", "@timestamp", "url", "user_agent", "http", "log", "event"}
)


def _usual_path(config: InputConfig, enricher: Enricher, alert_levels: frozenset[str]) -> UsualPath:
    """The usual-line path of an input, if its parser has one.

    Only when no static section shares a top-level key with such a document:
    then the dict path would merge them, and splicing would write a key twice.
    An application line at an alert level is left to the dict path, which keeps
    its fields for the alert rules.
    """
    static = enricher.static_keys
    if config.parser == "nginx" and static.isdisjoint(_NGINX_KEYS):
        from logpipe.parsers.nginx_encode import encode_usual

        return UsualPath(encode_usual, -1, _NGINX_DOCUMENT)
    namespace_root = config.extra_namespace.split(".")[0]
    # A namespace named "event" is no use either: the dict path merges the event fields in.
    if config.parser == "app_json" and namespace_root != "event":
        from logpipe.parsers.app_json import MAPPED_ROOTS, make_usual_encoder

        if not static.isdisjoint(MAPPED_ROOTS | {"event", namespace_root}):
            return _NO_USUAL_PATH
        encode = make_usual_encoder(config.extra_namespace, alert_levels)
        return UsualPath(encode, -2, _APP_DOCUMENT)
    return _NO_USUAL_PATH


def _unencodable(
    text: str, fields: dict[str, Any], error: TypeError, static_tags: list[Any] | None
) -> dict[str, Any]:
    """The document of a line whose parsed fields orjson cannot write, with the line kept.

    Parsed JSON can hold what orjson refuses to encode: nesting deeper than 254
    levels (orjson reads up to 1024), or a lone surrogate (``"\\ud800"``) in a
    line only Python's own JSON reader took. Such a line is still shipped: the
    whole line as ``message``, tagged ``_jsonencodefailure``, with the time,
    position, dataset, tags and level already worked out (the level so that an
    alert rule still sees an ERROR line).
    """
    log = fields["log"]
    kept_log = {"file": log["file"], "offset": log["offset"]}
    level = log.get("level")
    if isinstance(level, str):
        kept_log["level"] = level.encode("utf-8", "replace").decode()
    tags = fields.get("tags", static_tags)
    kept_tags = [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []
    return {
        "@timestamp": fields["@timestamp"],
        "message": text,
        "log": kept_log,
        "event": fields["event"],
        "error": {"message": f"the parsed fields cannot be written as JSON: {error}"},
        "tags": [*kept_tags, ENCODE_FAILURE],
    }


def _escape_percent(data: bytes) -> bytes:
    """``data`` as literal text of a %-format (a path or a static field may hold ``%``)."""
    return data.replace(b"%", b"%%")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _level(fields: dict[str, Any]) -> str | None:
    log = fields.get("log")
    level = log.get("level") if isinstance(log, dict) else None
    return level.strip().lower() if isinstance(level, str) else None
