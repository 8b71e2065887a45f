"""What crosses the pipes between the main process and a worker, and how it is framed.

Every message is an 8-byte big-endian length, then a pickle. The first
message to a worker is its :class:`WorkerSetup`; then each request is
``(input name, Columns, Known, now)`` and each answer an :data:`Encoded`, in
the order of the requests.
"""

from __future__ import annotations

import contextlib
import fcntl
import struct
from dataclasses import dataclass
from datetime import datetime
from io import RawIOBase
from typing import Any

from logpipe.config import InputConfig

FileKey = tuple[str, int]
# What a worker needs to know of each file generation in a chunk: the time its
# next undated line inherits, and whether it keeps the older document ids.
Known = dict[FileKey, tuple[datetime | None, bool]]
# A chunk's lines as columns (one list per attribute; pickled in C, no tuple per line):
# file ids, generations, paths, offsets, ends, raw lines, truncated flags.
Columns = tuple[list[str], list[int], list[str], list[int], list[int], list[bytes], list[bool]]
# Per line: the bulk item, the event time, the alert fields; then the new last times.
Encoded = tuple[
    list[bytes], list[float | None], list[dict[str, Any] | None], dict[FileKey, datetime]
]

HEADER = struct.Struct("!Q")
# A chunk's request is ~0.3 MB and its answer ~0.9 MB: a pipe of 1 MiB (the
# most an unprivileged process may ask by default) instead of 64 KiB takes
# either in a few writes.
PIPE_SIZE = 1 << 20


class WorkerDied(Exception):
    """A worker process exited or closed its pipe: the pool is given up."""


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """Everything a worker needs to build the per-line step of every input (picklable)."""

    inputs: dict[str, InputConfig]
    fields: dict[str, Any]
    index_prefix: str
    index_timezone: str
    alert_levels: frozenset[str]


def widen(pipe: Any) -> None:
    """Ask for a :data:`PIPE_SIZE` pipe buffer (Linux; elsewhere, or refused, keep the default)."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def read_message(reader: RawIOBase) -> bytearray | None:
    """The next message from a blocking pipe, or ``None`` at its end."""
    header = _read_exactly(reader, HEADER.size)
    if header is None:
        return None
    return _read_exactly(reader, HEADER.unpack(header)[0])


def write_message(writer: RawIOBase, message: bytes) -> None:
    """Write one message to a blocking pipe."""
    writer.write(HEADER.pack(len(message)))
    with memoryview(message) as view:
        written = 0
        while written < len(message):
            written += writer.write(view[written:]) or 0


def _read_exactly(reader: RawIOBase, size: int) -> bytearray | None:
    buffer = bytearray(size)
    got = 0
    with memoryview(buffer) as view:
        while got < size:
            count = reader.readinto(view[got:])
            if not count:
                return None
            got += count
    return buffer
