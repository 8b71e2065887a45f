"""The types that travel between stages.

A :class:`Line` is what a source hands on: the raw bytes of one complete line and
where in which file it came from. An :class:`Event` is that line parsed,
enriched and encoded into an Elastic Common Schema document, still carrying its
position so that the sink's acknowledgement can advance the file's checkpoint.

Every queue in logpipe carries one of these two types and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Line:
    """One complete line read from a file.

    Not changed once made, except that the pipeline lets go of ``raw`` once the
    line's event is queued (the event carries the encoded document). Not
    ``frozen``: a frozen dataclass costs five times as much to create, and one
    is created per line.

    ``offset`` is the byte offset of the line's first byte and ``end`` the offset
    just past its newline: once the line is acknowledged, ``end`` is where a
    restart resumes. ``file_id`` is the file's fingerprint (stable across
    renames), ``generation`` counts the truncations seen for that file, so a
    different line written at a reused offset never shares an id with an old one.
    """

    file_id: str
    generation: int
    path: str
    offset: int
    end: int
    raw: bytes
    input_name: str
    truncated: bool = False


# One item of a bulk request: the action line, the document, the newline. The
# document comes in two parts, so that the per-line step can splice the static
# sections after the event's own fields without joining them first.
BULK_ACTION = b'{"create":{"_index":"%b","_id":"%b"}}\n'
BULK_ENTRY = BULK_ACTION + b"%b%b\n"


@dataclass(slots=True, init=False)
class Event:
    """One line, parsed, enriched and encoded: an item ready for the bulk API.

    The document is serialised as soon as the line is parsed, together with its
    bulk action line (``entry``, the bytes the bulk request carries for it), so
    what waits in the queue is one bytes object per event rather than a tree
    of small dicts: less memory, nothing for the cyclic garbage collector to
    walk, and a bulk body is one join of entries (building each action line at
    send time meant touching every queued event again once it had left the
    CPU caches: ~1 us per event, measured). ``line`` keeps the source position
    for acknowledgement; ``event_time`` is the event's own time (epoch seconds;
    inferred when the line had none), which the checkpoint keeps. ``alert``
    holds the parsed fields only for an event some alert rule may want
    (``None`` otherwise). ``repairs`` counts mapping-conflict repairs.

    ``size`` is the approximate memory cost, counted against the queue's byte
    budget: the entry and the objects around it (about 400 bytes, measured with
    tracemalloc); the raw line is let go once the event is queued. Fixed when
    the event is made, so a repair that re-encodes it in flight cannot skew the
    budget.

    Where it goes, :attr:`index` and :attr:`doc_id`, is read back from the
    entry's action line: only the rare paths (a repair, a dead letter) ask, and
    not storing them saves the per-line step a string per line. An event is
    not re-addressed once made (make a new one); only its document may be
    replaced (``source``), which rebuilds the entry.

    The constructor takes the ``entry`` the per-line step built in one
    formatting; everyone else passes the address and the document to :meth:`of`.
    """

    line: Line
    entry: bytes
    event_time: float | None
    alert: dict[str, Any] | None
    repairs: int
    size: int

    def __init__(
        self,
        line: Line,
        entry: bytes,
        event_time: float | None = None,
        alert: dict[str, Any] | None = None,
    ) -> None:
        self.line = line
        self.entry = entry
        self.event_time = event_time
        self.alert = alert
        self.repairs = 0
        self.size = len(entry) + 400

    @classmethod
    def of(
        cls,
        line: Line,
        index: str,
        doc_id: str,
        source: bytes,
        event_time: float | None = None,
        alert: dict[str, Any] | None = None,
    ) -> Event:
        """The event of ``source`` bound for ``index`` as ``doc_id``."""
        entry = BULK_ENTRY % (index.encode(), doc_id.encode(), source, b"")
        return cls(line, entry, event_time, alert)

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
