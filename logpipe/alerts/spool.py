"""A small durable spool of alert e-mails waiting to be sent.

Layout, under the alert directory (``<data_dir>/alerts/`` by default)::

    pending/<id>.json   one file per e-mail not yet accepted by the SMTP server
    failed/<id>.json    e-mails the server refused for good (5xx), kept, not retried
    state.json          the policy's state: pending digest counts, the cap's sends

Every e-mail is written here (temp file, fsync, rename, fsync of the
directory) *before* its first send attempt, and removed only once the SMTP
server has accepted it; at start the pending files are sent first. Ids grow
with time (``<ms>-<boot>-<seq>``), so the directory sorts oldest first, and the
Message-ID is derived from the id, so a re-send is the same message.

Crash windows, both at-least-once:

* killed after the server accepted an e-mail and before its file was removed:
  that one e-mail is sent again at the next start, with the same Message-ID
  (mail clients and most servers de-duplicate on it);
* killed after a digest was spooled and before the policy state was saved:
  that digest's count may be reported again by the next start.

Bounded: past ``max_entries`` pending e-mails (SMTP down for long), new
e-mails are merged into one summary entry instead (their counts add up in it),
so the spool does not grow without bound.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logpipe.alerts.outgoing import Outgoing, merge, summarise
from logpipe.durable import write_fsynced


def spool_dir(data_dir: Path) -> Path:
    """Where a pipeline with data directory ``data_dir`` spools its alert e-mails."""
    return data_dir / "alerts"


SPOOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled e-mail; ``summary`` entries can take further merges."""

    id: str
    outgoing: Outgoing
    summary: bool = False


class AlertSpool:
    """Pending alert e-mails on disk (see the module docstring).

    Not thread-safe; one owner (the alert service) on one event loop. Every
    method that writes raises ``OSError`` when the disk refuses, having changed
    nothing in memory.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_entries: int = 1000,
        sample_ids: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.directory = directory
        self.pending_dir = directory / "pending"
        self.failed_dir = directory / "failed"
        self.state_path = directory / "state.json"
        self.max_entries = max_entries
        self._sample_ids = sample_ids
        self._clock = clock
        self._boot = secrets.token_hex(4)
        self._seq = 0
        self._entries: dict[str, SpoolEntry] = {}
        self.in_flight: str | None = None
        """The entry being sent right now: never merged into."""

    def __len__(self) -> int:
        return len(self._entries)

    # -- start-up ----------------------------------------------------------------

    def load(self) -> list[str]:
        """Create the directories and read the pending entries, oldest first.

        Returns one problem description per entry that could not be read; such
        an entry is moved to ``failed/`` (kept for a human, never re-sent).
        """
        for folder in (self.directory, self.pending_dir, self.failed_dir):
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        problems: list[str] = []
        self._entries.clear()
        for path in sorted(self.pending_dir.iterdir()):
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a write that never reached its rename
                continue
            if path.suffix != ".json":
                continue
            try:
                entry = _decode(json.loads(path.read_bytes()))
                if entry.id != path.stem:
                    raise ValueError(f"holds entry {entry.id!r}, not {path.stem!r}")
            except (OSError, ValueError) as exc:
                problems.append(f"{path.name}: {exc}")
                os.replace(path, self.failed_dir / path.name)
                continue
            self._entries[entry.id] = entry
        return problems

    # -- the spool proper --------------------------------------------------------

    def add(self, outgoing: Outgoing) -> SpoolEntry:
        """Persist ``outgoing``; when full, merge it into a summary entry instead."""
        if len(self._entries) >= self.max_entries:
            target = self._merge_target()
            if target is not None:
                entry = SpoolEntry(
                    target.id, merge(target.outgoing, outgoing, self._sample_ids), summary=True
                )
            else:
                entry = SpoolEntry(self._new_id(), summarise(outgoing), summary=True)
        else:
            entry = SpoolEntry(self._new_id(), outgoing)
        self._write(self.pending_dir, entry.id, _encode(entry))
        self._entries[entry.id] = entry
        return entry

    def entries(self) -> list[SpoolEntry]:
        """The pending entries, oldest first."""
        return sorted(self._entries.values(), key=lambda entry: entry.id)

    def get(self, entry_id: str) -> SpoolEntry | None:
        return self._entries.get(entry_id)

    def ack(self, entry_id: str) -> None:
        """The server accepted the e-mail: forget it.

        Forgotten in memory even if the disk then refuses (``OSError``): this
        process will not send it again, a restart would (at least once).
        """
        self._entries.pop(entry_id, None)
        (self.pending_dir / f"{entry_id}.json").unlink(missing_ok=True)
        _fsync_dir(self.pending_dir)

    def fail(self, entry_id: str, reason: str) -> None:
        """The server refused the e-mail for good: move it to ``failed/`` with the reason."""
        # Forgotten in memory first: if the disk refuses, this process does not
        # try the entry again (the pending file stays, for the next start).
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return
        data = {**_encode(entry), "error": reason, "failed_at": self._clock()}
        self._write(self.failed_dir, entry_id, data)
        self.ack(entry_id)

    # -- policy state ------------------------------------------------------------

    def save_state(self, state: dict[str, Any]) -> None:
        """Persist the policy's state (atomically: the old or the new, never half)."""
        self._write(self.directory, "state", state, name="state.json")

    def load_state(self) -> dict[str, Any] | None:
        """The saved policy state, or None when there is none.

        Raises ValueError when the file exists but cannot be read; it is then
        renamed to ``state.json.corrupt`` so the next start begins clean.
        """
        try:
            data = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            os.replace(self.state_path, self.state_path.with_name("state.json.corrupt"))
            raise ValueError(f"unreadable alert state: {exc}") from None
        if not isinstance(data, dict):
            os.replace(self.state_path, self.state_path.with_name("state.json.corrupt"))
            raise ValueError("unreadable alert state: not an object")
        return data

    # -- internals ---------------------------------------------------------------

    def _merge_target(self) -> SpoolEntry | None:
        for entry in reversed(self.entries()):
            if entry.summary and entry.id != self.in_flight:
                return entry
        return None

    def _new_id(self) -> str:
        self._seq += 1
        return f"{int(self._clock() * 1000):013d}-{self._boot}-{self._seq:06d}"

    def _write(
        self, folder: Path, entry_id: str, data: dict[str, Any], name: str | None = None
    ) -> None:
        final = folder / (name or f"{entry_id}.json")
        tmp = folder / f".tmp-{final.name}"
        try:
            write_fsynced(tmp, json.dumps(data, ensure_ascii=False).encode("utf-8"))
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)


def _encode(entry: SpoolEntry) -> dict[str, Any]:
    return {
        "version": SPOOL_VERSION,
        "id": entry.id,
        "summary": entry.summary,
        "outgoing": entry.outgoing.to_dict(),
    }


def _decode(data: Any) -> SpoolEntry:
    if not isinstance(data, dict) or data.get("version") != SPOOL_VERSION:
        raise ValueError("unknown spool entry version")
    entry_id = data.get("id")
    if not isinstance(entry_id, str) or not entry_id:
        raise ValueError("spool entry without an id")
    outgoing = data.get("outgoing")
    if not isinstance(outgoing, dict):
        raise ValueError("spool entry without an alert")
    return SpoolEntry(entry_id, Outgoing.from_dict(outgoing), bool(data.get("summary")))


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
