"""The checkpoint file's format: one entry per file, parsed and validated.

Format (``version`` first so a future format can be told apart)::

    {"version": 1,
     "files": {"<fingerprint>": {"path": str, "offset": int,
                                  "generation": int, "updated": float,
                                  "copy_of": "<fingerprint>",     # optional
                                  "event_time": float,            # optional
                                  "acked_at": float,              # optional
                                  "ids": 1 | 2}}}                 # optional: 1

``offset`` is the end of the last line whose delivery was acknowledged, so a
restart resumes exactly after it. An entry with ``copy_of`` is a file found to
be a copy of another's content (copytruncate's ``app.log.1``): its lines are
read, and acknowledged, as the original's ``generation``, so the entry itself
never advances; it only says "not a new file" to the next start.

``updated`` changes whenever the entry does (registered, advanced, generation
ended); ``acked_at`` only when an acknowledgement moves the offset, so
``logpipe status`` can tell how long ago a file last made progress. Files
written before ``acked_at`` existed simply lack it (read as never acked), and
older readers ignore it, so the format version stays 1.

``ids`` is the document id scheme the entry's ``generation`` is shipped with
(see ``logpipe.sinks.elasticsearch.encode``). Entries written before scheme 2
lack it and read as 1: after an in-place upgrade, the lines re-read past such a
checkpoint were already sent by the old version under scheme-1 ids, so that
generation keeps them or every re-read line would be indexed a second time.
A new file, or a new generation of one, starts with 2. Older readers ignore
the key, so the format version stays 1: a downgraded logpipe simply drops it,
and what it writes then reads back as 1, the ids it used.

Pure apart from :func:`read_entries` reading the file; writing it, atomically,
is :class:`logpipe.checkpoints.store.CheckpointStore`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


@dataclass(slots=True, frozen=True)
class FileCheckpoint:
    """Where reading of one file resumes: ``offset`` within ``generation``.

    ``path`` is informational (the last name the file was read under).
    ``updated`` is the wall-clock time of the last advance. ``copy_of``: the
    file id whose content this file is a copy of (read under that id).
    ``event_time``: the (epoch) time of the last acknowledged event, which an
    undated line read next inherits, so that a re-read names the same index.
    ``acked_at``: the wall-clock time an acknowledgement last moved ``offset``
    (``None``: never, e.g. only registered). ``ids``: the document id scheme of
    ``generation`` (1: written by a logpipe before scheme 2, see the module
    docstring).
    """

    path: str
    offset: int
    generation: int
    updated: float = 0.0
    copy_of: str | None = None
    event_time: float | None = None
    acked_at: float | None = None
    ids: int = 2


def read_entries(path: Path) -> dict[str, FileCheckpoint]:
    """Parse and validate a checkpoint file; ValueError on anything unexpected."""
    doc = json.loads(path.read_bytes())
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown checkpoint format: {str(doc)[:80]!r}")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ValueError("'files' is not an object")
    return {str(file_id): decode_entry(entry) for file_id, entry in files.items()}


def encode_entry(cp: FileCheckpoint) -> dict[str, Any]:
    """The JSON object of one entry (optional fields only when set)."""
    entry: dict[str, Any] = {
        "path": cp.path,
        "offset": cp.offset,
        "generation": cp.generation,
        "updated": cp.updated,
    }
    if cp.copy_of is not None:
        entry["copy_of"] = cp.copy_of
    if cp.event_time is not None:
        entry["event_time"] = cp.event_time
    if cp.acked_at is not None:
        entry["acked_at"] = cp.acked_at
    entry["ids"] = cp.ids
    return entry


def decode_entry(entry: Any) -> FileCheckpoint:
    """One entry from its JSON object; ValueError if any field is invalid."""
    if not isinstance(entry, dict):
        raise ValueError("checkpoint entry is not an object")
    path, updated, copy_of = entry.get("path"), entry.get("updated", 0.0), entry.get("copy_of")
    event_time, acked_at = entry.get("event_time"), entry.get("acked_at")
    # Missing: written by a logpipe from before id scheme 2, which used scheme 1.
    ids = entry.get("ids", 1)
    if (
        not isinstance(path, str)
        or isinstance(updated, bool)
        or not isinstance(updated, int | float)
        or not (copy_of is None or isinstance(copy_of, str))
        or not _optional_time(event_time)
        or not _optional_time(acked_at)
        or type(ids) is not int  # not a bool, nor 1.0
        or ids not in (1, 2)
    ):
        raise ValueError(f"invalid checkpoint entry: {str(entry)[:80]!r}")
    return FileCheckpoint(
        path,
        _count(entry.get("offset")),
        _count(entry.get("generation")),
        float(updated),
        copy_of,
        None if event_time is None else float(event_time),
        None if acked_at is None else float(acked_at),
        ids,
    )


def _optional_time(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _count(value: Any) -> int:
    # bool is an int subclass: `true` must not read as offset 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"invalid checkpoint count: {value!r}")
    return value
