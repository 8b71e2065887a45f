"""Split a byte stream into lines, knowing where each line sits in its file.

Pure: bytes and offsets in, :class:`~logpipe.event.Event` values (not yet
encoded) out; no I/O, no clock. The caller names the file the lines come from
(an :data:`Origin`), so each line is made once, as the event the rest of the
pipeline takes and the per-line step encodes in place (making a split-only
value first and copying it into another object cost a second object and a
second constructor call per line).

Three decisions shape this module:

* **A line exists only once its newline has been read.** The bytes after the
  last newline are held back, because the writer may be half-way through the
  line; emitting them now would ship a fragment and later the rest as a second
  "line".
* **Memory is bounded by ``max_line_bytes``.** A line longer than that is kept
  only up to the limit (plus one byte, to tell a trailing ``\\r`` apart from a
  real overflow); the rest is counted but thrown away until its newline. It is
  then emitted truncated and flagged, and its ``end`` is still just past the
  real newline, so acknowledging it moves the checkpoint past the whole line
  instead of stalling on it forever.
* **Empty lines are skipped.** A blank line carries nothing to index. Skipping
  it costs nothing in correctness: the next line's ``end`` (or the tailer's
  read position) moves past it, and a restart that re-reads it skips it again.
"""

from __future__ import annotations

from logpipe.event import Event

Origin = tuple[str, int, str, str]
"""``(file_id, generation, path, input_name)``: where the lines fed in come from."""


class LineSplitter:
    """Incremental line splitter for one file.

    Feed it consecutive chunks with :meth:`feed`; it returns the lines that the
    chunk completed and buffers the partial last line (at most
    ``max_line_bytes + 1`` bytes of it). An event's ``raw`` has no
    ``\\n`` (nor trailing ``\\r``); ``offset`` is the file offset of its first
    byte, ``end`` the offset just past its newline; ``truncated`` says ``raw``
    was cut at ``max_line_bytes``.
    """

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._max = max_line_bytes
        self._buf = bytearray()
        self._overflowed = False  # bytes of the current line were discarded
        self._line_start: int | None = None  # offset of the current partial line
        self._next: int | None = None  # offset the next chunk must start at

    @property
    def position(self) -> int | None:
        """Offset just past the last complete line (where the partial line starts)."""
        return self._line_start

    @property
    def pending(self) -> int:
        """Bytes of the current partial line seen so far (kept or discarded)."""
        if self._line_start is None or self._next is None:
            return 0
        return self._next - self._line_start

    def reset(self, offset: int) -> None:
        """Forget any partial line and expect the next chunk at ``offset``.

        Used when the file was truncated or when reading resumes elsewhere.
        """
        self._buf.clear()
        self._overflowed = False
        self._line_start = offset
        self._next = offset

    def feed(self, chunk: bytes, offset: int, origin: Origin) -> list[Event]:
        """Consume ``chunk`` read at file ``offset``; return the lines it completes.

        Chunks must be contiguous: a gap or overlap is a caller bug and raises
        :class:`ValueError` rather than silently producing wrong offsets.
        """
        if self._next is None:
            self.reset(offset)
        elif offset != self._next:
            raise ValueError(f"chunk at offset {offset}, expected {self._next}")
        lines: list[Event] = []
        size = len(chunk)
        first = chunk.find(b"\n")
        if first < 0:
            self._hold(chunk, 0, size)
        else:
            # The first newline completes the line held from earlier chunks (if any);
            # the lines between it and the last newline are whole in this chunk.
            line = self._complete(chunk, 0, first, offset + first + 1, origin)
            if line is not None:
                lines.append(line)
            last = chunk.rfind(b"\n")
            if last > first:
                self._split_whole(chunk, first + 1, last, offset, lines, origin)
                self._line_start = offset + last + 1
            if last + 1 < size:
                self._hold(chunk, last + 1, size)
        self._next = offset + size
        return lines

    def _split_whole(
        self,
        chunk: bytes,
        start: int,
        stop: int,
        offset: int,
        lines: list[Event],
        origin: Origin,
    ) -> None:
        """Append the lines of ``chunk[start:stop]``, which ends just before a newline."""
        limit = self._max
        file_id, generation, path, name = origin
        pos = offset + start
        if stop - start <= limit and chunk.find(b"\r", start, stop) < 0:
            # The usual chunk: no line can be too long or end in \r, so the loop
            # below need not look at each line for either.
            for raw in chunk[start:stop].split(b"\n"):
                end = pos + len(raw) + 1
                if raw:
                    lines.append(Event(file_id, generation, path, pos, end, raw, name))
                pos = end
            return
        for raw in chunk[start:stop].split(b"\n"):
            end = pos + len(raw) + 1
            if raw:
                if raw[-1] == 13:  # one trailing \r, as written by Windows programs
                    raw = raw[:-1]
                if len(raw) > limit:
                    cut = raw[:limit]
                    lines.append(Event(file_id, generation, path, pos, end, cut, name, True))
                elif raw:
                    lines.append(Event(file_id, generation, path, pos, end, raw, name))
            pos = end

    def flush(self, origin: Origin) -> Event | None:
        """Emit the partial last line as if it ended here, for a file that is final.

        Only for a file nobody writes any more (rotated away or deleted and idle):
        otherwise the rest of the line may still come.
        """
        if self._next is None or self._line_start is None or self._next == self._line_start:
            return None
        line = self._make(bytes(self._buf), self._line_start, self._next, self._overflowed, origin)
        self.reset(self._next)
        return line

    def _hold(self, chunk: bytes, start: int, stop: int) -> None:
        """Buffer ``chunk[start:stop]`` of the partial line, within the memory bound."""
        room = self._max + 1 - len(self._buf)
        if stop - start > room:
            self._buf += chunk[start : start + room]
            self._overflowed = True
        else:
            self._buf += chunk[start:stop]

    def _complete(
        self, chunk: bytes, start: int, newline: int, end: int, origin: Origin
    ) -> Event | None:
        """Finish the current line with ``chunk[start:newline]``; ``end`` is past the newline."""
        assert self._line_start is not None
        line_start = self._line_start
        if not self._buf and not self._overflowed:
            # Fast path: the whole line is in this chunk, no copy into the buffer.
            raw = chunk[start:newline]
        else:
            self._hold(chunk, start, newline)
            raw = bytes(self._buf)
        overflowed = self._overflowed
        self._buf.clear()
        self._overflowed = False
        self._line_start = end
        if not overflowed and raw.endswith(b"\r"):
            raw = raw[:-1]
        return self._make(raw, line_start, end, overflowed, origin)

    def _make(
        self, raw: bytes, offset: int, end: int, overflowed: bool, origin: Origin
    ) -> Event | None:
        truncated = overflowed or len(raw) > self._max
        if truncated:
            raw = raw[: self._max]
        elif not raw:
            return None
        file_id, generation, path, name = origin
        return Event(file_id, generation, path, offset, end, raw, name, truncated)
