"""The dead-letter file: documents Elasticsearch refused for good, with the reason.

Append-only JSON lines, fsynced after every write, so a dead letter is on disk
before the line's checkpoint moves past it. Nothing a sink rejects is lost: it
is either in Elasticsearch or here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson

from logpipe.durable import write_fsynced

log = logging.getLogger("logpipe.deadletter")


class DeadLetterFile:
    """Appends rejected documents to ``path`` (the sink counts them)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` (each with at least ``reason`` and ``document``) durably."""
        if not entries:
            return
        now = time.time()
        data = _encode([{"dead_lettered_at": now, **e} for e in entries])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_fsynced(self.path, data, append=True)
        for entry in entries:
            log.warning(
                "document_dead_lettered",
                extra={
                    "reason": entry.get("reason"),
                    "file": entry.get("file"),
                    "offset": entry.get("offset"),
                },
            )

    def read(self) -> list[dict[str, Any]]:
        """Every dead letter on disk, oldest first.

        A torn last line (the disk filled up mid-append) is skipped with a warning:
        its document was never acknowledged, so it is still pending upstream.
        """
        return _read_entries(self.path)

    @property
    def replaying_path(self) -> Path:
        return self.path.with_name(self.path.name + ".replaying")

    def take_for_replay(self) -> list[dict[str, Any]]:
        """Move the dead letters aside for a replay and return them (deduplicated by id).

        Letters refused again during the replay are appended to a fresh file by the
        sink as usual; :meth:`finish_replay` then drops the moved-aside copy. A replay
        that crashes leaves that copy, and the next replay picks it up again.
        """
        if self.path.exists():
            # Append, never rewrite: a crash here leaves every letter in one file or both.
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                data += b"\n"
            write_fsynced(self.replaying_path, data, append=True)
            self.path.unlink()
        entries = _read_entries(self.replaying_path)
        unique = {str(e.get("id")): e for e in entries}
        return list(unique.values())

    def finish_replay(self) -> None:
        self.replaying_path.unlink(missing_ok=True)


def _encode(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e, default=str) + b"\n" for e in entries)


def _read_entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.warning("dead_letter_unreadable", extra={"file": str(path), "line": number})
                continue
            if isinstance(entry, dict):
                out.append(entry)
    return out
