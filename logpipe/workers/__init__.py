"""The per-line step in worker processes (``workers: N``): parse and encode on other cores.

logpipe's main process is one thread of Python for most of its work, so a
backlog is shipped at the speed of one core. With ``workers`` set, the
per-line step (:class:`~logpipe.process.LineProcessor`, about 60 % of the CPU
an event costs) runs in that many worker processes, and the main process keeps
reading, splitting, queueing, sending and acknowledging::

    Tailer --read chunk--> RemoteProcessor --columns--> worker: LineProcessor.process
                                           <--entries-- (one chunk per call)
           <--the same Events, encoded--   (logpipe.handover then queues them)

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

If a worker dies (killed, out of memory) or cannot start, the pool is given
up for good: the chunk it had, and every later one, is encoded in the main
process instead, with an error logged once. Nothing is lost: a chunk's
events are only queued once encoded.

Each worker is ``python -m logpipe.workers.child``, a plain child process
(not ``multiprocessing``: no resource-tracker process, and nothing re-imports
the caller's ``__main__``), its stdin the requests and its stdout the answers,
each message a length and a pickle (:mod:`logpipe.workers.wire`).

Costs, measured (bench/RESULTS.md): each worker is an interpreter of its own,
~42 MiB resident, and the columns (~0.26 KB a line) and entries (~0.87 KB)
cross a pipe, pickled, and every line is an object in both processes: about
1.4x the CPU per event of the main process alone. On the 2-core machine the
benchmarks run on, that leaves no gain (the server's stand-in takes a quarter
of a core, and the two processes the rest); it is for hosts with cores to
spare (a backfill, a catch-up), not for a quiet sidecar.
"""

from logpipe.workers.pool import EncodePool, RemoteProcessor
from logpipe.workers.wire import WorkerDied, WorkerSetup

__all__ = ["EncodePool", "RemoteProcessor", "WorkerDied", "WorkerSetup"]
