"""One worker process: ``python -m logpipe.workers.child`` (see :class:`EncodePool`).

It reads its :class:`~logpipe.workers.wire.WorkerSetup` from stdin, builds
every input's :class:`~logpipe.process.LineProcessor`, then answers each
request on stdin with the chunk's entries on stdout, until stdin ends (the
main process closed it, or died).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from datetime import datetime
from itertools import repeat
from operator import attrgetter

from logpipe.enrich.static import Enricher
from logpipe.event import Event
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import IndexNamer
from logpipe.workers.wire import (
    Columns,
    Encoded,
    Known,
    WorkerSetup,
    read_message,
    write_message,
)

_ENTRY, _EVENT_TIME, _ALERT = attrgetter("entry"), attrgetter("event_time"), attrgetter("alert")


class Worker:
    """The per-line steps of one pipeline's inputs, fed one chunk at a time."""

    def __init__(self, setup: WorkerSetup) -> None:
        enricher = Enricher(setup.fields)
        namer = IndexNamer(setup.index_prefix, setup.index_timezone)
        self._known: Known = {}
        self._processors = {
            name: LineProcessor(
                config, enricher, namer, self._known_time, setup.alert_levels, self._known_legacy
            )
            for name, config in setup.inputs.items()
        }

    def encode(self, input_name: str, columns: Columns, known: Known, now: datetime) -> Encoded:
        """One chunk: the same Events made again here, encoded, and what the main process sets."""
        self._known.clear()
        self._known.update(known)
        processor = self._processors[input_name]
        processor.last_times.clear()  # the main process's known times are the truth
        file_ids, generations, paths, offsets, ends, raws, truncated = columns
        lines = list(
            map(
                Event,
                *(file_ids, generations, paths, offsets, ends, raws),
                repeat(input_name),
                truncated,
            )
        )
        events = processor.process(lines, now)
        return (
            list(map(_ENTRY, events)),
            list(map(_EVENT_TIME, events)),
            list(map(_ALERT, events)),
            dict(processor.last_times),
        )

    def _known_time(self, file_id: str, generation: int) -> datetime | None:
        return self._known[file_id, generation][0]

    def _known_legacy(self, file_id: str, generation: int) -> bool:
        return self._known[file_id, generation][1]


def main() -> None:
    """Serve requests on stdin until it ends."""
    # The main process decides when workers stop (a Ctrl-C reaches the whole
    # process group; a worker must not die of it mid-chunk).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # stdout carries the answers and nothing else: whatever might print goes to stderr.
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    setup = read_message(requests)
    if setup is None:
        return
    worker = Worker(pickle.loads(setup))
    while (request := read_message(requests)) is not None:
        write_message(answers, pickle.dumps(worker.encode(*pickle.loads(request)), 5))


if __name__ == "__main__":
    main()
