"""Acknowledged read positions, one per file, kept in a small JSON file.

The format of the file, and what each entry's fields mean, are in
:mod:`logpipe.checkpoints.entry`.

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
from pathlib import Path
from typing import Any

from logpipe.checkpoints.entry import FORMAT_VERSION, FileCheckpoint, encode_entry, read_entries
from logpipe.durable import write_fsynced

__all__ = [
    "CheckpointError",
    "CheckpointStore",
    "CheckpointWriteError",
    "FileCheckpoint",
    "read_checkpoints",
]

log = logging.getLogger("logpipe.checkpoints")


class CheckpointError(Exception):
    """Base class of checkpoint store errors."""


class CheckpointWriteError(CheckpointError):
    """The checkpoint file could not be written (disk full, read-only, ...).

    The on-disk file still holds the last state that was saved; the in-memory
    state is kept and the next :meth:`CheckpointStore.save` tries again.
    """


class CheckpointStore:
    """Checkpoints of all files of one logpipe process, persisted at ``path``.

    Synchronous and small on purpose: the pipeline calls :meth:`save` at most
    about once a second, and the file holds one entry per live log file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._files: dict[str, FileCheckpoint] = {}
        # Per file, the highest generation an older logpipe shipped with scheme-1
        # ids, as loaded: kept when the entry moves on (see uses_legacy_ids).
        self._legacy: dict[str, int] = {}
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
        self._files = self._load_files()
        self._legacy = {f: cp.generation for f, cp in self._files.items() if cp.ids == 1}

    def _load_files(self) -> dict[str, FileCheckpoint]:
        try:
            return read_entries(self.path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._set_aside(exc)
        try:
            files = read_entries(self.prev_path)
        except (OSError, ValueError):
            return {}
        log.warning("checkpoint_restored", extra={"path": str(self.prev_path)})
        return files

    def get(self, file_id: str) -> FileCheckpoint | None:
        """The checkpoint of ``file_id``, or ``None`` if it was never acknowledged."""
        return self._files.get(file_id)

    def snapshot(self) -> dict[str, FileCheckpoint]:
        """A copy of all checkpoints, by file id."""
        return dict(self._files)

    def uses_legacy_ids(self, file_id: str, generation: int) -> bool:
        """True if ``file_id``'s lines of ``generation`` must keep the scheme-1 ids.

        That is when its entry, as loaded, was written by a logpipe older than
        scheme 2 (``ids`` 1) and ``generation`` is the entry's or an earlier
        one. Remembered after the entry moves to a new generation: the old
        generation's lines may still be read again (a copytruncate copy is read
        as its original, from 0 once the original has moved on), and the old
        version had sent them under the old ids.
        """
        return generation <= self._legacy.get(file_id, -1)

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
        # Within a generation its id scheme never changes; a new one starts with 2.
        ids = current.ids if current is not None and generation == current.generation else 2
        self._files[file_id] = FileCheckpoint(
            path, offset, generation, now, None, event_time, now, ids
        )
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
        # Not an acknowledgement: the last one's time is kept. Nothing of the new
        # generation was ever sent, so it uses the current id scheme.
        acked_at = None if current is None else current.acked_at
        self._files[file_id] = FileCheckpoint(
            path, 0, generation + 1, time.time(), acked_at=acked_at, ids=2
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
        return {file_id: encode_entry(cp) for file_id, cp in self._files.items()}

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
        return read_entries(path), path
    except FileNotFoundError:
        if not prev.exists():
            return {}, None
        problem: Exception = FileNotFoundError(f"{path} is missing")
    except (OSError, ValueError) as exc:
        problem = exc
    try:
        return read_entries(prev), prev
    except (OSError, ValueError):
        raise ValueError(f"unreadable checkpoints {path}: {problem}") from None


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
