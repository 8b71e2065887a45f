"""The ``tail`` source: follow the files matching some globs, line by line.

Each pass (:meth:`Tailer.read_available`):

1. **Discover**: expand the globs, resolve symlinks with ``stat`` and key every
   regular file by (device, inode), so a file matched twice (through a symlink
   and directly) is one file, and a renamed file is still the same file. The
   first pass also reopens what a previous run left unacknowledged outside the
   globs (see :mod:`logpipe.sources.recover`): a file renamed away by rotation
   before all its lines were acknowledged, or the copy of a file copytruncated
   while we were stopped.
2. **Read** every open file up to its current size, awaiting ``emit`` for each
   line: when the pipeline's queue is full, reading stops right there, and the
   files on disk are the buffer. With ``partial_line_timeout``, a last line
   whose newline has not come for that long is emitted as it is.
3. **Retire** files that left the globs (renamed away by rotation, or deleted)
   once they are read to their end, nobody has written to them for two poll
   intervals (a deleted file without a partial line need not wait: only
   descriptors still open can write to it) and every line read from them is
   acknowledged, or at the latest ``ack_hold`` seconds after they last changed.

Where to start a file comes from the checkpoint store (looked up by
fingerprint) the first time it is opened. Offsets are advanced only by the
pipeline, when the sink has acknowledged the lines; the tailer's own writes
claim nothing was delivered (see :class:`~logpipe.sources.tracked.CheckpointAccess`):
it registers each file it starts reading, so that a restart can find it even
if renamed away before any line was acknowledged, and moves a deleted file's
entry to the next generation. Dead entries are removed by
:func:`logpipe.sources.recover.prune_checkpoints`, which the pipeline calls.

A truncated file (logrotate's ``copytruncate``) is read on from its copy
when one can be found, and a copy the globs match is read as its original,
never as a new file: see :mod:`logpipe.sources.copytruncate`, which also says
where lines can still be lost.

:meth:`Tailer.run` repeats passes until stopped, woken by inotify when it is
available and by a ``poll_interval`` timer in any case
(:mod:`logpipe.sources.wakeup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from logpipe.sources.copytruncate import CopyTruncate
from logpipe.sources.fingerprint import FileKey
from logpipe.sources.locate import glob_files
from logpipe.sources.recover import plan_recovery
from logpipe.sources.tracked import CheckpointAccess, Emit, ReadSettings, TrackedFile
from logpipe.sources.wakeup import Wakeup

__all__ = ["Emit", "Tailer"]

log = logging.getLogger("logpipe.tail")

FileErrorHook = Callable[[str, str], None]  # (path, what went wrong)

# A file that left the globs is final after this many idle poll intervals.
_IDLE_INTERVALS = 2


class Tailer:
    """Follows the files matching ``patterns`` and emits their lines as events, not yet encoded.

    ``partial_line_timeout``: emit a last line still without its newline after
    this many seconds without change (None: wait for the newline forever).
    ``ack_hold``: longest time a file that left the globs is kept open, after
    it last changed, waiting for its lines to be acknowledged.
    """

    def __init__(
        self,
        input_name: str,
        patterns: list[str],
        checkpoints: CheckpointAccess,
        emit: Emit,
        *,
        max_line_bytes: int = 1 << 20,
        poll_interval: float = 1.0,
        read_chunk: int = 256 * 1024,
        use_inotify: bool = True,
        partial_line_timeout: float | None = None,
        ack_hold: float = 3600.0,
        on_file_error: FileErrorHook | None = None,
    ) -> None:
        self._settings = ReadSettings(input_name, max_line_bytes, read_chunk, emit, checkpoints)
        self._patterns = list(patterns)
        # Told once per path that cannot be opened, and on each failed read.
        self._on_file_error = on_file_error
        self._poll_interval = poll_interval
        self._partial_line_timeout = partial_line_timeout
        self._ack_hold = ack_hold
        self._files: dict[FileKey, TrackedFile] = {}
        self._open_failed: set[str] = set()  # paths already warned about
        self._recovered = False  # the first pass's recovery is done
        self._copies = CopyTruncate(
            self._settings,
            self._files,
            self._stopping,
            undecided_for=_IDLE_INTERVALS * poll_interval,
        )
        self._wakeup = Wakeup(self._patterns, poll_interval, use_inotify)
        self._stop: asyncio.Event | None = None

    @property
    def copytruncate_gap_bytes(self) -> int:
        """Bytes known lost to truncations whose copy could not be found (a metric)."""
        return self._copies.gap_bytes

    @property
    def watching(self) -> bool:
        """True while inotify wakes the tailer (False: polling only)."""
        return self._wakeup.watching

    @property
    def open_files(self) -> int:
        """How many files are open (matched, or retiring until read and acknowledged)."""
        return len(self._files)

    @property
    def name(self) -> str:
        """The input's name."""
        return self._settings.input_name

    def unreadable(self) -> list[str]:
        """Paths the globs matched that cannot be opened (permissions...) and still exist."""
        return sorted(path for path in self._open_failed if os.path.lexists(path))

    def tracked(self) -> list[TrackedFile]:
        """The open files (for lag metrics and status); read-only use."""
        return list(self._files.values())

    def positions(self) -> dict[str, int]:
        """Read position of every identified open file: file id -> end of last complete line."""
        return {tf.file_id: tf.committed for tf in self._files.values() if tf.file_id is not None}

    async def read_available(self) -> None:
        """One pass: discover files, read each to its current end, retire finished ones.

        Only complete lines are emitted; a partial last line waits for its
        newline (or ``partial_line_timeout``). Used as is by ``--once`` and in a
        loop by :meth:`run`.
        """
        seen = self._discover()
        # Copies first: the lines of an old content go before those of the new.
        for tf in sorted(self._files.values(), key=lambda tf: not tf.is_copy):
            if self._stopping():
                return
            try:
                await tf.read(self._stopping, self._copies.on_truncated)
                await self._flush_stale_partial(tf)
            except OSError as exc:
                self._read_failed(tf, exc)
        await self._retire(seen)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the files until ``stop`` is set (then return after the current line)."""
        self._stop = stop
        self._wakeup.start(tf.path for tf in self._files.values())
        relay = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                self._wakeup.begin_pass()
                await self.read_available()
                await self._wakeup.wait()
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            self._wakeup.stop()

    def close(self) -> None:
        """Close every file and stop watching (idempotent)."""
        self._wakeup.stop()
        for tf in self._files.values():
            tf.close()
        self._files.clear()

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wakeup.set()

    def _discover(self) -> set[FileKey]:
        """Open files new to us; note renames; return the keys the globs match now."""
        found = glob_files(self._patterns)
        if not self._recovered:
            self._recovered = True
            self._recover(found)
        for key, paths in found.items():
            tf = self._files.get(key)
            if tf is None:
                self._open(paths[0])
            elif tf.path not in paths:
                log.info("file_renamed", extra={"path": paths[0], "old_path": tf.path})
                tf.path = paths[0]
        self._copies.forget_missing(found)
        return set(found)

    def _recover(self, matched: dict[FileKey, list[str]]) -> None:
        """Reopen, as retiring files, what the last run left unacknowledged outside the globs.

        They keep the name they were read under (their lines were written
        there), so a second crash finds them again the same way.
        """
        plans = plan_recovery(self._settings.checkpoints.snapshot(), self._patterns, matched)
        for plan in plans:
            found, checkpoint = plan.found, plan.checkpoint
            is_matched = found.key in matched  # a copy the globs match: read as the original
            path = found.path if is_matched else checkpoint.path
            tf = TrackedFile(found.fd, path, self._settings, matched=is_matched)
            if found.copy:
                tf.assume(plan.file_id, checkpoint.generation, checkpoint.offset)
            self._files[tf.key] = tf
            log.info(
                "file_recovered",
                extra={
                    "path": found.path,
                    "old_path": checkpoint.path,
                    "file_id": plan.file_id,
                    "offset": checkpoint.offset,
                    "copy": found.copy,
                },
            )

    def _open(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._open_failed_once(path, exc)
            return
        try:
            tf = TrackedFile(fd, path, self._settings)
        except OSError as exc:
            os.close(fd)
            self._open_failed_once(path, exc)
            return
        self._open_failed.discard(path)
        if tf.key in self._files:  # replaced between stat and open, by a file we have
            tf.close()
            return
        if not self._copies.adopt_if_copy(tf):
            tf.close()  # maybe a copy, too short to tell yet: look again next pass
            return
        self._files[tf.key] = tf
        self._wakeup.watch_file(path)

    def _open_failed_once(self, path: str, exc: OSError) -> None:
        # Permission problems persist: one warning per path, not one per pass.
        if path not in self._open_failed:
            self._open_failed.add(path)
            log.warning("file_open_failed", extra={"path": path, "error": str(exc)})
            if self._on_file_error is not None:
                self._on_file_error(path, f"cannot open: {exc.strerror or exc}")

    def _read_failed(self, tf: TrackedFile, exc: OSError) -> None:
        # EIO, stale NFS handle...: reopen on a later pass and resume from the
        # checkpoint (re-sent lines keep their ids).
        log.warning("file_read_failed", extra={"path": tf.path, "error": str(exc)})
        if self._on_file_error is not None:
            self._on_file_error(tf.path, f"read failed: {exc.strerror or exc}")
        self._drop(tf, "read_failed")

    async def _flush_stale_partial(self, tf: TrackedFile) -> None:
        timeout = self._partial_line_timeout
        if timeout is None or tf.file_id is None or not (tf.at_end and tf.has_partial):
            return
        if time.monotonic() - tf.last_change >= timeout:
            log.debug("partial_line_flushed", extra={"path": tf.path, "file_id": tf.file_id})
            await tf.flush_partial()

    async def _retire(self, seen: set[FileKey]) -> None:
        """Close files no glob matches any more, once read, final and acknowledged."""
        now = time.monotonic()
        for key, tf in list(self._files.items()):
            tf.matched = key in seen
            if tf.matched or not tf.at_end:
                continue
            if tf.has_partial or not tf.deleted:
                # A renamed file's writer may still append, or finish its last line.
                if now - tf.last_change < _IDLE_INTERVALS * self._poll_interval:
                    continue
                try:
                    await tf.drain()
                except OSError as exc:
                    self._read_failed(tf, exc)
                    continue
            if tf.acknowledged:
                self._close_retired(tf, "deleted" if tf.deleted else "rotated")
            elif now - tf.last_change >= self._ack_hold:
                log.warning(
                    "file_unacknowledged",
                    extra={"path": tf.path, "file_id": tf.file_id, "held": self._ack_hold},
                )
                self._close_retired(tf, "ack_hold_expired")

    def _close_retired(self, tf: TrackedFile, reason: str) -> None:
        if tf.deleted and tf.own_id:
            # Its inode is free for reuse: a new file there with the same first
            # line has the same id, and must neither resume here, reuse its ids,
            # nor (for a copy's entry) be taken for a copy.
            self._settings.checkpoints.end_generation(tf.own_id, tf.path, tf.generation)
        self._drop(tf, reason)

    def _drop(self, tf: TrackedFile, reason: str) -> None:
        tf.close()
        self._files.pop(tf.key, None)
        log.info(
            "file_closed",
            extra={"path": tf.path, "file_id": tf.file_id, "reason": reason, "offset": tf.position},
        )
