"""The one type that travels between stages: :class:`Event`.

An event starts as what a source hands on: the raw bytes of one complete line
and where in which file it came from. The per-line step then encodes it in
place: the line parsed, enriched and written as an Elastic Common Schema
document, inside the item the bulk request carries for it. It keeps its
position throughout, so that the sink's acknowledgement can advance the file's
checkpoint.

Every queue in logpipe carries events and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# One item of a bulk request: the action line, the document, the newline. The
# document comes in two parts, so that the per-line step can splice the static
# sections after the event's own fields without joining them first.
BULK_ACTION = b'{"create":{"_index":"%b","_id":"%b"}}\n'
BULK_ENTRY = BULK_ACTION + b"%b%b\n"
# What an encoded event costs besides its entry, for the queue's byte budget
# (see Event.size).
EVENT_OVERHEAD = 400


@dataclass(slots=True, init=False)
class Event:
    """One line read from a file and, once the per-line step has run, its bulk item.

    **Where it comes from.** ``offset`` is the byte offset of the line's first
    byte and ``end`` the offset just past its newline: once the event is
    acknowledged, ``end`` is where a restart resumes. ``file_id`` is the
    file's fingerprint (stable across renames), ``generation`` counts the
    truncations seen for that file, so a different line written at a reused
    offset never shares an id with an old one. ``raw`` is the line without its
    newline, cut at the input's ``max_line_bytes`` if ``truncated``.

    **What it becomes.** A source makes the event from those alone; the
    per-line step (:meth:`~logpipe.process.LineProcessor.process`) then sets
    ``entry``, ``event_time``, ``alert`` and ``size`` on it. The document is
    serialised as soon as the line is parsed, together with its bulk action
    line (``entry``, the bytes the bulk request carries for it), so what waits
    in the queue is one bytes object per event rather than a tree of small
    dicts: less memory, nothing for the cyclic garbage collector to walk, and a
    bulk body is one join of entries (building each action line at send time
    meant touching every queued event again once it had left the CPU caches:
    ~1 us per event, measured). Once the event is queued, the pipeline lets go
    of ``raw``: the entry carries the document.

    ``event_time`` is the event's own time (epoch seconds; inferred when the
    line had none), which the checkpoint keeps. ``alert`` holds the parsed
    fields only for an event some alert rule may want (``None`` otherwise).
    ``repairs`` counts mapping-conflict repairs. ``size`` is the approximate
    memory cost, counted against the queue's byte budget: the entry and the
    object around it (:data:`EVENT_OVERHEAD`, 400 bytes, measured with
    tracemalloc when the line and its encoding were two objects; kept as a
    margin). Fixed when the event is
    encoded, so a repair that re-encodes it in flight cannot skew the budget.

    Where it goes, :attr:`index` and :attr:`doc_id`, is read back from the
    entry's action line: only the rare paths (a repair, a dead letter) ask, and
    not storing them saves the per-line step a string per line. An event is
    not re-addressed once encoded; only its document may be replaced
    (``source``), which rebuilds the entry.

    One object per line, made once: a line and its encoding as two objects cost
    ~2.5k more instructions per line (callgrind), about 4 % of the whole. Not
    ``frozen`` for the same reason (a frozen dataclass costs five times as much
    to create).
    """

    file_id: str
    generation: int
    path: str
    offset: int
    end: int
    raw: bytes
    input_name: str
    truncated: bool
    entry: bytes
    event_time: float | None
    alert: dict[str, Any] | None
    repairs: int
    size: int

    def __init__(
        self,
        file_id: str,
        generation: int,
        path: str,
        offset: int,
        end: int,
        raw: bytes,
        input_name: str,
        truncated: bool = False,
    ) -> None:
        self.file_id = file_id
        self.generation = generation
        self.path = path
        self.offset = offset
        self.end = end
        self.raw = raw
        self.input_name = input_name
        self.truncated = truncated
        self.entry = b""
        self.event_time = None
        self.alert = None
        self.repairs = 0
        self.size = 0

    def encoded(
        self, entry: bytes, event_time: float | None = None, alert: dict[str, Any] | None = None
    ) -> Event:
        """This event with its bulk item set (the per-line step does the same inline)."""
        self.entry = entry
        self.event_time = event_time
        self.alert = alert
        self.size = len(entry) + EVENT_OVERHEAD
        return self

    @classmethod
    def of(
        cls,
        position: Event,
        index: str,
        doc_id: str,
        source: bytes,
        event_time: float | None = None,
        alert: dict[str, Any] | None = None,
    ) -> Event:
        """A new event at ``position``'s place: ``source``, bound for ``index`` as ``doc_id``."""
        event = cls(
            position.file_id,
            position.generation,
            position.path,
            position.offset,
            position.end,
            position.raw,
            position.input_name,
            position.truncated,
        )
        entry = BULK_ENTRY % (index.encode(), doc_id.encode(), source, b"")
        return event.encoded(entry, event_time, alert)

    @property
    def index(self) -> str:
        """The index the document is bound for."""
        return str(self._action()["_index"])

    @property
    def doc_id(self) -> str:
        """The document's id."""
        return str(self._action()["_id"])

    def _action(self) -> dict[str, Any]:
        entry = self.entry
        action: dict[str, Any] = orjson.loads(entry[: entry.index(b"\n")])["create"]
        return action

    @property
    def source(self) -> bytes:
        """The document's JSON bytes."""
        entry = self.entry
        return entry[entry.index(b"\n") + 1 : -1]

    @source.setter
    def source(self, value: bytes) -> None:
        entry = self.entry
        self.entry = b"%b%b\n" % (entry[: entry.index(b"\n") + 1], value)

    def document(self) -> dict[str, Any]:
        """The document as a dict (decoded again: only for the rare paths that edit it)."""
        doc: dict[str, Any] = orjson.loads(self.source)
        return doc


def encode_source(doc: dict[str, Any]) -> bytes:
    """The JSON bytes of one document (values orjson cannot encode become strings)."""
    return orjson.dumps(doc, default=str)


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``value`` at a dotted path (``"log.origin.file.line"``) in a nested dict."""
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def get_path(doc: dict[str, Any], dotted: str) -> Any:
    """Return the value at a dotted path in a nested dict, or ``None``."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
