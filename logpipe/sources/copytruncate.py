"""The tailer's copytruncate handling: read a copy as its original, never as a new file.

Finding a copy is :mod:`logpipe.sources.copies`; this module decides what the
tailer does with one (:class:`CopyTruncate`), and counts what is lost.

Copytruncate, and where it can lose lines
-----------------------------------------
logrotate's ``copytruncate`` copies ``app.log`` to ``app.log.1`` and then
truncates ``app.log`` in place (same inode). Say we had read up to offset P
when the copy was made:

* Bytes the writer appended after P and before the copy are in the copy only.
  When the truncation is noticed (file shorter than P, or its first line
  changed), the tailer looks in the file's directory for the copy: a regular
  file we do not read yet, at least P bytes long, starting with the same first
  line and holding the same bytes just before P as we read; newest first. It
  reads the copy from the end of the last complete line emitted to its end,
  under the old file id and generation, so those lines get exactly the ids
  they would have had (:mod:`logpipe.sources.copies`). That closes the window.
* If the globs match the copy (``app.log*``), it is recognised as a copy when
  discovered (same first line, same bytes as the original or as our last read)
  and read the same way: it adds the lost bytes, never a second set of lines.
  Its own fingerprint is registered as a copy, so a restart does not take it
  for a new file either.
* Without a copy next to the file (``olddir`` elsewhere, compressed before we
  looked, or a plain ``truncate``), the bytes from P to the truncation are
  lost. The part we knew existed (size at our last look minus P) is added to
  :attr:`CopyTruncate.gap_bytes`; bytes written after our last look are
  lost uncounted. A partial last line already read is emitted as it is.
* Bytes written between logrotate's copy and its truncate are in neither file:
  lost by logrotate itself, whoever reads.
* A truncate-and-rewrite past P between two looks that keeps the same first
  line (files that all start with one header line) cannot be told from
  growth: reading goes on at P in the new content.
* While stopped, the same search runs at start for every checkpointed file
  whose inode now holds other (or less) content.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection

from logpipe.sources.copies import find_copy_source, find_truncation_copy
from logpipe.sources.fingerprint import FileKey
from logpipe.sources.tracked import ReadSettings, TrackedFile, Truncation

__all__ = ["CopyTruncate"]

log = logging.getLogger("logpipe.tail")


class CopyTruncate:
    """Adopts copies of the files a tailer reads, and reads truncated content from its copy.

    ``files`` is the tailer's own map of open files, shared: a copy found at a
    truncation is added to it. ``undecided_for``: seconds a new file that may
    be a copy, too short yet to tell, waits before it is read as a new file.
    """

    def __init__(
        self,
        settings: ReadSettings,
        files: dict[FileKey, TrackedFile],
        stopping: Callable[[], bool],
        *,
        undecided_for: float,
    ) -> None:
        self._settings = settings
        self._files = files
        self._stopping = stopping
        self._undecided_for = undecided_for
        # New files that may be copies of a file we read, too short yet to tell:
        # when first seen (they are opened as files of their own after a while).
        self._undecided: dict[FileKey, float] = {}
        self.gap_bytes = 0
        """Bytes known lost to truncations whose copy could not be found (a metric)."""

    def forget_missing(self, found: Collection[FileKey]) -> None:
        """Stop waiting on undecided files the globs no longer match."""
        for key in set(self._undecided) - set(found):
            del self._undecided[key]

    def adopt_if_copy(self, new: TrackedFile) -> bool:
        """If ``new`` copies the content of a file we read, make it read as that file.

        Then its lines get the original's ids from where the original had got
        to: a copy the globs match (``app.log*`` and copytruncate) adds only
        what the original lost to its truncation, never a second set of the
        lines. False: undecided yet, do not open it now.
        """
        source, decided = find_copy_source(self._files.values(), new)
        if not decided:
            first_seen = self._undecided.setdefault(new.key, time.monotonic())
            if time.monotonic() - first_seen < self._undecided_for:
                return False
        self._undecided.pop(new.key, None)
        if source is not None and source.file_id is not None:
            new.assume(source.file_id, source.generation, source.committed)
            log.info(
                "file_copy_found",
                extra={"path": new.path, "source": source.path, "file_id": source.file_id},
            )
        return True

    async def on_truncated(self, tf: TrackedFile, cut: Truncation) -> None:
        """Read what the truncated content held past our position from its copy, if any."""
        if any(
            other.is_copy and (other.file_id, other.generation) == (cut.file_id, cut.generation)
            for other in self._files.values()
        ):
            return  # already found, through the globs: it reads from where we were
        copy = find_truncation_copy(tf.path, cut, set(self._files))
        if copy is None:
            lost = max(0, cut.size_before - cut.position)
            self.gap_bytes += lost
            if lost:
                log.warning(
                    "copytruncate_gap",
                    extra={"path": tf.path, "file_id": cut.file_id, "bytes": lost},
                )
            if cut.partial is not None:
                await tf.emit_line(cut.partial)
            return
        if copy.size <= cut.committed:
            os.close(copy.fd)  # nothing in it we have not emitted
            return
        copy_tf = TrackedFile(copy.fd, tf.path, self._settings, matched=False)
        copy_tf.assume(cut.file_id, cut.generation, cut.committed)
        self._files[copy_tf.key] = copy_tf
        log.info(
            "file_recovered",
            extra={"path": copy.path, "old_path": tf.path, "file_id": cut.file_id, "copy": True},
        )
        # Now, before the new content: the old lines keep their place in the stream.
        await copy_tf.read(self._stopping, self.on_truncated)
