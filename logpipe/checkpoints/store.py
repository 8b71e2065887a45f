"""Acknowledged read positions, one per file, kept in a small JSON file.

Format (``version`` first so a future format can be told apart)::

    {"version": 1,
     "files": {"<fingerprint>": {"path": str, "offset": int,
                                  "generation": int, "updated": float,
                                  "copy_of": "<fingerprint>",     # optional
                                  "event_time": float,            # optional
                                  "acked_at": float}}}            # optional

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

The store never moves an offset backwards within a generation: acknowledgements
may arrive out of order and the earlier one must not undo the later.

Durability, like Vector's checkpointer: write a temp file in the same
directory, fsync it, ``os.replace`` it over the real file, fsync the
directory. A crash at any point leaves either the old or the new file, never a
mix. Before each replace the current file is hard-linked to ``<name>.prev``, so
if the main file is ever found torn or garbage (a filesystem that lied about
fsync, a hand edit) loading falls back to the previous good copy.

Error tree::

    CheckpointError
    └── CheckpointWriteError   save() could not persist; memory kept, retry later
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logpipe.durable import write_fsynced

FORMAT_VERSION = 1

log = logging.getLogger("logpipe.checkpoints")


class CheckpointError(Exception):
    """Base class of checkpoint store errors."""


class CheckpointWriteError(CheckpointError):
    """The checkpoint file could not be written (disk full, read-only, ...).

    The on-disk file still holds the last state that was saved; the in-memory
    state is kept and the next :meth:`CheckpointStore.save` tries again.
    """


@dataclass(slots=True, frozen=True)
class FileCheckpoint:
    """Where reading of one file resumes: ``offset`` within ``generation``.

    ``path`` is informational (the last name the file was read under).
    ``updated`` is the wall-clock time of the last advance. ``copy_of``: the
    file id whose content this file is a copy of (read under that id).
    ``event_time``: the (epoch) time of the last acknowledged event, which an
    undated line read next inherits, so that a re-read names the same index.
    ``acked_at``: the wall-clock time an acknowledgement last moved ``offset``
    (``None``: never, e.g. only registered).
    """

    path: str
    offset: int
    generation: int
    updated: float = 0.0
    copy_of: str | None = None
    event_time: float | None = None
    acked_at: float | None = None


class CheckpointStore:
    """Checkpoints of all files of one logpipe process, persisted at ``path``.

    Synchronous and small on purpose: the pipeline calls :meth:`save` at most
    about once a second, and the file holds one entry per live log file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._files: dict[str, FileCheckpoint] = {}
        self._dirty = False
        # False while the main file is known garbage that could not be moved
        # aside: it must then never be linked over the good ``.prev``.
        self._main_trusted = True
        self.load()

    @property
    def prev_path(self) -> Path:
        """The previous good copy, used when the main file is unreadable."""
        return self.path.with_name(self.path.name + ".prev")

    @property
    def corrupt_path(self) -> Path:
        """Where an unreadable main file is moved aside for inspection."""
        return self.path.with_name(self.path.name + ".corrupt")

    @property
    def dirty(self) -> bool:
        """True when memory holds progress not yet saved."""
        return self._dirty

    def load(self) -> None:
        """Replace the in-memory state with the file's; never raises on bad content.

        A missing file means a first start (empty). An unreadable one is moved to
        ``<name>.corrupt``, a warning ``checkpoint_corrupt`` is logged and the
        ``.prev`` copy is used if it is readable, else the state starts empty.
        """
        self._dirty = False
        self._main_trusted = True
        try:
            self._files = _read(self.path)
            return
        except FileNotFoundError:
            self._files = {}
            return
        except (OSError, ValueError) as exc:
            self._set_aside(exc)
        try:
            self._files = _read(self.prev_path)
            log.warning("checkpoint_restored", extra={"path": str(self.prev_path)})
        except (OSError, ValueError):
            self._files = {}

    def get(self, file_id: str) -> FileCheckpoint | None:
        """The checkpoint of ``file_id``, or ``None`` if it was never acknowledged."""
        return self._files.get(file_id)

    def snapshot(self) -> dict[str, FileCheckpoint]:
        """A copy of all checkpoints, by file id."""
        return dict(self._files)

    def advance(
        self,
        file_id: str,
        path: str,
        generation: int,
        offset: int,
        event_time: float | None = None,
    ) -> bool:
        """Record that ``file_id`` was delivered up to ``offset`` in ``generation``.

        Ignored (returns False) if it would move backwards: a lower generation, or
        the same generation at or before the known offset. A higher generation
        replaces the entry whatever its offset (the file was truncated). Memory
        only: call :meth:`save` to persist.
        """
        current = self._files.get(file_id)
        if current is not None and (
            generation < current.generation
            or (generation == current.generation and offset <= current.offset)
        ):
            return False
        # One clock reading serves both times: ``acked_at`` costs no extra call
        # on this path (once per file per batch).
        now = time.time()
        self._files[file_id] = FileCheckpoint(path, offset, generation, now, None, event_time, now)
        self._dirty = True
        return True

    def register(
        self, file_id: str, path: str, generation: int, offset: int, copy_of: str | None = None
    ) -> bool:
        """Start an entry for ``file_id`` at ``offset`` unless it has one; True if it did.

        Called by the tailer when it starts reading a file it has no entry for,
        so that a restart finds the file by identity even if it was renamed
        away before any of its lines were acknowledged. It claims nothing was
        delivered past ``offset`` (the start). ``copy_of``: the file is a copy
        of that file id's content, in ``generation``. Memory only, like
        :meth:`advance`.
        """
        if file_id in self._files:
            return False
        self._files[file_id] = FileCheckpoint(path, offset, generation, time.time(), copy_of)
        self._dirty = True
        return True

    def end_generation(self, file_id: str, path: str, generation: int) -> bool:
        """Record that ``file_id``'s content of ``generation`` is gone (its file was deleted).

        The entry moves to the next generation at offset 0, so that a new file
        that gets the same inode and the same first line (hence the same id)
        starts from its beginning with new document ids, instead of resuming
        at the old file's offset or reusing its ids. Ignored (False) if the
        entry is already past ``generation``. Memory only, like :meth:`advance`.
        """
        current = self._files.get(file_id)
        if current is not None and current.generation > generation:
            return False
        # Not an acknowledgement: the last one's time is kept.
        acked_at = None if current is None else current.acked_at
        self._files[file_id] = FileCheckpoint(
            path, 0, generation + 1, time.time(), acked_at=acked_at
        )
        self._dirty = True
        return True

    def forget(self, file_id: str) -> None:
        """Drop ``file_id`` (a file that is gone and fully delivered)."""
        if self._files.pop(file_id, None) is not None:
            self._dirty = True

    def prune(self, keep: Callable[[str, FileCheckpoint], bool]) -> list[str]:
        """Drop every entry for which ``keep(file_id, checkpoint)`` is False; return their ids.

        For entries of files that are gone for good (see
        ``logpipe.sources.recover.prune_checkpoints``). Memory only, like
        :meth:`advance`.
        """
        removed = [file_id for file_id, cp in self._files.items() if not keep(file_id, cp)]
        for file_id in removed:
            del self._files[file_id]
        if removed:
            self._dirty = True
        return removed

    def save(self) -> None:
        """Persist the in-memory state atomically, if it changed since the last save.

        Raises :class:`CheckpointWriteError` if the file could not be written;
        the old file is then left as it was and the state stays dirty.
        """
        if not self._dirty:
            return
        data = json.dumps(
            {"version": FORMAT_VERSION, "files": self._encode()}, separators=(",", ":")
        ).encode()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            write_fsynced(tmp, data)
            if self._main_trusted:
                self._keep_prev()
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise CheckpointWriteError(f"cannot write checkpoints to {self.path}: {exc}") from exc
        self._dirty = False
        self._main_trusted = True

    def _encode(self) -> dict[str, dict[str, Any]]:
        return {file_id: _encode_entry(cp) for file_id, cp in self._files.items()}

    def _keep_prev(self) -> None:
        """Hard-link the current (good) file to ``.prev`` before it is replaced.

        A link, not a copy: no extra data to write, and the replace that follows
        gives the main name a new inode, so ``.prev`` keeps the old content.
        Best effort: a filesystem without hard links just has no ``.prev``.
        """
        link = self.prev_path.with_name(self.prev_path.name + ".tmp")
        try:
            _unlink_quietly(link)
            os.link(self.path, link)
            os.replace(link, self.prev_path)
        except FileNotFoundError:
            return  # first save: nothing to keep
        except OSError as exc:
            _unlink_quietly(link)
            log.debug("checkpoint_prev_skipped", extra={"error": str(exc)})

    def _set_aside(self, exc: Exception) -> None:
        """Move the unreadable main file to ``.corrupt`` so it never becomes ``.prev``."""
        log.warning(
            "checkpoint_corrupt",
            extra={"path": str(self.path), "error": str(exc), "copy": str(self.corrupt_path)},
        )
        try:
            os.replace(self.path, self.corrupt_path)
        except OSError as move_exc:
            self._main_trusted = False
            log.warning("checkpoint_corrupt_kept", extra={"error": str(move_exc)})


def read_checkpoints(path: Path) -> tuple[dict[str, FileCheckpoint], Path | None]:
    """Read the store at ``path`` without changing anything; for other processes.

    ``logpipe status`` reads while a pipeline may be saving: each save replaces
    the file by rename, so one open sees either the old or the new content,
    whole; no lock is needed or taken. An unreadable main file falls back to
    ``.prev`` (without moving anything aside, unlike :meth:`CheckpointStore.load`).
    Returns the entries and the file they came from (``None``: no checkpoint
    file yet). Raises ``ValueError`` (or ``OSError``) if neither copy is readable.
    """
    prev = path.with_name(path.name + ".prev")
    try:
        return _read(path), path
    except FileNotFoundError:
        if not prev.exists():
            return {}, None
        problem: Exception = FileNotFoundError(f"{path} is missing")
    except (OSError, ValueError) as exc:
        problem = exc
    try:
        return _read(prev), prev
    except (OSError, ValueError):
        raise ValueError(f"unreadable checkpoints {path}: {problem}") from None


def _read(path: Path) -> dict[str, FileCheckpoint]:
    """Parse and validate a checkpoint file; ValueError on anything unexpected."""
    doc = json.loads(path.read_bytes())
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown checkpoint format: {str(doc)[:80]!r}")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ValueError("'files' is not an object")
    return {str(file_id): _decode_entry(entry) for file_id, entry in files.items()}


def _encode_entry(cp: FileCheckpoint) -> dict[str, Any]:
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
    return entry


def _decode_entry(entry: Any) -> FileCheckpoint:
    if not isinstance(entry, dict):
        raise ValueError("checkpoint entry is not an object")
    path, updated, copy_of = entry.get("path"), entry.get("updated", 0.0), entry.get("copy_of")
    event_time, acked_at = entry.get("event_time"), entry.get("acked_at")
    if (
        not isinstance(path, str)
        or isinstance(updated, bool)
        or not isinstance(updated, int | float)
        or not (copy_of is None or isinstance(copy_of, str))
        or not _optional_time(event_time)
        or not _optional_time(acked_at)
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
    )


def _optional_time(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _count(value: Any) -> int:
    # bool is an int subclass: `true` must not read as offset 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"invalid checkpoint count: {value!r}")
    return value


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable: without this a crash can undo it."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
