"""Copies of a content we read: copytruncate's ``app.log.1``, or a ``cp`` of a log.

A copy holds the bytes of a content we read (or were reading) at the same
offsets. Read as a file of its own, it would ship those lines again under new
ids. Read as the original (its file id and generation, from where the original
had got to), its lines get the ids they already have, so all it adds is what
the original never gave us: the bytes a truncation took away before we read
them. We meet a copy in one of two ways:

* **The original is truncated** (:func:`find_truncation_copy`): its copy is
  looked for in its directory, recognised by first line, length and the last
  bytes we read.
* **The globs match a new file** with the first line of a file we read
  (:func:`find_copy_source`): it is a copy if it is at least as long as what
  we read of that file and holds the last bytes we read at the same offset.
  A shorter one that matches the file's beginning, or that holds nothing but
  the first line, is undecided (a copy still being written, or a new file
  that so far only has the header lines every file of the app starts with):
  the caller waits a little, then reads it as a new file. So a ``cp`` made
  before the file grew further, found late, is read again as a new file.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable

from logpipe.sources.fingerprint import FINGERPRINT_BYTES, FileKey, head_digest
from logpipe.sources.locate import DirectoryScan, Found, directories_of, find_copy, holds_bytes
from logpipe.sources.tracked import TrackedFile, Truncation

# Bytes compared, just before a candidate copy's end, with the file it copies.
_COMPARE_BYTES = 4096


def copy_verdict(source: TrackedFile, fd: int, size: int) -> bool | None:
    """Whether the file at ``fd`` (``size`` bytes, same first line) copies ``source``'s content.

    A copy holds at least what we read of the source, ending with the very
    bytes we read last. A shorter file that matches the source's beginning may
    be a copy still being written, or a new file that so far only repeats the
    source's header lines: undecided (None) for now.
    """
    if source.file_id is None or source.is_copy:
        return False
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    first = head.find(b"\n") + 1 or len(head)
    if size <= first:
        return None
    position = source.position
    if size < position:
        if os.fstat(source.fd).st_size < size or head_digest(source.fd) != source.digest:
            return False  # the source's bytes are gone: nothing to compare with
        start = max(first, size - _COMPARE_BYTES)
        same = os.pread(fd, size - start, start) == os.pread(source.fd, size - start, start)
        return None if same else False
    tail = source.tail or b"\n"  # nothing read since a resume: a line ends there
    return os.pread(fd, len(tail), position - len(tail)) == tail


def find_copy_source(
    files: Iterable[TrackedFile], new: TrackedFile
) -> tuple[TrackedFile | None, bool]:
    """The file whose content ``new`` copies, if any, and whether that is decided yet."""
    digest = head_digest(new.fd)
    decided = True
    for source in files:
        if not digest or source.digest != digest or source is new:
            continue
        verdict = copy_verdict(source, new.fd, new.size)
        if verdict:
            return source, True
        decided = decided and verdict is not None
    return None, decided


def find_truncation_copy(path: str, cut: Truncation, tracked: Collection[FileKey]) -> Found | None:
    """The copy, next to ``path``, of the content ``cut`` describes; not one of ``tracked``."""
    return find_copy(
        cut.digest,
        directories_of(path),
        DirectoryScan(),
        min_size=cut.position,
        exclude=tracked,
        verify=holds_bytes(cut.tail, cut.position),
    )
