"""Start-up: find what a previous run left unacknowledged, and which checkpoints are dead.

A checkpoint entry names a file by identity (``dev:ino:digest``) and records
how far its lines were acknowledged. At start, the globs may no longer lead to
that file:

* **Renamed away** (``app.log`` -> ``app.log.1``) before all its lines were
  acknowledged, and the globs do not match the new name. The file is found
  again by identity in the directory it was read in, and read from the
  checkpoint to its end.
* **Copied and truncated** (copytruncate) while we were not running: the inode
  is still there but holds new content (another first line) or less than was
  acknowledged. The rest of the old content is in the copy, found by its first
  line in the same directory (newest first, and a line must end at the
  checkpoint offset), and read from the checkpoint offset under the old
  identity, so its lines keep the ids they would have had.
* **Gone** (deleted, or moved elsewhere): nothing to read. Such an entry is
  dead once it is also old, and :func:`prune_checkpoints` removes it.

An inode reused by a new file is not mistaken for the old one: its first line
differs, so its fingerprint, and with it its checkpoint, does too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from logpipe.checkpoints.store import CheckpointStore, FileCheckpoint
from logpipe.sources.fingerprint import FileKey, parse_file_id
from logpipe.sources.locate import (
    DirectoryScan,
    Found,
    directories_of,
    ends_line_at,
    find_copy,
    glob_files,
    open_matching,
    owned,
    where_is,
)

__all__ = ["PRUNE_AFTER", "Recovery", "plan_recovery", "prune_checkpoints"]

log = logging.getLogger("logpipe.checkpoints")

PRUNE_AFTER = 7 * 24 * 3600.0
"""Default age (seconds since the last acknowledgement) after which a dead entry goes."""


@dataclass(slots=True, frozen=True)
class Recovery:
    """A file to read again from ``checkpoint.offset`` as ``file_id`` (the caller owns its fd)."""

    found: Found
    file_id: str
    checkpoint: FileCheckpoint


def locate_checkpointed(
    file_id: str,
    checkpoint: FileCheckpoint,
    matched: Mapping[FileKey, list[str]],
    scan: DirectoryScan,
    exclude: Collection[FileKey],
) -> Found | None:
    """The file ``file_id`` (at least as long as its checkpoint), or the copy holding
    its unacknowledged rest; None if neither is where it was read.

    A copy is only looked for when the inode is still there with other or less
    content: that is what copytruncate leaves. ``exclude``: inodes that are no
    copy (other entries' files).
    """
    identity = parse_file_id(file_id)
    if identity is None:
        return None
    dirs = directories_of(checkpoint.path)
    path = where_is(identity.key, dirs, scan, matched)
    if path is None:
        return None
    same = open_matching(
        path, identity.key, identity.digest, lambda fd, st: st.st_size >= checkpoint.offset
    )
    if same is not None:
        return same
    return find_copy(
        identity.digest,
        dirs,
        scan,
        min_size=checkpoint.offset + 1,
        exclude=exclude,
        verify=ends_line_at(checkpoint.offset),
    )


def plan_recovery(
    entries: Mapping[str, FileCheckpoint],
    patterns: Sequence[str],
    matched: Mapping[FileKey, list[str]],
) -> list[Recovery]:
    """Files holding lines never acknowledged that the globs would not lead to, oldest first.

    That is a checkpointed file renamed away from the globs, or the copy of a
    copytruncated one (which the globs may match: it must still be read as
    the original, from its checkpoint). Only entries last read under a name
    that ``patterns`` match are considered: with several inputs sharing one
    store, each recovers its own files.
    """
    scan = DirectoryScan()
    exclude = _entry_keys(entries)
    planned: set[FileKey] = set()
    plans: list[Recovery] = []
    for file_id, checkpoint in sorted(entries.items(), key=lambda item: item[1].updated):
        if not owned(checkpoint.path, patterns):
            continue
        found = locate_checkpointed(file_id, checkpoint, matched, scan, exclude)
        if found is None:
            continue
        if found.size <= checkpoint.offset or (not found.copy and found.key in matched):
            os.close(found.fd)  # all acknowledged, or read by the normal path
            continue
        if found.key in planned:  # already read for another entry
            os.close(found.fd)
            continue
        planned.add(found.key)
        plans.append(Recovery(found, file_id, checkpoint))
    return plans


def prune_checkpoints(
    store: CheckpointStore,
    patterns: Sequence[str] = (),
    *,
    prune_after: float = PRUNE_AFTER,
    now: float | None = None,
) -> list[str]:
    """Remove the entries of files that are gone, last acknowledged over ``prune_after`` ago.

    Gone: no glob match, no file in the directory it was read in has its
    identity, and no copy there holds unacknowledged bytes of it (what
    :func:`plan_recovery` could find). That covers deleted files, and the old
    identity of a file emptied by copytruncate once its copy is fully read.
    ``patterns``: every input's globs. Memory only: the caller saves the store.
    Returns the removed file ids.
    """
    now = time.time() if now is None else now
    matched = glob_files(patterns)
    scan = DirectoryScan()
    entries = store.snapshot()
    exclude = _entry_keys(entries)
    # The source of a copy stays while the copy's entry does: the copy resumes from it.
    sources = {cp.copy_of for cp in entries.values() if cp.copy_of is not None}

    def keep(file_id: str, checkpoint: FileCheckpoint) -> bool:
        if now - checkpoint.updated < prune_after or file_id in sources:
            return True
        found = locate_checkpointed(file_id, checkpoint, matched, scan, exclude)
        if found is None:
            return False
        os.close(found.fd)
        return True

    removed = store.prune(keep)
    for file_id in removed:
        log.info("checkpoint_pruned", extra={"file_id": file_id, "path": entries[file_id].path})
    return removed


def _entry_keys(entries: Mapping[str, FileCheckpoint]) -> set[FileKey]:
    """Inodes read as files of their own (not as copies): never taken for a copy."""
    identities = (parse_file_id(file_id) for file_id, cp in entries.items() if cp.copy_of is None)
    return {identity.key for identity in identities if identity is not None}
