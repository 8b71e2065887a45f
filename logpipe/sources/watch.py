"""Wake the tailer as soon as something changes in a watched directory.

inotify (through watchdog's Observer) only shortens the wait: the tailer
re-reads on a timer anyway, because inotify can be unavailable (no watches
left, unsupported filesystems such as NFS or some overlay mounts) and can drop
events when its queue overflows. So every failure here degrades to polling,
logged once, and never stops the tailer.

Events arrive on watchdog's thread; the only thing done there is scheduling
``event.set()`` on the tailer's event loop, which is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger("logpipe.tail")

# Only events that can mean "more to read" or "a file appeared / moved". Opens
# and no-write closes are left out: our own reads would otherwise wake us.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
]
_MAGIC = re.compile(r"[*?[]")


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


class _Waker(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        super().__init__()
        self._loop = loop
        self._event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        # RuntimeError: the loop closed while the observer was stopping.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._event.set)


class DirectoryWatcher:
    """Sets ``event`` (on ``loop``) whenever a watched directory changes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self._handler = _Waker(loop, event)
        self._observer: BaseObserver | None = None
        self._watched: set[str] = set()

    @property
    def active(self) -> bool:
        """True while inotify is running."""
        return self._observer is not None

    def start(self) -> bool:
        """Start the observer thread; False (and a warning) if inotify is unusable."""
        if self._observer is not None:
            return True
        try:
            observer = Observer()
            observer.start()
        except OSError as exc:
            log.warning("watcher_failed", extra={"error": str(exc), "fallback": "polling"})
            return False
        self._observer = observer
        return True

    def watch(self, directory: str, *, recursive: bool = False) -> None:
        """Also watch ``directory`` (idempotent; missing directories are skipped).

        A directory that does not exist yet is covered by polling, and retried
        each time the tailer asks again.
        """
        if self._observer is None or directory in self._watched or not os.path.isdir(directory):
            return
        try:
            self._observer.schedule(
                self._handler, directory, recursive=recursive, event_filter=_EVENTS
            )
        except OSError as exc:
            # Typically ENOSPC: out of inotify watches. Polling still covers it.
            log.warning(
                "watcher_failed",
                extra={"directory": directory, "error": str(exc), "fallback": "polling"},
            )
            return
        self._watched.add(directory)

    def stop(self) -> None:
        """Stop and join the observer thread (idempotent)."""
        observer, self._observer = self._observer, None
        self._watched.clear()
        if observer is not None:
            observer.stop()
            observer.join()
