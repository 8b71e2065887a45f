"""File identity: stable across renames, new after copytruncate."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from logpipe.sources.fingerprint import (
    FINGERPRINT_BYTES,
    fingerprint,
    first_line_digest,
    parse_file_id,
)


@contextmanager
def opened(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def fp_of(path: Path) -> str | None:
    with opened(path) as fd:
        return fingerprint(fd)


def test_first_line_digest_ignores_what_follows_the_first_line() -> None:
    assert first_line_digest(b"first\n") == first_line_digest(b"first\nsecond\nthird")
    assert first_line_digest(b"first\n") != first_line_digest(b"other\n")


def test_no_fingerprint_until_the_first_line_is_complete() -> None:
    assert first_line_digest(b"") is None
    assert first_line_digest(b"partial first li") is None
    assert first_line_digest(b"\n") is not None  # an empty first line is complete


def test_long_first_line_is_identified_by_its_first_bytes() -> None:
    head = b"z" * FINGERPRINT_BYTES
    assert first_line_digest(head) is not None
    assert first_line_digest(head) == first_line_digest(head + b"more, no newline yet")


def test_final_file_without_newline_can_be_identified() -> None:
    assert first_line_digest(b"only", final=True) is not None
    assert first_line_digest(b"", final=True) is None


def test_fingerprint_is_stable_across_rename_and_growth(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"line one\n")
    before = fp_of(log)
    assert before is not None
    log.rename(tmp_path / "app.log.1")
    with (tmp_path / "app.log.1").open("ab") as f:
        f.write(b"line two\n")
    assert fp_of(tmp_path / "app.log.1") == before


def test_fingerprint_changes_after_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"2024-01-01 first\nsecond\n")
    before = fp_of(log)
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
        f.write(b"2024-01-02 new first\n")
    assert fp_of(log) not in (None, before)
    assert fp_of(tmp_path / "app.log.1") != before  # a copy is another inode


def test_fingerprint_does_not_move_the_file_position(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"abc\ndef\n")
    with opened(log) as fd:
        os.lseek(fd, 4, os.SEEK_SET)
        assert fingerprint(fd) is not None
        assert os.read(fd, 3) == b"def"


def test_empty_file_has_no_fingerprint_yet(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    assert fp_of(log) is None
    log.write_bytes(b"no newline")
    assert fp_of(log) is None


def test_file_id_round_trips_through_its_parts(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first\n")
    file_id = fp_of(log)
    assert file_id is not None
    identity = parse_file_id(file_id)
    st = os.stat(log)
    assert identity is not None and identity.key == (st.st_dev, st.st_ino)
    assert str(identity) == file_id


@pytest.mark.parametrize("bad", ["", "x", "1:2", "1:2:", "a:2:ff", "1:b:ff"])
def test_anything_else_is_not_a_file_id(bad: str) -> None:
    assert parse_file_id(bad) is None
