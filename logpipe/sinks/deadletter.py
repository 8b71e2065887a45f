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
    """Appends rejected documents to ``path``; ``count`` is this process's total."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` (each with at least ``reason`` and ``document``) durably."""
        if not entries:
            return
        now = time.time()
        data = b"".join(
            orjson.dumps({"dead_lettered_at": now, **e}, default=str) + b"\n" for e in entries
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_fsynced(self.path, data, append=True)
        self.count += len(entries)
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
        """Every dead letter on disk (for status and tests)."""
        if not self.path.exists():
            return []
        out: list[dict[str, Any]] = []
        with self.path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    out.append(orjson.loads(raw))
        return out
