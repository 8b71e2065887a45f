"""The ``tail`` source: follow the files matching some globs, line by line.

Each pass (:meth:`Tailer.read_available`):

1. **Discover**: expand the globs, resolve symlinks with ``stat`` and key every
   regular file by (device, inode), so a file matched twice (through a symlink
   and directly) is one file, and a renamed file is still the same file.
2. **Read** every open file up to its current size, awaiting ``emit`` for each
   line: when the pipeline's queue is full, reading stops right there, and the
   files on disk are the buffer.
3. **Retire** files that left the globs (renamed away by rotation, or deleted)
   once they are read to their end and nobody has written to them for two poll
   intervals: until then the writer may still append to the old inode.

Where to start a file comes from the checkpoint store (looked up by
fingerprint) the first time it is opened; the tailer never writes checkpoints,
the pipeline does, when the sink has acknowledged the lines.

:meth:`Tailer.run` repeats passes until stopped, woken by inotify when it is
available and by a ``poll_interval`` timer in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import stat
import time

from logpipe.sources.tracked import CheckpointLookup, Emit, TrackedFile
from logpipe.sources.watch import DirectoryWatcher, watch_root

__all__ = ["Emit", "Tailer"]

log = logging.getLogger("logpipe.tail")

# After a wake-up, wait this long before reading so that a writer's burst of
# small writes (one inotify event each) is read in one pass, not one per write.
_WAKE_DEBOUNCE = 0.05
# A file that left the globs is closed after this many idle poll intervals.
_IDLE_INTERVALS = 2

FileKey = tuple[int, int]


class Tailer:
    """Follows the files matching ``patterns`` and emits their lines as :class:`Line`."""

    def __init__(
        self,
        input_name: str,
        patterns: list[str],
        checkpoints: CheckpointLookup,
        emit: Emit,
        *,
        max_line_bytes: int = 1 << 20,
        poll_interval: float = 1.0,
        read_chunk: int = 256 * 1024,
        use_watchdog: bool = True,
    ) -> None:
        self._input_name = input_name
        self._patterns = list(patterns)
        self._checkpoints = checkpoints
        self._emit = emit
        self._max_line_bytes = max_line_bytes
        self._poll_interval = poll_interval
        self._read_chunk = read_chunk
        self._use_watchdog = use_watchdog
        self._files: dict[FileKey, TrackedFile] = {}
        self._open_failed: set[str] = set()  # paths already warned about
        self._wake = asyncio.Event()
        self._stop: asyncio.Event | None = None
        self._watcher: DirectoryWatcher | None = None

    @property
    def watching(self) -> bool:
        """True while inotify wakes the tailer (False: polling only)."""
        return self._watcher is not None

    def positions(self) -> dict[str, int]:
        """Read position of every identified open file: file id -> end of last complete line."""
        return {tf.file_id: tf.committed for tf in self._files.values() if tf.file_id is not None}

    async def read_available(self) -> None:
        """One pass: discover files, read each to its current end, retire finished ones.

        Only complete lines are emitted; a partial last line waits for its
        newline. Used as is by ``--once`` and in a loop by :meth:`run`.
        """
        seen = self._discover()
        for tf in list(self._files.values()):
            if self._stopping():
                return
            try:
                await tf.read(self._emit, self._checkpoints, self._read_chunk, self._stopping)
            except OSError as exc:
                # EIO, stale NFS handle...: reopen on a later pass and resume
                # from the checkpoint (re-sent lines keep their ids).
                log.warning("file_read_failed", extra={"path": tf.path, "error": str(exc)})
                self._drop(tf, "read_failed")
        await self._retire(seen)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the files until ``stop`` is set (then return after the current line)."""
        self._stop = stop
        self._start_watcher()
        relay = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                self._wake.clear()
                self._watch_pattern_dirs()
                await self.read_available()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                    await asyncio.sleep(_WAKE_DEBOUNCE)
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            self._stop_watcher()

    def close(self) -> None:
        """Close every file and stop watching (idempotent)."""
        self._stop_watcher()
        for tf in self._files.values():
            tf.close()
        self._files.clear()

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def _discover(self) -> set[FileKey]:
        """Open files new to us; note renames; return the keys the globs match now."""
        found: dict[FileKey, list[str]] = {}
        for pattern in self._patterns:
            for path in sorted(glob.glob(pattern, recursive=True)):
                try:
                    st = os.stat(path)  # follows symlinks: the real file's identity
                except OSError:
                    continue  # dangling symlink, or gone since the glob
                if stat.S_ISREG(st.st_mode):
                    found.setdefault((st.st_dev, st.st_ino), []).append(path)
        for key, paths in found.items():
            tf = self._files.get(key)
            if tf is None:
                self._open(paths[0])
            elif tf.path not in paths:
                log.info("file_renamed", extra={"path": paths[0], "old_path": tf.path})
                tf.path = paths[0]
        return set(found)

    def _open(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._open_failed_once(path, exc)
            return
        try:
            tf = TrackedFile(fd, path, self._input_name, self._max_line_bytes)
        except OSError as exc:
            os.close(fd)
            self._open_failed_once(path, exc)
            return
        self._open_failed.discard(path)
        if tf.key in self._files:  # replaced between stat and open, by a file we have
            tf.close()
            return
        self._files[tf.key] = tf
        if self._watcher is not None:
            # A symlink's target may live elsewhere; its writes notify that directory.
            self._watcher.watch(os.path.dirname(os.path.realpath(path)))

    def _open_failed_once(self, path: str, exc: OSError) -> None:
        # Permission problems persist: one warning per path, not one per pass.
        if path not in self._open_failed:
            self._open_failed.add(path)
            log.warning("file_open_failed", extra={"path": path, "error": str(exc)})

    async def _retire(self, seen: set[FileKey]) -> None:
        """Close files no glob matches any more, once read to their end and final."""
        now = time.monotonic()
        for key, tf in list(self._files.items()):
            tf.matched = key in seen
            if tf.matched or not tf.at_end:
                continue
            if tf.deleted and not tf.has_partial:
                self._drop(tf, "deleted")
            elif now - tf.last_change >= _IDLE_INTERVALS * self._poll_interval:
                try:
                    await tf.drain(self._emit, self._checkpoints, self._read_chunk)
                except OSError as exc:
                    log.warning("file_read_failed", extra={"path": tf.path, "error": str(exc)})
                self._drop(tf, "deleted" if tf.deleted else "rotated")

    def _drop(self, tf: TrackedFile, reason: str) -> None:
        tf.close()
        self._files.pop(tf.key, None)
        log.info(
            "file_closed",
            extra={"path": tf.path, "file_id": tf.file_id, "reason": reason, "offset": tf.position},
        )

    def _start_watcher(self) -> None:
        if not self._use_watchdog or self._watcher is not None:
            return
        watcher = DirectoryWatcher(asyncio.get_running_loop(), self._wake)
        if watcher.start():
            self._watcher = watcher
            for tf in self._files.values():
                watcher.watch(os.path.dirname(os.path.realpath(tf.path)))

    def _watch_pattern_dirs(self) -> None:
        """(Re)try watching every pattern's directory: some may appear later."""
        if self._watcher is None:
            return
        for pattern in self._patterns:
            directory, recursive = watch_root(pattern)
            self._watcher.watch(directory, recursive=recursive)

    def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
