"""What a tailer and its tracked files share: the emit hand-over, the checkpoint
access they are allowed, their settings, and what a truncated file held."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from logpipe.checkpoints.store import FileCheckpoint
from logpipe.event import Event

Emit = Callable[[deque[Event]], Awaitable[None]]
"""The pipeline's bounded-queue put: awaiting it is how backpressure reaches the reader.

It takes lines off the front of the deque as they are accepted, and returns
once it is empty; cancelled, it leaves the lines it did not accept in place.
A read chunk's lines are handed over together, so the per-line cost of the
hand-over is a ``popleft``.
"""


class CheckpointAccess(Protocol):
    """What the tailer needs of the checkpoint store.

    It reads, and does two bookkeeping writes that never claim a line was
    delivered: :meth:`register` a file at the offset reading starts from (so a
    restart can find it even if none of its lines were acknowledged), and
    :meth:`end_generation` of a deleted file it closes (so a new file on the
    same inode with the same first line starts over with new ids).
    """

    def get(self, file_id: str) -> FileCheckpoint | None: ...

    def snapshot(self) -> dict[str, FileCheckpoint]: ...

    def register(
        self, file_id: str, path: str, generation: int, offset: int, copy_of: str | None = None
    ) -> bool: ...

    def end_generation(self, file_id: str, path: str, generation: int) -> bool: ...


@dataclass(slots=True, frozen=True)
class ReadSettings:
    """What all the files of one tailer share."""

    input_name: str
    max_line_bytes: int
    chunk_size: int
    emit: Emit
    checkpoints: CheckpointAccess


@dataclass(slots=True, frozen=True)
class Truncation:
    """What a file held when it was found truncated: enough to find and check its copy.

    ``committed`` is the end of the last complete line emitted, ``position`` how
    far it was read, ``size_before`` its size at the previous look, ``tail`` the
    last bytes read before ``position`` and ``partial`` the incomplete last line
    read (as a line of the old identity), if any.
    """

    file_id: str
    generation: int
    digest: str
    committed: int
    position: int
    size_before: int
    tail: bytes
    partial: Event | None
