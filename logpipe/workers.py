"""The per-line step in worker processes (``workers: N``): parse and encode on other cores.

logpipe's main process is one thread of Python for most of its work, so a
backlog is shipped at the speed of one core. With ``workers`` set, the
per-line step (:class:`~logpipe.process.LineProcessor`, about 60 % of the CPU
an event costs) runs in that many worker processes, and the main process keeps
reading, splitting, queueing, sending and acknowledging::

    Tailer --read chunk--> RemoteProcessor --columns--> worker: LineProcessor.process
                                           <--entries-- (one chunk per call)
           <--the same Events, encoded--

What stays exactly as it is:

- **Order and acknowledgement.** The events are the main process's own
  objects; a worker only sends back, per line, its bulk item, time and alert
  fields, which are set on them. Each input still hands over one chunk at a
  time and waits for it (as it waits for the queue), so its events reach the
  queue in file order and checkpoints advance as before.
- **What is indexed.** The worker runs the same ``LineProcessor`` on the same
  lines; ids, index names and documents are byte for byte those of the main
  process (a test compares them).
- **State.** Workers keep none between calls: which file generations keep the
  older ids and the time an undated line inherits (the last event time of its
  file, or its checkpoint's) go with each chunk, and the new last times come
  back. Any worker can take any chunk.

If a worker dies (killed, out of memory), the pool is broken for good: the
chunk it had, and every later one, is encoded in the main process instead,
with an error logged once. Nothing is lost: a chunk's events are only queued
once encoded.

Costs: each worker is an interpreter of its own (~35 MiB resident), started
with ``spawn`` (not ``fork``: the main process has threads by then), and the
columns and entries cross a pipe (pickled). So the CPU per event goes up;
workers pay for throughput (a backfill, a catch-up), not for a quiet sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from operator import add, attrgetter
from typing import Any

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import EVENT_OVERHEAD, Event
from logpipe.process import LineProcessor, ResumeTime
from logpipe.sinks.elasticsearch.encode import IndexNamer

log = logging.getLogger("logpipe.workers")

FileKey = tuple[str, int]
# What a worker needs to know of each file generation in a chunk: the time its
# next undated line inherits, and whether it keeps the older document ids.
Known = dict[FileKey, tuple[datetime | None, bool]]
# A chunk's lines as columns (one list per attribute; pickled in C, no tuple per line).
Columns = tuple[list[str], list[int], list[str], list[int], list[int], list[bytes], list[bool]]
# Per line: the bulk item, the event time, the alert fields; then the new last times.
Encoded = tuple[
    list[bytes], list[float | None], list[dict[str, Any] | None], dict[FileKey, datetime]
]

_COLUMNS = tuple(
    map(attrgetter, ("file_id", "generation", "path", "offset", "end", "raw", "truncated"))
)
_ENTRY, _EVENT_TIME, _ALERT = attrgetter("entry"), attrgetter("event_time"), attrgetter("alert")
# Each message on a pipe: its length, then the pickle.
_HEADER = struct.Struct("!Q")
# A chunk's request is ~0.3 MB and its answer ~0.9 MB: a pipe of 1 MiB (the
# default limit for a process to ask) instead of 64 KiB takes either in a few writes.
_PIPE_SIZE = 1 << 20


class WorkerDied(Exception):
    """A worker process exited or closed its pipe: the pool is given up."""


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """Everything a worker needs to build the per-line step of every input (picklable)."""

    inputs: dict[str, InputConfig]
    fields: dict[str, Any]
    index_prefix: str
    index_timezone: str
    alert_levels: frozenset[str]


class EncodePool:
    """The worker processes (started on first use), and one :class:`RemoteProcessor` per input.

    Each worker is a process of its own with two pipes, requests in and answers
    out, each message a length and a pickle, answered in order. The main
    process writes and reads them on its event loop (no threads, which would
    contend for its GIL); a chunk goes to the worker with the fewest waiting, in turn.
    """

    def __init__(self, setup: WorkerSetup, processes: int) -> None:
        self._setup = setup
        self._size = processes
        self._workers: list[_Worker] | None = None
        self._starting: asyncio.Task[list[_Worker]] | None = None
        self._broken = False
        self._turns = itertools.count()

    def processor(
        self,
        input_name: str,
        local: LineProcessor,
        resume_time: ResumeTime,
        legacy_ids: Callable[[str, int], bool],
    ) -> RemoteProcessor:
        """The per-line step of ``input_name`` through the workers (``local``: the fallback)."""
        return RemoteProcessor(self, input_name, local, resume_time, legacy_ids)

    async def run(self, input_name: str, columns: Columns, known: Known, now: datetime) -> Encoded:
        """Encode one chunk in a worker; raises :class:`WorkerDied` once the pool is gone."""
        if self._broken:
            raise WorkerDied("the worker processes are gone")
        workers = self._workers
        if workers is None:
            if self._starting is None:
                self._starting = asyncio.ensure_future(self._start())
            workers = self._workers = await asyncio.shield(self._starting)
        # The least busy; on a tie, the next in turn (one input alone uses them all).
        turn = next(self._turns) % len(workers)
        worker = min(workers[turn:] + workers[:turn], key=_waiting)
        return await worker.call(pickle.dumps((input_name, columns, known, now), 5))

    async def _start(self) -> list[_Worker]:
        context = multiprocessing.get_context("spawn")
        return [await _Worker.start(context, self._setup, n) for n in range(self._size)]

    async def broken(self) -> None:
        """Give up on the workers (one died): everything is encoded in the main process now."""
        if not self._broken:
            self._broken = True
            log.error("a worker process died; the per-line step runs in the main process now")
            await self.close()

    async def close(self) -> None:
        """Stop the workers (what they still hold is not needed: nothing was queued from it)."""
        workers, self._workers = self._workers or [], None
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        for worker in workers:
            worker.stop()
        for worker in workers:
            await worker.join()


def _take_fd(connection: Connection) -> int:
    """The pipe of ``connection`` as a plain descriptor (the Connection closed)."""
    fd = os.dup(connection.fileno())
    connection.close()
    return fd


def _waiting(worker: _Worker) -> int:
    return len(worker.answers.pending)


class _Answers(asyncio.Protocol):
    """Reads a worker's answers and resolves the oldest waiting call with each."""

    def __init__(self) -> None:
        self.pending: deque[asyncio.Future[Encoded]] = deque()
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _HEADER.size:
            end = _HEADER.size + _HEADER.unpack_from(buffer)[0]
            if len(buffer) < end:
                return
            view = memoryview(buffer)
            frame = view[_HEADER.size : end]
            answer = pickle.loads(frame)
            frame.release()
            view.release()
            del buffer[:end]
            future = self.pending.popleft()
            if not future.done():  # a cancelled call's answer is dropped
                future.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(WorkerDied("a worker process closed its pipe"))


class _Worker:
    """One worker process and the main process's ends of its two pipes."""

    def __init__(
        self,
        process: BaseProcess,
        requests: asyncio.WriteTransport,
        answers_transport: asyncio.ReadTransport,
        answers: _Answers,
    ) -> None:
        self.process = process
        self.requests = requests
        self.answers_transport = answers_transport
        self.answers = answers

    @classmethod
    async def start(cls, context: Any, setup: WorkerSetup, number: int) -> _Worker:
        request_read, request_write = context.Pipe(duplex=False)
        answer_read, answer_write = context.Pipe(duplex=False)
        for end in (request_write, answer_read):
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(end.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        process = context.Process(
            target=_serve,
            args=(request_read, answer_write, setup),
            name=f"logpipe-worker-{number}",
            daemon=True,
        )
        process.start()
        # The child has its own copies now; ours would keep its pipes open after it died.
        request_read.close()
        answer_write.close()
        loop = asyncio.get_running_loop()
        answers = _Answers()
        answers_transport, _ = await loop.connect_read_pipe(
            lambda: answers, os.fdopen(_take_fd(answer_read), "rb", buffering=0)
        )
        requests, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(_take_fd(request_write), "wb", buffering=0)
        )
        return cls(process, requests, answers_transport, answers)

    async def call(self, request: bytes) -> Encoded:
        if self.requests.is_closing():
            raise WorkerDied("a worker process closed its pipe")
        future: asyncio.Future[Encoded] = asyncio.get_running_loop().create_future()
        self.answers.pending.append(future)
        self.requests.write(_HEADER.pack(len(request)))
        self.requests.write(request)
        return await future

    def stop(self) -> None:
        """Close its requests pipe: the worker exits once it has read to the end."""
        self.requests.close()

    async def join(self, timeout: float = 2.0) -> None:
        """Wait for the process to exit (on the loop: closing the pipe is a loop callback)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while self.process.is_alive() and loop.time() < give_up:
            await asyncio.sleep(0.005)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.answers_transport.close()


class RemoteProcessor:
    """One input's per-line step, run by the pool; same results as :class:`LineProcessor`.

    ``resume_time`` and ``legacy_ids`` are the main process's (the checkpoint
    store's) answers, asked once per file generation per chunk; the last event
    time per file generation is kept here, between chunks.
    """

    _MAX_FILES = 10_000

    def __init__(
        self,
        pool: EncodePool,
        input_name: str,
        local: LineProcessor,
        resume_time: ResumeTime,
        legacy_ids: Callable[[str, int], bool],
    ) -> None:
        self._pool = pool
        self._name = input_name
        self._local = local
        self._resume_time = resume_time
        self._legacy_ids = legacy_ids
        self._last: dict[FileKey, datetime] = {}
        self._remote = True

    async def process(self, lines: deque[Event], now: datetime | None = None) -> list[Event]:
        """Encode the events ``lines`` in place (in a worker) and return them, in order."""
        now = now or datetime.now(UTC)
        if self._remote:
            columns = _columns(lines)
            known = {
                key: (self._last.get(key) or self._resume_time(*key), self._legacy_ids(*key))
                for key in set(zip(columns[0], columns[1], strict=True))
            }
            try:
                encoded = await self._pool.run(self._name, columns, known, now)
            except WorkerDied:
                await self._pool.broken()
                self._remote = False
                self._local.last_times.update(self._last)
            else:
                entries, times, alerts, last = encoded
                _set(lines, "entry", entries)
                _set(lines, "event_time", times)
                _set(lines, "alert", alerts)
                _set(lines, "size", map(add, map(len, entries), repeat(EVENT_OVERHEAD)))
                if len(self._last) + len(last) > self._MAX_FILES:
                    self._last.clear()
                self._last.update(last)
                return list(lines)
        return self._local.process(lines, now)


def _columns(lines: deque[Event]) -> Columns:
    """The lines as seven lists (seven C loops: no tuple per line, as rows would need)."""
    file_ids, generations, paths, offsets, ends, raws, truncated = (
        list(map(getter, lines)) for getter in _COLUMNS
    )
    return file_ids, generations, paths, offsets, ends, raws, truncated


def _set(events: deque[Event], name: str, values: Any) -> None:
    """``setattr(event, name, value)`` for each pair, as a C loop."""
    deque(map(setattr, events, repeat(name), values), maxlen=0)


# -- in the worker process -------------------------------------------------------------

_processors: dict[str, LineProcessor] = {}
_known: Known = {}


def _serve(requests: Connection, answers: Connection, setup: WorkerSetup) -> None:
    """A worker's life: build the per-line steps, then answer chunks until the pipe ends."""
    # The main process decides when workers stop (a Ctrl-C reaches the whole
    # process group; a worker must not die of it mid-chunk and break the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _start_worker(setup)
    reader = os.fdopen(_take_fd(requests), "rb", buffering=0)
    writer = os.fdopen(_take_fd(answers), "wb", buffering=0)
    while (request := _read_message(reader)) is not None:
        answer = pickle.dumps(_encode(*pickle.loads(request)), 5)
        writer.write(_HEADER.pack(len(answer)))
        with memoryview(answer) as view:
            written = 0
            while written < len(answer):
                written += writer.write(view[written:]) or 0


def _read_message(reader: Any) -> bytearray | None:
    header = _read_exactly(reader, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(reader, _HEADER.unpack(header)[0])


def _read_exactly(reader: Any, size: int) -> bytearray | None:
    buffer = bytearray(size)
    got = 0
    with memoryview(buffer) as view:
        while got < size:
            count = reader.readinto(view[got:])
            if not count:
                return None
            got += count
    return buffer


def _start_worker(setup: WorkerSetup) -> None:
    """Build every input's per-line step, once per worker process."""
    enricher = Enricher(setup.fields)
    namer = IndexNamer(setup.index_prefix, setup.index_timezone)
    for name, config in setup.inputs.items():
        _processors[name] = LineProcessor(
            config, enricher, namer, _known_time, setup.alert_levels, _known_legacy
        )


def _known_time(file_id: str, generation: int) -> datetime | None:
    return _known[file_id, generation][0]


def _known_legacy(file_id: str, generation: int) -> bool:
    return _known[file_id, generation][1]


def _encode(input_name: str, columns: Columns, known: Known, now: datetime) -> Encoded:
    _known.clear()
    _known.update(known)
    processor = _processors[input_name]
    processor.last_times.clear()  # the main process's known times are the truth
    file_ids, generations, paths, offsets, ends, raws, truncated = columns
    lines = list(
        map(Event, file_ids, generations, paths, offsets, ends, raws, repeat(input_name), truncated)
    )
    events = processor.process(lines, now)
    return (
        list(map(_ENTRY, events)),
        list(map(_EVENT_TIME, events)),
        list(map(_ALERT, events)),
        dict(processor.last_times),
    )
