"""One open log file being read: identity, position, truncation, acknowledgement.

The tailer keeps one :class:`TrackedFile` per (device, inode) it has opened.
Holding the descriptor open is what makes rename-rotation lossless: after
``mv app.log app.log.1`` the writer may still append to the old inode, and we
keep reading it through our descriptor whatever its name has become. For the
same reason a file that left the globs stays open until the lines read from it
are acknowledged (:attr:`TrackedFile.acknowledged`): a writer that never
reopens its log keeps appending to the old inode, and for a deleted file our
descriptor is the only way left to its bytes.

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

from logpipe.event import Event
from logpipe.sources.fingerprint import FileIdentity, head_digest, parse_file_id
from logpipe.sources.lines import LineSplitter, Origin
from logpipe.sources.shared import CheckpointAccess, Emit, ReadSettings, Truncation

__all__ = ["CheckpointAccess", "Emit", "ReadSettings", "TrackedFile", "Truncation"]

log = logging.getLogger("logpipe.tail")

# Bytes kept from just before the read position, to recognise a copytruncate
# copy by content and not only by its first line.
_TAIL_BYTES = 64


OnTruncated = Callable[["TrackedFile", Truncation], Awaitable[None]]


class TrackedFile:
    """An open file and where we are in it. Owns ``fd``: call :meth:`close`."""

    def __init__(self, fd: int, path: str, settings: ReadSettings, *, matched: bool = True) -> None:
        st = os.fstat(fd)
        self.fd = fd
        self.key = (st.st_dev, st.st_ino)
        self.path = path
        self.file_id: str | None = None  # None until the first line is complete
        self.generation = 0
        self.position = 0  # next byte to read
        self.size = st.st_size  # as of the last fstat
        self.deleted = st.st_nlink == 0
        self.last_change = time.monotonic()  # last time the size or position moved
        self.is_copy = False  # read under the identity of another inode (see assume)
        self._settings = settings
        self._matched = matched
        self._digest = ""  # first-line digest of the content being read
        # (id, generation) before a truncation, until the new content is identified.
        self._previous: tuple[str, int] | None = None
        self._start = 0  # where this generation's reading began (acknowledged, or 0)
        self._emitted_end = 0  # end of the last line of this generation emit accepted
        self._tail = b""
        self._splitter = LineSplitter(settings.max_line_bytes)
        # Lines split off but not yet accepted by emit. Kept here, not in a local,
        # so that a cancelled emit (pipeline shutdown) loses nothing: the next
        # pass starts by emitting them, before the position they are behind.
        self._unsent: deque[Event] = deque()

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

    @property
    def digest(self) -> str:
        """First-line digest of the content being read ("" until identified)."""
        return self._digest

    @property
    def own_id(self) -> str:
        """This inode's own fingerprint (not :attr:`file_id`'s when it is a copy); "" unknown."""
        return str(FileIdentity(*self.key, self._digest)) if self._digest else ""

    @property
    def tail(self) -> bytes:
        """The last bytes read, just before :attr:`position` (to recognise a copy)."""
        return self._tail

    @property
    def acknowledged(self) -> bool:
        """True when the checkpoint covers every line emitted from this file's content."""
        if self._unsent:
            return False
        if self.file_id is None or self._emitted_end <= self._start:
            return True
        checkpoint = self._settings.checkpoints.get(self.file_id)
        return checkpoint is not None and (
            checkpoint.generation > self.generation
            or (checkpoint.generation == self.generation and checkpoint.offset >= self._emitted_end)
        )

    def assume(self, file_id: str, generation: int, offset: int) -> None:
        """Read this file as ``file_id`` from ``offset``: it is a copy of that file's content.

        Its lines then get the ids they would have had in the original. Its own
        fingerprint is registered as a copy, so the next start knows it too.
        """
        identity = parse_file_id(file_id)
        if identity is None:
            raise ValueError(f"not a file id: {file_id!r}")
        self._adopt(file_id, identity.digest, generation, offset)
        self.is_copy = True
        self._settings.checkpoints.register(self.own_id, self.path, generation, 0, copy_of=file_id)
        log.info("file_opened", extra=self._context(file_id, offset=offset, copy=True))

    async def read(self, stopping: Callable[[], bool], on_truncated: OnTruncated) -> None:
        """Emit every complete line up to the file's current size.

        A truncation is reported to ``on_truncated`` (after the file's identity
        is forgotten, before the new content is read) so the old content's
        missing tail can be looked for elsewhere.
        """
        size_before = self.size
        self._stat()
        await self._emit_unsent()
        if self.file_id is not None:
            cut = self._truncation(size_before)
            if cut is not None:
                self._forget(cut)
                await on_truncated(self, cut)
        if self.file_id is None and not self._identify():
            return
        await self._read_to(self.size, stopping)

    async def drain(self) -> None:
        """Read to the end and emit the last line even without its newline.

        Only for a file that is final (rotated away or deleted, and idle): a
        line without its newline is then as complete as it will ever be. A file
        that never got a complete first line is identified by what it holds,
        which cannot change any more.
        """
        self._stat()
        await self._emit_unsent()
        if self.file_id is None and not self._identify(final=True):
            return
        await self._read_to(self.size, lambda: False)
        await self.flush_partial()

    async def flush_partial(self) -> None:
        """Emit the partial last line as a line (its rest, if it ever comes, is another)."""
        if self.file_id is None:
            return
        line = self._splitter.flush(self._origin())
        if line is not None:
            await self.emit_line(line)

    async def emit_line(self, line: Event) -> None:
        """Emit ``line`` after the lines still waiting (kept if the emit is cancelled)."""
        self._unsent.append(line)
        await self._emit_unsent()

    async def _read_to(self, limit: int, stopping: Callable[[], bool]) -> None:
        chunk_size = self._settings.chunk_size
        while self.position < limit and not stopping():
            data = os.pread(self.fd, min(chunk_size, limit - self.position), self.position)
            if not data:
                break  # shrank under us: the next pass sees the truncation
            offset = self.position
            self.position += len(data)
            self.last_change = time.monotonic()
            self._tail = (self._tail + data[-_TAIL_BYTES:])[-_TAIL_BYTES:]
            self._unsent.extend(self._splitter.feed(data, offset, self._origin()))
            await self._emit_unsent()
            # Let the sink and other tasks run between chunks even when emit
            # never had to wait (queue not full).
            await asyncio.sleep(0)

    async def _emit_unsent(self) -> None:
        unsent = self._unsent
        while unsent:
            pending = list(unsent)
            try:
                await self._settings.emit(unsent)
            finally:
                accepted = len(pending) - len(unsent)
                # Lines of an older generation (a truncated file's tail) come first,
                # so the last accepted line tells whether any of this content went.
                line = pending[accepted - 1] if accepted else None
                if line and line.file_id == self.file_id and line.generation == self.generation:
                    self._emitted_end = line.end

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

    def _origin(self) -> Origin:
        """Where the lines split next come from (the file is identified by then)."""
        assert self.file_id is not None
        return self.file_id, self.generation, self.path, self._settings.input_name

    def _identify(self, *, final: bool = False) -> bool:
        """Give the file its id and starting point; False while it has no first line.

        After a truncation, the same first line written again gives the same id:
        the generation must then move on, or new lines would reuse the old
        lines' (id, generation, offset) and with it their document ids.
        """
        digest = head_digest(self.fd, final=final)
        if digest is None:
            return False
        file_id = str(FileIdentity(*self.key, digest))
        checkpoint = self._settings.checkpoints.get(file_id)
        if checkpoint is not None and checkpoint.copy_of is not None:
            self._resume_copy(checkpoint.copy_of, digest, checkpoint.generation)
            return True
        if self._previous is not None and self._previous[0] == file_id:
            generation, offset = self._previous[1] + 1, 0
        elif checkpoint is None:
            generation, offset = 0, 0
            self._settings.checkpoints.register(file_id, self.path, generation, offset)
        elif checkpoint.offset <= self.size:
            generation, offset = checkpoint.generation, checkpoint.offset
        else:
            # Shorter than what was delivered: truncated while we were not running.
            generation, offset = checkpoint.generation + 1, 0
            log.info("file_truncated", extra=self._context(file_id, reason="while_stopped"))
        self._adopt(file_id, digest, generation, offset)
        log.info(
            "file_opened",
            extra=self._context(file_id, offset=offset, resumed=checkpoint is not None),
        )
        return True

    def _resume_copy(self, source_id: str, digest: str, generation: int) -> None:
        """A known copy: read as its source, from the source's checkpoint in that generation.

        From 0 if the source has moved on to another generation or its entry is
        gone: re-sent lines keep their ids, so that costs time, not duplicates.
        """
        source = self._settings.checkpoints.get(source_id)
        same = source is not None and source.generation == generation
        offset = source.offset if source is not None and same else 0
        self._adopt(source_id, digest, generation, offset)
        self.is_copy = True
        log.info("file_opened", extra=self._context(source_id, offset=offset, copy=True))

    def _adopt(self, file_id: str, digest: str, generation: int, offset: int) -> None:
        self.file_id, self._digest, self.generation = file_id, digest, generation
        self.position = self._start = self._emitted_end = offset
        self._previous = None
        self._tail = b""
        self._splitter.reset(offset)

    def _truncation(self, size_before: int) -> Truncation | None:
        """What the content we were reading held, if it is gone; else None.

        Either the file is now shorter than our position (copytruncate,
        ``truncate -s 0``), or it was truncated and rewritten past our position
        between two looks, which only its changed first line reveals.
        """
        assert self.file_id is not None
        if self.size >= self.position or self.is_copy:
            # A copy may still be being written (or be shorter than what the
            # original had read): only new content would be a truncation.
            # None here means the first line we identified the file by is gone.
            if head_digest(self.fd) == self._digest:
                return None
            reason = "rewritten"
        else:
            reason = "shrunk"
        log.info(
            "file_truncated",
            extra=self._context(self.file_id, reason=reason, position=self.position),
        )
        committed = self.committed
        partial = self._splitter.flush(self._origin())
        return Truncation(
            file_id=self.file_id,
            generation=self.generation,
            digest=self._digest,
            committed=committed,
            position=self.position,
            size_before=size_before,
            tail=self._tail,
            partial=partial,
        )

    def _forget(self, cut: Truncation) -> None:
        """Drop the identity of the content that is gone; the next read identifies anew."""
        self._previous = (cut.file_id, cut.generation)
        self.file_id, self.position, self._digest, self._tail = None, 0, "", b""
        self._splitter.reset(0)

    def _context(self, file_id: str, **extra: object) -> dict[str, object]:
        return {
            "path": self.path,
            "file_id": file_id,
            "generation": self.generation,
            "size": self.size,
            **extra,
        }
