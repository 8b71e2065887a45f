"""Wake the tailer as soon as something changes in a watched directory.

inotify only shortens the wait: the tailer re-reads on a timer anyway, because
inotify can be unavailable (not Linux, no watches left, filesystems such as NFS
or some overlay mounts) and can drop events when its queue overflows. So every
failure here degrades to polling, logged once, and never stops the tailer.

The inotify descriptor is read on the event loop itself (asyncinotify), not on
helper threads: a writer that flushes every record causes one notice per line,
and handing each across threads (as watchdog's observer does, through three of
them) cost ~200 µs of CPU per line — 20 % of a core at 1,000 lines/s. Here the
notices are read at most every 50 ms, and the kernel merges identical unread
ones, so a writer flushing 1,000 times a second costs ~20 reads.

A recursive root (``/var/log/*/app.log``) gets a watch per directory below it;
new directories are picked up when the tailer next asks to watch the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncinotify import Inotify

log = logging.getLogger("logpipe.tail")

_MAGIC = re.compile(r"[*?[]")
# After a notice, wait this long before reading more (the tailer also waits 50 ms
# after a wake-up before reading, so this adds no latency to a burst).
_GATHER = 0.05


def watch_root(pattern: str) -> tuple[str, bool]:
    """The directory to watch for a glob ``pattern``, and whether recursively.

    ``/var/log/erp/*.log`` -> (``/var/log/erp``, False);
    ``/var/log/*/app.log`` -> (``/var/log``, True): the first directory
    without a wildcard, watched with its subdirectories. Pure.
    """
    directory = os.path.dirname(os.path.abspath(pattern))
    parts = directory.split(os.sep)
    for index, part in enumerate(parts):
        if _MAGIC.search(part):
            return os.sep.join(parts[:index]) or os.sep, True
    return directory, False


class DirectoryWatcher:
    """Sets ``event`` (on ``loop``) whenever a watched directory changes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self._loop = loop
        self._event = event
        self._inotify: Inotify | None = None
        self._task: asyncio.Task[None] | None = None
        self._watched: set[str] = set()
        self._new_dirs = True  # a directory may have appeared under a recursive root

    @property
    def active(self) -> bool:
        """True while inotify is running."""
        return self._inotify is not None

    def start(self) -> bool:
        """Open the inotify descriptor; False (and a warning) if inotify is unusable."""
        if self._inotify is not None:
            return True
        try:
            from asyncinotify import Inotify

            inotify = Inotify()
        except (ImportError, OSError, AttributeError) as exc:
            # ImportError / AttributeError: not Linux (no inotify in libc).
            log.warning("watcher_failed", extra={"error": str(exc), "fallback": "polling"})
            return False
        self._inotify = inotify
        self._task = self._loop.create_task(self._pump(inotify))
        return True

    def watch(self, directory: str, *, recursive: bool = False) -> None:
        """Also watch ``directory`` (idempotent; missing directories are skipped).

        A directory that does not exist yet is covered by polling, and retried
        each time the tailer asks again.
        """
        if self._inotify is None or not os.path.isdir(directory):
            return
        self._add(directory)
        if recursive and self._new_dirs:
            self._new_dirs = False
            for below, _, _ in os.walk(directory):
                self._add(below)

    def _add(self, directory: str) -> None:
        if directory in self._watched or self._inotify is None:
            return
        from asyncinotify import Mask

        mask = (
            Mask.MODIFY
            | Mask.CLOSE_WRITE
            | Mask.CREATE
            | Mask.DELETE
            | Mask.MOVED_FROM
            | Mask.MOVED_TO
            | Mask.DELETE_SELF
            | Mask.MOVE_SELF
        )
        try:
            self._inotify.add_watch(directory, mask)
        except OSError as exc:
            # Typically ENOSPC: out of inotify watches. Polling still covers it.
            log.warning(
                "watcher_failed",
                extra={"directory": directory, "error": str(exc), "fallback": "polling"},
            )
            return
        self._watched.add(directory)

    async def _pump(self, inotify: Inotify) -> None:
        from asyncinotify import Mask

        try:
            async for notice in inotify:
                if Mask.ISDIR in notice.mask:
                    self._new_dirs = True  # re-walk recursive roots on the next ask
                if Mask.IGNORED in notice.mask and notice.watch is not None:
                    # The directory went away: watch it again if it comes back.
                    self._watched.discard(str(notice.watch.path))
                    self._new_dirs = True
                self._event.set()
                # Leave the next notices in the kernel a moment: identical ones
                # (a writer's every flush) are merged there while unread.
                await asyncio.sleep(_GATHER)
        except OSError as exc:
            log.warning("watcher_failed", extra={"error": str(exc), "fallback": "polling"})

    def stop(self) -> None:
        """Stop reading and close the descriptor (idempotent)."""
        inotify, self._inotify = self._inotify, None
        task, self._task = self._task, None
        self._watched.clear()
        if task is not None:
            task.cancel()
        if inotify is not None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self._loop.remove_reader(inotify.fd)
                inotify.close()
