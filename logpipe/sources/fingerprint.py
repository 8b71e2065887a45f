"""File identity: which file is this, whatever its name is now?

A fingerprint is ``"{st_dev}:{st_ino}:{digest of the first line}"``.

* Not the name: log rotation renames files, and a name-keyed checkpoint would
  apply ``application.log``'s offset to the brand-new file that now has that
  name (the bug that made pygtail and beaver lose or resend lines).
* The inode alone is not enough: copytruncate and ``truncate -s 0`` keep the
  inode while the content starts over, and filesystems reuse inodes of deleted
  files. The first line changes in both cases (it usually carries a timestamp),
  so adding its digest tells the new content from the old.
* Not a line count or the whole content: both change as the file grows, while
  the first line of a log file never does.

The digest covers the first line up to its newline, or the first
:data:`FINGERPRINT_BYTES` bytes when the first line is longer than that.
A file that is empty, or shorter than that and still without a newline, has no
fingerprint yet (``None``): its first line is still being written, so a digest
of it now would differ from the digest taken a moment later and the same file
would get two identities. The tailer waits until it can be identified.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

FINGERPRINT_BYTES = 1024

FileKey = tuple[int, int]
"""(st_dev, st_ino): which inode, whatever its name and content."""


@dataclass(slots=True, frozen=True)
class FileIdentity:
    """A fingerprint taken apart: the inode it was taken on, and the content's digest."""

    dev: int
    ino: int
    digest: str

    @property
    def key(self) -> FileKey:
        """The inode part, comparable with an ``os.stat`` result's (dev, ino)."""
        return (self.dev, self.ino)

    def __str__(self) -> str:
        return f"{self.dev}:{self.ino}:{self.digest}"


def parse_file_id(file_id: str) -> FileIdentity | None:
    """Split a fingerprint back into its parts; ``None`` if it is not one. Pure."""
    dev, _, rest = file_id.partition(":")
    ino, _, digest = rest.partition(":")
    if not (dev.isdigit() and ino.isdigit() and digest):
        return None
    return FileIdentity(int(dev), int(ino), digest)


def first_line_digest(head: bytes, *, final: bool = False) -> str | None:
    """Digest of the first line in ``head`` (the file's first bytes), or ``None``.

    ``None`` while the first line is incomplete and shorter than
    :data:`FINGERPRINT_BYTES`, unless ``final`` says the file will never grow
    again (then what is there is all there will ever be, and is stable). Pure.
    """
    head = head[:FINGERPRINT_BYTES]
    newline = head.find(b"\n")
    if newline >= 0:
        first = head[:newline]
    elif len(head) >= FINGERPRINT_BYTES or (final and head):
        first = head
    else:
        return None
    return hashlib.blake2b(first, digest_size=8).hexdigest()


def head_digest(fd: int, *, final: bool = False) -> str | None:
    """First-line digest of the open file ``fd`` (``pread``: its position is untouched)."""
    return first_line_digest(os.pread(fd, FINGERPRINT_BYTES, 0), final=final)


def fingerprint(fd: int, *, final: bool = False) -> str | None:
    """Fingerprint of the open file ``fd``, or ``None`` if it cannot be identified yet.

    Reads with ``pread`` so the caller's position in the file is untouched.
    ``final``: see :func:`first_line_digest`.
    """
    st = os.fstat(fd)
    digest = head_digest(fd, final=final)
    if digest is None:
        return None
    return str(FileIdentity(st.st_dev, st.st_ino, digest))
