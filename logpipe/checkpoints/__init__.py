"""Acknowledged read positions per file: an atomic, versioned store."""

from logpipe.checkpoints.store import (
    CheckpointError,
    CheckpointStore,
    CheckpointWriteError,
    FileCheckpoint,
)

__all__ = ["CheckpointError", "CheckpointStore", "CheckpointWriteError", "FileCheckpoint"]
