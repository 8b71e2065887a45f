"""LineSplitter: tables of inputs, and invariance under any chunking."""

from __future__ import annotations

import pytest

from logpipe.event import Event
from logpipe.sources.lines import LineSplitter

ORIGIN = ("1:2:ab", 3, "/var/log/app.log", "application")


def piece(offset: int, end: int, raw: bytes, truncated: bool = False) -> Event:
    """A line of ORIGIN, as the splitter makes them."""
    return Event("1:2:ab", 3, "/var/log/app.log", offset, end, raw, "application", truncated)


def split(data: bytes, max_line_bytes: int = 1 << 20, base: int = 0) -> list[Event]:
    return LineSplitter(max_line_bytes).feed(data, base, ORIGIN)


def test_splits_complete_lines_with_offsets() -> None:
    assert split(b"ab\ncde\n") == [piece(0, 3, b"ab"), piece(3, 7, b"cde")]


def test_partial_last_line_waits_for_its_newline() -> None:
    splitter = LineSplitter(100)
    assert splitter.feed(b"one\ntw", 0, ORIGIN) == [piece(0, 4, b"one")]
    assert splitter.position == 4
    assert splitter.pending == 2
    assert splitter.feed(b"o", 6, ORIGIN) == []
    assert splitter.feed(b"\n", 7, ORIGIN) == [piece(4, 8, b"two")]
    assert splitter.pending == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\r\nb\r\n", [piece(0, 3, b"a"), piece(3, 6, b"b")]),
        (b"a\r\r\n", [piece(0, 4, b"a\r")]),  # only one trailing \r is stripped
        (b"a\rb\n", [piece(0, 4, b"a\rb")]),  # a \r inside the line is content
        (b"\n\nx\n\n", [piece(2, 4, b"x")]),  # empty lines are skipped
        (b"\r\n", []),  # empty once its \r is stripped
        (b"  \n", [piece(0, 3, b"  ")]),  # blank but not empty: kept
        (b"", []),
    ],
)
def test_line_endings_and_empty_lines(data: bytes, expected: list[Event]) -> None:
    assert split(data) == expected


def test_offsets_start_at_the_first_chunk_offset() -> None:
    assert split(b"x\ny\n", base=1000) == [piece(1000, 1002, b"x"), piece(1002, 1004, b"y")]


def test_empty_lines_still_move_the_position() -> None:
    splitter = LineSplitter(10)
    assert splitter.feed(b"\n\n\n", 0, ORIGIN) == []
    assert splitter.position == 3


def test_overlong_line_is_truncated_flagged_and_does_not_stall() -> None:
    data = b"x" * 25 + b"\nok\n"
    assert split(data, max_line_bytes=10) == [
        piece(0, 26, b"x" * 10, truncated=True),
        piece(26, 29, b"ok"),
    ]


def test_line_of_exactly_the_limit_is_not_truncated_even_with_crlf() -> None:
    assert split(b"1234\r\n", max_line_bytes=4) == [piece(0, 6, b"1234")]
    assert split(b"12345\r\n", max_line_bytes=4) == [piece(0, 7, b"1234", truncated=True)]


def test_overlong_line_memory_stays_bounded_across_chunks() -> None:
    splitter = LineSplitter(8)
    offset = 0
    for _ in range(1000):
        assert splitter.feed(b"y" * 100, offset, ORIGIN) == []
        offset += 100
        assert len(splitter._buf) <= 9
    assert splitter.pending == offset
    assert splitter.feed(b"\n", offset, ORIGIN) == [piece(0, offset + 1, b"y" * 8, truncated=True)]


def test_non_contiguous_chunk_is_a_caller_bug() -> None:
    splitter = LineSplitter(10)
    splitter.feed(b"abc", 0, ORIGIN)
    with pytest.raises(ValueError, match="expected 3"):
        splitter.feed(b"d\n", 5, ORIGIN)


def test_reset_discards_the_partial_line() -> None:
    splitter = LineSplitter(10)
    splitter.feed(b"old partial", 0, ORIGIN)
    splitter.reset(0)
    assert splitter.feed(b"new\n", 0, ORIGIN) == [piece(0, 4, b"new")]


def test_flush_emits_a_final_line_without_newline() -> None:
    splitter = LineSplitter(10)
    splitter.feed(b"a\nlast", 0, ORIGIN)
    assert splitter.flush(ORIGIN) == piece(2, 6, b"last")
    assert splitter.flush(ORIGIN) is None


SAMPLE = (
    b'{"level":"INFO","message":"started"}\r\n'
    b"\n"
    b"short\n"
    + b"L" * 40
    + b"\n"
    + b"exactly-16-bytes\r\n"
    + b"\r\n"
    + b"M" * 17
    + b"\r\n"
    + b"tail-without-newline"
)


@pytest.mark.parametrize("max_line_bytes", [1, 16, 100])
def test_any_chunk_boundary_gives_the_same_lines(max_line_bytes: int) -> None:
    whole = LineSplitter(max_line_bytes).feed(SAMPLE, 0, ORIGIN)
    for cut in range(len(SAMPLE) + 1):
        splitter = LineSplitter(max_line_bytes)
        got = splitter.feed(SAMPLE[:cut], 0, ORIGIN) + splitter.feed(SAMPLE[cut:], cut, ORIGIN)
        assert got == whole, cut


def test_byte_at_a_time_gives_the_same_lines() -> None:
    whole = LineSplitter(16).feed(SAMPLE, 0, ORIGIN)
    splitter = LineSplitter(16)
    got = [line for i in range(len(SAMPLE)) for line in splitter.feed(SAMPLE[i : i + 1], i, ORIGIN)]
    assert got == whole
    assert [line.raw for line in whole][:3] == [
        b'{"level":"INFO","message":"started"}'[:16],
        b"short",
        b"L" * 16,
    ]
