"""Durable writes: the bytes are on disk (fsynced) before the call returns."""

from __future__ import annotations

import os
from pathlib import Path


def write_fsynced(path: Path, data: bytes, *, append: bool = False) -> None:
    """Write ``data`` to ``path`` (replacing it, or appending) and fsync it.

    Raises ``OSError`` (e.g. ENOSPC) having written possibly part of ``data``;
    callers that replace a file write a temp file and rename it, callers that
    append must tolerate a torn last line.
    """
    mode = os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | mode, 0o640)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
