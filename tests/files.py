"""File helpers shared by unit and integration tests."""

from __future__ import annotations

import os
from pathlib import Path

from logpipe.sources.fingerprint import fingerprint


def file_id_of(path: Path) -> str:
    """The file id the tailer gives ``path`` (its fingerprint), for checkpoints and ids."""
    fd = os.open(path, os.O_RDONLY)
    try:
        found = fingerprint(fd)
    finally:
        os.close(fd)
    assert found is not None, f"{path} has no fingerprint yet"
    return found
