"""Find files on disk: glob matches, a file again by identity, the copy of a truncated file.

I/O helpers for the tailer's recovery and for checkpoint pruning. The searches
look only in the directory (or directories, when a symlink is involved) where a
file was last read, never recursively: one ``os.scandir`` and one ``stat`` per
entry, then a 1 KiB ``pread`` only for the files that pass the cheap checks
(right inode, or big enough to be the copy).

A copy is recognised by its first line: copytruncate copies the whole content
(so the first line too) into a new inode, then empties the original. The first
line alone is ambiguous when every file starts with the same header line; each
caller therefore also passes a ``verify`` check on the bytes it knows, and
copies are tried newest first.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from logpipe.sources.fingerprint import FileKey, head_digest

Verify = Callable[[int, os.stat_result], bool]
"""Extra check on an open candidate (fd, its stat): True to accept it."""


@dataclass(slots=True, frozen=True)
class Found:
    """An open file (the caller owns ``fd``) found at ``path``."""

    fd: int
    path: str
    size: int
    key: FileKey
    copy: bool = False  # True: a copy of the content in another inode, not the file itself


def glob_files(patterns: Iterable[str]) -> dict[FileKey, list[str]]:
    """Every regular file the globs match, by (dev, ino), with the names it matched under.

    ``stat`` follows symlinks, so a file matched through a link and directly is
    one entry.
    """
    found: dict[FileKey, list[str]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                st = os.stat(path)
            except OSError:
                continue  # dangling symlink, or gone since the glob
            if stat.S_ISREG(st.st_mode):
                found.setdefault((st.st_dev, st.st_ino), []).append(path)
    return found


def owned(path: str, patterns: Sequence[str]) -> bool:
    """Whether some glob in ``patterns`` matches ``path`` (``**``: any depth). Pure.

    Tells which input a checkpoint entry belongs to, when several share a store.
    """
    parts = _components(path)
    return any(_match(parts, _components(pattern)) for pattern in patterns)


def _components(path: str) -> list[str]:
    return os.path.normpath(os.path.abspath(path)).split(os.sep)


def _match(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(parts[skip:], rest) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match(parts[1:], rest)


def directories_of(path: str) -> list[str]:
    """Where a file last read as ``path`` (and its copies) should be: its directory,
    and its target's directory if ``path`` is a symlink."""
    dirs = [os.path.dirname(os.path.abspath(path))]
    real = os.path.dirname(os.path.realpath(path))
    if real not in dirs:
        dirs.append(real)
    return dirs


class DirectoryScan:
    """Regular files of directories, listed once each (a cache for one search round)."""

    def __init__(self) -> None:
        self._listed: dict[str, dict[FileKey, tuple[str, os.stat_result]]] = {}

    def files(self, directory: str) -> dict[FileKey, tuple[str, os.stat_result]]:
        """The regular files directly in ``directory`` by (dev, ino): (path, stat)."""
        listed = self._listed.get(directory)
        if listed is None:
            listed = self._listed[directory] = _list(directory)
        return listed


def _list(directory: str) -> dict[FileKey, tuple[str, os.stat_result]]:
    files: dict[FileKey, tuple[str, os.stat_result]] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed since the listing
                if stat.S_ISREG(st.st_mode):
                    files[(st.st_dev, st.st_ino)] = (entry.path, st)
    except OSError:
        pass  # directory gone or unreadable: nothing found there
    return files


def where_is(
    key: FileKey, dirs: Sequence[str], scan: DirectoryScan, matched: Mapping[FileKey, list[str]]
) -> str | None:
    """A current name of inode ``key``: among the glob matches, else in ``dirs``."""
    if key in matched:
        return matched[key][0]
    for directory in dirs:
        entry = scan.files(directory).get(key)
        if entry is not None:
            return entry[0]
    return None


def open_matching(path: str, key: FileKey | None, digest: str, verify: Verify) -> Found | None:
    """Open ``path`` and keep it open if it is inode ``key`` (any when None), its first
    line has ``digest`` and ``verify`` accepts it; else close it and return None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            stat.S_ISREG(st.st_mode)
            and (key is None or (st.st_dev, st.st_ino) == key)
            and head_digest(fd) == digest
            and verify(fd, st)
        ):
            return Found(fd, path, st.st_size, (st.st_dev, st.st_ino))
    except OSError:
        pass
    os.close(fd)
    return None


def find_copy(
    digest: str,
    dirs: Sequence[str],
    scan: DirectoryScan,
    *,
    min_size: int,
    exclude: Collection[FileKey],
    verify: Verify,
) -> Found | None:
    """The newest file in ``dirs`` (not in ``exclude``, at least ``min_size`` bytes) whose
    first line has ``digest`` and that ``verify`` accepts: the copy of a truncated file."""
    candidates = [
        (path, st)
        for directory in dirs
        for key, (path, st) in scan.files(directory).items()
        if key not in exclude and st.st_size >= min_size
    ]
    candidates.sort(key=lambda item: item[1].st_mtime_ns, reverse=True)
    for path, _ in candidates:
        found = open_matching(path, None, digest, verify)
        if found is not None:
            return replace(found, copy=True)
    return None


def ends_line_at(offset: int) -> Verify:
    """Check that a line ends at ``offset`` (a checkpoint offset always is a line end)."""

    def verify(fd: int, st: os.stat_result) -> bool:
        return offset == 0 or os.pread(fd, 1, offset - 1) == b"\n"

    return verify


def holds_bytes(data: bytes, end: int) -> Verify:
    """Check that the file holds ``data`` just before offset ``end``."""
    if not data:
        return ends_line_at(end)

    def verify(fd: int, st: os.stat_result) -> bool:
        return os.pread(fd, len(data), end - len(data)) == data

    return verify
