"""When acknowledged positions reach the checkpoint file: soon after, not after every batch."""

from __future__ import annotations

import asyncio
import logging
import time

from logpipe.checkpoints.store import CheckpointStore, CheckpointWriteError

log = logging.getLogger("logpipe.pipeline")

SAVE_EVERY = 0.5
"""Seconds between two checkpoint saves, at most (see :class:`CheckpointSaver`)."""


class CheckpointSaver:
    """Saves a :class:`CheckpointStore` at most every :data:`SAVE_EVERY` seconds.

    A save is a write, two fsyncs, a hard link and a rename, on the event
    loop: ~2.4 ms here. At full speed a batch settles every ~60 ms, so saving
    after each one kept the loop from reading for ~3.5 % of the time
    (bench/RESULTS.md). :meth:`soon` saves at once if the last save is older
    than :data:`SAVE_EVERY`, or schedules one save for when it will be.

    So the file on disk may be up to :data:`SAVE_EVERY` behind what was
    acknowledged, never ahead. After a kill -9 the restart reads those lines
    again, and Elasticsearch answers 409 for each (deterministic ids,
    ``create``): nothing is lost or indexed twice. Filebeat flushes its
    registry the same way (``registry.flush``, 1 s by default). :meth:`now`
    saves everything at once, for a stop (SIGTERM, the end of ``--once``).
    """

    def __init__(self, store: CheckpointStore) -> None:
        self._store = store
        self._last = -SAVE_EVERY
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """A save is scheduled and has not run yet."""
        return self._timer is not None

    def soon(self) -> None:
        """Save now, or once :data:`SAVE_EVERY` has passed since the last save."""
        if self._timer is not None:
            return  # the save already scheduled will include this progress
        wait = self._last + SAVE_EVERY - time.monotonic()
        if wait <= 0:
            self.now()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self.now)

    def now(self) -> None:
        """Save at once (and drop the scheduled save, which this one covers)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = time.monotonic()
        try:
            self._store.save()
        except CheckpointWriteError as exc:
            # The in-memory state is kept and the next save retries; on disk the
            # checkpoint stays at the last offset it could persist, never ahead.
            log.error("checkpoint_save_failed", extra={"reason": str(exc)})
