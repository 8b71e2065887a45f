"""When the tailer makes its next pass: on a change in a watched directory, or on a timer.

The directories watched are every pattern's root, asked again each pass (some
appear later), and the directory of every open file's real path (a symlink's
target may live elsewhere; its writes notify that directory). How inotify is
read, and why it only shortens the wait, is :mod:`logpipe.sources.watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Sequence

from logpipe.sources.watch import DirectoryWatcher, watch_root

__all__ = ["Wakeup"]

# After a wake-up, wait this long before reading so that a writer's burst of
# small writes (one inotify event each) is read in one pass, not one per write.
_WAKE_DEBOUNCE = 0.05


class Wakeup:
    """Wakes the tailer's loop on inotify notices and :meth:`set`, or after ``poll_interval``."""

    def __init__(self, patterns: Sequence[str], poll_interval: float, use_inotify: bool) -> None:
        self._patterns = patterns
        self._poll_interval = poll_interval
        self._use_inotify = use_inotify
        self._wake = asyncio.Event()
        self._watcher: DirectoryWatcher | None = None

    @property
    def watching(self) -> bool:
        """True while inotify wakes the tailer (False: polling only)."""
        return self._watcher is not None

    def set(self) -> None:
        """Wake the loop now (when stopping)."""
        self._wake.set()

    def start(self, paths: Iterable[str]) -> None:
        """Start watching (if inotify is wanted and usable), with the directories of ``paths``."""
        if not self._use_inotify or self._watcher is not None:
            return
        watcher = DirectoryWatcher(asyncio.get_running_loop(), self._wake)
        if watcher.start():
            self._watcher = watcher
            for path in paths:
                watcher.watch(os.path.dirname(os.path.realpath(path)))

    def watch_file(self, path: str) -> None:
        """Also watch the directory ``path`` really lives in."""
        if self._watcher is not None:
            # A symlink's target may live elsewhere; its writes notify that directory.
            self._watcher.watch(os.path.dirname(os.path.realpath(path)))

    def begin_pass(self) -> None:
        """Forget earlier wake-ups; (re)try watching every pattern's directory."""
        self._wake.clear()
        if self._watcher is None:
            return
        for pattern in self._patterns:
            directory, recursive = watch_root(pattern)
            self._watcher.watch(directory, recursive=recursive)

    async def wait(self) -> None:
        """Until woken since :meth:`begin_pass` (then a short debounce), or ``poll_interval``."""
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for, which can swallow a cancellation
            # on 3.11 (gh-86296).
            async with asyncio.timeout(self._poll_interval):
                await self._wake.wait()
            await asyncio.sleep(_WAKE_DEBOUNCE)

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
