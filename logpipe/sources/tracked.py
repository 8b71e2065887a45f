"""One open log file being read: identity, position, truncation detection.

The tailer keeps one :class:`TrackedFile` per (device, inode) it has opened.
Holding the descriptor open is what makes rename-rotation lossless: after
``mv app.log app.log.1`` the writer may still append to the old inode, and we
keep reading it through our descriptor whatever its name has become.

A read pass is "identify, check for truncation, read up to the size seen at the
start of the pass" (bounded, so one busy file cannot starve the others).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from logpipe.checkpoints.store import FileCheckpoint
from logpipe.event import Line
from logpipe.sources.fingerprint import fingerprint
from logpipe.sources.lines import LineSplitter, SplitLine

log = logging.getLogger("logpipe.tail")

Emit = Callable[[Line], Awaitable[None]]
"""The pipeline's bounded-queue put: awaiting it is how backpressure reaches the reader."""


class CheckpointLookup(Protocol):
    """The read side of the checkpoint store, all the tailer needs."""

    def get(self, file_id: str) -> FileCheckpoint | None: ...


class TrackedFile:
    """An open file and where we are in it. Owns ``fd``: call :meth:`close`."""

    def __init__(self, fd: int, path: str, input_name: str, max_line_bytes: int) -> None:
        st = os.fstat(fd)
        self.fd = fd
        self.key = (st.st_dev, st.st_ino)
        self.path = path
        self.input_name = input_name
        self.file_id: str | None = None  # None until the first line is complete
        self.generation = 0
        self.position = 0  # next byte to read
        self.size = st.st_size  # as of the last fstat
        self.deleted = False
        self._matched = True
        self.last_change = time.monotonic()  # last time the size or position moved
        # (id, generation) before a truncation, until the new content is identified.
        self._previous: tuple[str, int] | None = None
        self._splitter = LineSplitter(max_line_bytes)
        # Lines split off but not yet accepted by emit. Kept here, not in a local,
        # so that a cancelled emit (pipeline shutdown) loses nothing: the next
        # pass starts by emitting them, before the position they are behind.
        self._unsent: deque[SplitLine] = deque()

    @property
    def matched(self) -> bool:
        """Whether the tailer's globs still find this file under some name."""
        return self._matched

    @matched.setter
    def matched(self, matched: bool) -> None:
        if self._matched and not matched:
            # Rename rotation (or deletion): keep reading the old inode to its end.
            event = "file_deleted" if self.deleted else "file_rotated"
            log.info(event, extra={"path": self.path, "file_id": self.file_id})
        self._matched = matched

    @property
    def at_end(self) -> bool:
        """True when nothing more can be read now (all read, or not identifiable yet)."""
        if self._unsent:
            return False
        return self.file_id is None or self.position >= self.size

    @property
    def has_partial(self) -> bool:
        """True when bytes without a final newline are waiting for the rest of their line."""
        if self.file_id is None:
            return self.size > 0
        return self._splitter.pending > 0

    @property
    def committed(self) -> int:
        """Offset just past the last complete line read (where a restart would resume)."""
        if self._unsent:
            return self._unsent[0].offset
        position = self._splitter.position
        return self.position if position is None else position

    async def read(
        self,
        emit: Emit,
        checkpoints: CheckpointLookup,
        chunk_size: int,
        stopping: Callable[[], bool],
    ) -> None:
        """Emit every complete line up to the file's current size."""
        self._stat()
        await self._emit_unsent(emit)
        if self.file_id is not None:
            self._check_truncation()
        if self.file_id is None and not self._identify(checkpoints):
            return
        await self._read_to(self.size, emit, chunk_size, stopping)

    async def drain(self, emit: Emit, checkpoints: CheckpointLookup, chunk_size: int) -> None:
        """Read to the end and emit the last line even without its newline.

        Only for a file that is final (rotated away or deleted, and idle): a
        line without its newline is then as complete as it will ever be. A file
        that never got a complete first line is identified by what it holds,
        which cannot change any more.
        """
        self._stat()
        await self._emit_unsent(emit)
        if self.file_id is None and not self._identify(checkpoints, final=True):
            return
        await self._read_to(self.size, emit, chunk_size, lambda: False)
        piece = self._splitter.flush()
        if piece is not None:
            self._unsent.append(piece)
            await self._emit_unsent(emit)

    async def _read_to(
        self, limit: int, emit: Emit, chunk_size: int, stopping: Callable[[], bool]
    ) -> None:
        while self.position < limit and not stopping():
            data = os.pread(self.fd, min(chunk_size, limit - self.position), self.position)
            if not data:
                break  # shrank under us: the next pass sees the truncation
            offset = self.position
            self.position += len(data)
            self.last_change = time.monotonic()
            self._unsent.extend(self._splitter.feed(data, offset))
            await self._emit_unsent(emit)
            # Let the sink and other tasks run between chunks even when emit
            # never had to wait (queue not full).
            await asyncio.sleep(0)

    async def _emit_unsent(self, emit: Emit) -> None:
        while self._unsent:
            await emit(self._line(self._unsent[0]))
            self._unsent.popleft()

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _stat(self) -> None:
        st = os.fstat(self.fd)
        self.deleted = st.st_nlink == 0
        if st.st_size != self.size:
            self.size = st.st_size
            self.last_change = time.monotonic()

    def _line(self, piece: SplitLine) -> Line:
        assert self.file_id is not None
        return Line(
            file_id=self.file_id,
            generation=self.generation,
            path=self.path,
            offset=piece.offset,
            end=piece.end,
            raw=piece.raw,
            input_name=self.input_name,
            truncated=piece.truncated,
        )

    def _identify(self, checkpoints: CheckpointLookup, *, final: bool = False) -> bool:
        """Give the file its id and starting point; False while it has no first line.

        After a truncation, the same first line written again gives the same id:
        the generation must then move on, or new lines would reuse the old
        lines' (id, generation, offset) and with it their document ids.
        """
        file_id = fingerprint(self.fd, final=final)
        if file_id is None:
            return False
        checkpoint = checkpoints.get(file_id)
        if self._previous is not None and self._previous[0] == file_id:
            generation, offset = self._previous[1] + 1, 0
        elif checkpoint is None:
            generation, offset = 0, 0
        elif checkpoint.offset <= self.size:
            generation, offset = checkpoint.generation, checkpoint.offset
        else:
            # Shorter than what was delivered: truncated while we were not running.
            generation, offset = checkpoint.generation + 1, 0
            log.info("file_truncated", extra=self._context(file_id, reason="while_stopped"))
        self.file_id, self.generation, self.position = file_id, generation, offset
        self._previous = None
        self._splitter.reset(offset)
        log.info(
            "file_opened",
            extra=self._context(file_id, offset=offset, resumed=checkpoint is not None),
        )
        return True

    def _check_truncation(self) -> None:
        """Forget the file's identity if the content we were reading is gone.

        Either the file is now shorter than our position (copytruncate,
        ``truncate -s 0``), or it was truncated and rewritten past our position
        between two looks, which only its changed first line reveals.
        """
        assert self.file_id is not None
        if self.size >= self.position:
            # None here means the first line we identified the file by is gone.
            if fingerprint(self.fd) == self.file_id:
                return
            reason = "rewritten"
        else:
            reason = "shrunk"
        log.info(
            "file_truncated",
            extra=self._context(self.file_id, reason=reason, position=self.position),
        )
        self._previous = (self.file_id, self.generation)
        self.file_id, self.position = None, 0
        self._splitter.reset(0)

    def _context(self, file_id: str, **extra: object) -> dict[str, object]:
        return {
            "path": self.path,
            "file_id": file_id,
            "generation": self.generation,
            "size": self.size,
            **extra,
        }
