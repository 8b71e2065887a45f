"""What ``logpipe status`` reports, read from a pipeline's data directory and its log files.

Everything comes from the data directory and the files themselves, read only:
nothing is written and no lock is taken, so it answers the same whether a
logpipe is running on that directory or not (the checkpoint file is replaced
by rename on every save, so one read sees one whole state; see
:func:`logpipe.checkpoints.store.read_checkpoints`).

Files are matched to checkpoints by identity (inode and first line, see
:mod:`logpipe.sources.fingerprint`), never by name: after a rotation the name
holds a new file, and the checkpointed one is looked for by inode where it was
read. States:

* ``tracked``: a file the globs match, with a checkpoint;
* ``new``: a file the globs match that has no checkpoint yet (lag: all of it);
* ``rotated``: a checkpointed file found under another name;
* ``truncated``: the checkpointed inode is there but its content started over
  (the new content is a file of its own, usually listed as ``new`` or ``tracked``);
* ``gone``: a checkpointed file that is nowhere to be found (deleted);
* ``copy``: copytruncate's copy of a file, read (and acknowledged) as the original.

:func:`collect` does the I/O; :mod:`logpipe.status.output` turns its
:class:`Status` into text or JSON.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from logpipe.alerts.spool import spool_dir
from logpipe.checkpoints.store import FileCheckpoint, read_checkpoints
from logpipe.config import PipelineConfig
from logpipe.sources.fingerprint import FileIdentity, FileKey, head_digest, parse_file_id
from logpipe.sources.locate import DirectoryScan, directories_of, owned


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One file, as far as the checkpoints and the disk tell.

    ``path``: where the file is now (or was last read, when ``gone``);
    ``read_as``: the name it was last read under, when that differs.
    ``lag_bytes``: bytes on disk not yet acknowledged (``None``: unknown).
    """

    input: str | None
    path: str
    state: str
    file_id: str | None
    generation: int | None
    offset: int
    size: int | None
    lag_bytes: int | None
    acked_at: float | None
    read_as: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterStatus:
    path: str
    count: int
    reasons: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """The alert spool: e-mails not yet accepted by the SMTP server, and refused ones."""

    configured: bool
    pending: int
    failed: int
    oldest_pending_at: float | None


@dataclass(frozen=True, slots=True)
class Status:
    pipeline: str
    data_dir: str
    checkpoints: str | None
    """The checkpoint file read (``None``: none yet; the ``.prev`` copy if the main one is bad)."""
    problem: str | None
    files: list[FileStatus]
    dead_letters: DeadLetterStatus
    alerts: AlertStatus


def collect(config: PipelineConfig, pipeline: str) -> Status:
    """Read the state of ``config``'s pipeline from its data directory and the log files."""
    from logpipe.dlq import dead_letters, summarize

    problem = None
    try:
        entries, source = read_checkpoints(config.data_dir / "checkpoints.json")
    except (OSError, ValueError) as exc:
        entries, source, problem = {}, None, str(exc)
    inputs = {name: list(input_config.paths) for name, input_config in config.inputs.items()}
    count, reasons = summarize(config)
    return Status(
        pipeline=pipeline,
        data_dir=str(config.data_dir),
        checkpoints=None if source is None else str(source),
        problem=problem,
        files=file_statuses(inputs, entries),
        dead_letters=DeadLetterStatus(str(dead_letters(config).path), count, reasons),
        alerts=alert_status(spool_dir(config.data_dir), config.alerts.email is not None),
    )


# -- files ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Probe:
    key: FileKey
    size: int
    digest: str | None


def file_statuses(
    inputs: Mapping[str, Sequence[str]], entries: Mapping[str, FileCheckpoint]
) -> list[FileStatus]:
    """Every file the globs match, then every checkpointed file they did not lead to."""
    rows: list[FileStatus] = []
    seen_keys: set[FileKey] = set()
    seen_ids: set[str] = set()
    for name, patterns in inputs.items():
        for path in _glob(patterns):
            probe = _probe(path)
            if probe is None or probe.key in seen_keys:
                continue  # unreadable, or already listed through another glob
            seen_keys.add(probe.key)
            file_id = None if probe.digest is None else str(FileIdentity(*probe.key, probe.digest))
            checkpoint = None if file_id is None else entries.get(file_id)
            if file_id is None or checkpoint is None:
                rows.append(
                    FileStatus(name, path, "new", file_id, None, 0, probe.size, probe.size, None)
                )
                continue
            seen_ids.add(file_id)
            rows.append(_located(name, path, file_id, checkpoint, probe.size, entries))
    scan = DirectoryScan()
    for file_id, checkpoint in entries.items():
        if file_id not in seen_ids:
            owner = next((n for n, p in inputs.items() if owned(checkpoint.path, p)), None)
            rows.append(_elsewhere(owner, file_id, checkpoint, entries, scan))
    return rows


def _located(
    name: str | None,
    path: str,
    file_id: str,
    checkpoint: FileCheckpoint,
    size: int,
    entries: Mapping[str, FileCheckpoint],
) -> FileStatus:
    """A checkpointed file found on disk (at ``path``, ``size`` bytes, same identity)."""
    generation, offset, acked_at = _progress(checkpoint, entries)
    state = "copy" if checkpoint.copy_of is not None else "tracked"
    lag: int | None = None if offset is None else max(size - offset, 0)
    if offset is not None and offset > size:
        # Shorter than what was delivered, same first line: rewritten while nobody
        # read it; the tailer starts it over, so all of it is still to deliver.
        state, lag = "truncated", size
    read_as = checkpoint.path if checkpoint.path != path else None
    if read_as is not None and state == "tracked":
        state = "rotated"
    return FileStatus(
        name, path, state, file_id, generation, offset or 0, size, lag, acked_at, read_as
    )


def _elsewhere(
    name: str | None,
    file_id: str,
    checkpoint: FileCheckpoint,
    entries: Mapping[str, FileCheckpoint],
    scan: DirectoryScan,
) -> FileStatus:
    """A checkpointed file the globs did not lead to: renamed away, truncated, or gone."""
    identity = parse_file_id(file_id)
    found = None if identity is None else _find(identity.key, checkpoint.path, scan)
    if identity is not None and found is not None:
        path, probe = found
        if probe.digest == identity.digest:
            return _located(name, path, file_id, checkpoint, probe.size, entries)
        generation, offset, acked_at = _progress(checkpoint, entries)
        return FileStatus(
            name, path, "truncated", file_id, generation, offset or 0, None, None, acked_at
        )
    generation, offset, acked_at = _progress(checkpoint, entries)
    return FileStatus(
        name, checkpoint.path, "gone", file_id, generation, offset or 0, None, None, acked_at
    )


def _progress(
    checkpoint: FileCheckpoint, entries: Mapping[str, FileCheckpoint]
) -> tuple[int, int | None, float | None]:
    """(generation, acknowledged offset, last ack) of a file's content.

    A copy's lines are acknowledged under the original's entry; its own entry
    never moves. The original's offset counts only while it is still in the
    copy's generation (``None``: unknown, the original has moved on or is gone).
    """
    if checkpoint.copy_of is None:
        return checkpoint.generation, checkpoint.offset, checkpoint.acked_at
    original = entries.get(checkpoint.copy_of)
    if original is None or original.generation != checkpoint.generation:
        return checkpoint.generation, None, None
    return original.generation, original.offset, original.acked_at


def _find(key: FileKey, path: str, scan: DirectoryScan) -> tuple[str, _Probe] | None:
    """Inode ``key`` under its last name, else elsewhere in that name's directory."""
    probe = _probe(path)
    if probe is not None and probe.key == key:
        return path, probe
    for directory in directories_of(path):
        entry = scan.files(directory).get(key)
        if entry is not None:
            probe = _probe(entry[0])
            if probe is not None and probe.key == key:
                return entry[0], probe
    return None


def _glob(patterns: Iterable[str]) -> list[str]:
    paths: list[str] = []
    for pattern in patterns:
        paths.extend(p for p in sorted(glob.glob(pattern, recursive=True)) if p not in paths)
    return paths


def _probe(path: str) -> _Probe | None:
    """Identity and size of the regular file at ``path``, or None. Read only: one ``pread``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return _Probe((st.st_dev, st.st_ino), st.st_size, head_digest(fd))
    except OSError:
        return None
    finally:
        os.close(fd)


# -- alerts --------------------------------------------------------------------------


def alert_status(directory: Path, configured: bool) -> AlertStatus:
    """Count the spooled e-mails (see :mod:`logpipe.alerts.spool` for the layout).

    Spool ids start with their creation time in milliseconds, so the oldest is
    the first name in order and its age needs no file to be opened.
    """
    pending = _entries(directory / "pending")
    oldest = None
    if pending:
        first = min(pending)
        stamp = first.name.partition("-")[0]
        try:
            oldest = int(stamp) / 1000 if stamp.isdigit() else first.stat().st_mtime
        except OSError:
            oldest = None  # sent (and removed) since the listing
    return AlertStatus(configured, len(pending), len(_entries(directory / "failed")), oldest)


def _entries(folder: Path) -> list[Path]:
    try:
        return [
            p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".tmp-")
        ]
    except OSError:
        return []
