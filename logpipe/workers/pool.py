"""The main process's side of ``workers: N``: the worker processes and each input's stand-in.

See :mod:`logpipe.workers` for what runs where and what it costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import subprocess
import sys
from collections import deque
from datetime import UTC, datetime
from itertools import repeat
from operator import add, attrgetter
from typing import Any

from logpipe.event import EVENT_OVERHEAD, Event
from logpipe.process import LineProcessor
from logpipe.workers.wire import (
    HEADER,
    Columns,
    Encoded,
    Known,
    WorkerDied,
    WorkerSetup,
    widen,
)

log = logging.getLogger("logpipe.workers")

# Far above any answer (a chunk is at most a few MB of entries): a length beyond it
# means the stream is not ours.
_MAX_ANSWER = 1 << 30
_COLUMNS = tuple(
    map(attrgetter, ("file_id", "generation", "path", "offset", "end", "raw", "truncated"))
)


class EncodePool:
    """The worker processes (see :meth:`start`), and one :class:`RemoteProcessor` per input.

    The main process writes requests and reads answers on its event loop (no
    threads, which would contend for its GIL: a ``ProcessPoolExecutor``'s
    feeder and manager threads cost the main process 1.3 CPU-s more per
    million events, measured). A chunk goes to the worker with the fewest
    waiting, in turn.
    """

    def __init__(self, setup: WorkerSetup, processes: int) -> None:
        self._setup = pickle.dumps(setup)
        self._size = processes
        self._workers: list[_Worker] = []
        self._broken = False
        self._turns = itertools.count()

    def processor(self, input_name: str, local: LineProcessor) -> RemoteProcessor:
        """The per-line step of ``input_name`` through the workers (``local``: the fallback)."""
        return RemoteProcessor(self, input_name, local)

    @property
    def workers(self) -> list[_Worker]:
        """The running workers (none before :meth:`start`, or once given up)."""
        return list(self._workers)

    async def start(self) -> None:
        """Start the worker processes; if one cannot start, the main process does their work."""
        try:
            for _ in range(self._size):
                self._workers.append(await _Worker.start(self._setup))
        except OSError as exc:
            log.error("cannot start a worker process (%s); the per-line step runs here", exc)
            await self.close()

    async def run(self, input_name: str, columns: Columns, known: Known, now: datetime) -> Encoded:
        """Encode one chunk in a worker; raises :class:`WorkerDied` once the pool is gone."""
        workers = self._workers
        if self._broken or not workers:
            raise WorkerDied("the worker processes are gone")
        # The least busy; on a tie, the next in turn (one input alone uses them all).
        turn = next(self._turns) % len(workers)
        worker = min(workers[turn:] + workers[:turn], key=_waiting)
        return await worker.call(pickle.dumps((input_name, columns, known, now), 5))

    async def broken(self) -> None:
        """Give up on the workers (one died): everything is encoded in the main process now."""
        if not self._broken:
            log.error("a worker process died; the per-line step runs in the main process now")
            await self.close()

    async def close(self) -> None:
        """Stop the workers (what they still hold is not needed: nothing was queued from it).

        A chunk still waiting for its answer is encoded in the main process
        instead (without the "worker died" error: nobody died).
        """
        self._broken = True
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        for worker in workers:
            await worker.join()


def _waiting(worker: _Worker) -> int:
    return len(worker.answers.pending)


class _Answers(asyncio.SubprocessProtocol):
    """A worker's stdout: each answer resolves the oldest waiting call."""

    def __init__(self) -> None:
        self.pending: deque[asyncio.Future[Encoded]] = deque()
        self.exited = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER.size:
            size = HEADER.unpack_from(buffer)[0]
            if size > _MAX_ANSWER:
                return self._garbled(f"an answer of {size} bytes announced")
            end = HEADER.size + size
            if len(buffer) < end:
                return None
            try:
                with memoryview(buffer) as view, view[HEADER.size : end] as frame:
                    answer = pickle.loads(frame)
            except Exception as exc:  # anything but our pickle: the stream cannot be trusted
                return self._garbled(f"an answer that does not unpickle ({exc!r})")
            del buffer[:end]
            if not self.pending:
                continue  # the call was failed already (its worker was given up)
            future = self.pending.popleft()
            if not future.done():  # a cancelled call's answer is dropped
                future.set_result(answer)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:  # its stdout; stdin is closed by close(), and the answers still come
            self._fail()

    def process_exited(self) -> None:
        self._fail()
        if not self.exited.done():
            self.exited.set_result(None)

    def _garbled(self, what: str) -> None:
        """Something other than answers on its stdout: stop the worker (its calls fail)."""
        log.error("a worker process wrote %s; stopping it", what)
        self._buffer.clear()
        self._fail()
        if self._transport is not None:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()

    def _fail(self) -> None:
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(WorkerDied("a worker process exited"))


class _Worker:
    """One worker process (``python -m logpipe.workers.child``) and its two pipes."""

    def __init__(self, transport: asyncio.SubprocessTransport, answers: _Answers) -> None:
        self.transport = transport
        self.answers = answers
        requests = transport.get_pipe_transport(0)
        assert isinstance(requests, asyncio.WriteTransport)
        self._requests = requests

    @property
    def pid(self) -> int:
        return self.transport.get_pid()

    @classmethod
    async def start(cls, setup: bytes) -> _Worker:
        transport, answers = await asyncio.get_running_loop().subprocess_exec(
            _Answers,
            *(sys.executable, "-m", "logpipe.workers.child"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # its tracebacks, if any, go where logpipe's own stderr goes
        )
        for fd in (0, 1):
            pipe = transport.get_pipe_transport(fd)
            if pipe is not None:
                widen(pipe.get_extra_info("pipe"))
        worker = cls(transport, answers)
        worker._send(setup)
        return worker

    async def call(self, request: bytes) -> Encoded:
        if self._requests.is_closing() or self.answers.exited.done():
            raise WorkerDied("a worker process exited")
        future: asyncio.Future[Encoded] = asyncio.get_running_loop().create_future()
        self.answers.pending.append(future)
        self._send(request)
        return await future

    def _send(self, message: bytes) -> None:
        self._requests.write(HEADER.pack(len(message)))
        self._requests.write(message)

    def stop(self) -> None:
        """Close its stdin: the worker exits once it has answered what it read."""
        self._requests.close()

    async def join(self, timeout: float = 2.0) -> None:
        """Wait for the process to exit; kill it after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.answers.exited)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.transport.kill()
            await self.answers.exited
        self.transport.close()


class RemoteProcessor:
    """One input's per-line step, run by the pool; same results as :class:`LineProcessor`.

    ``local`` is the input's own per-line step: it answers what each chunk's
    file generations need (:meth:`LineProcessor.known`), takes back the last
    event times the worker reached (:meth:`LineProcessor.carry`), and so is
    ready to carry on where the workers stopped if they die.
    """

    def __init__(self, pool: EncodePool, input_name: str, local: LineProcessor) -> None:
        self._pool = pool
        self._name = input_name
        self._local = local
        self._remote = True

    async def process(self, lines: deque[Event], now: datetime | None = None) -> list[Event]:
        """Encode the events ``lines`` in place (in a worker) and return them, in order."""
        now = now or datetime.now(UTC)
        if self._remote:
            columns = _columns(lines)
            known = {
                key: self._local.known(*key)
                for key in set(zip(columns[0], columns[1], strict=True))
            }
            try:
                encoded = await self._pool.run(self._name, columns, known, now)
            except WorkerDied:
                await self._pool.broken()
                self._remote = False
            else:
                entries, times, alerts, last = encoded
                _set(lines, "entry", entries)
                _set(lines, "event_time", times)
                _set(lines, "alert", alerts)
                _set(lines, "size", map(add, map(len, entries), repeat(EVENT_OVERHEAD)))
                self._local.carry(last)
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
