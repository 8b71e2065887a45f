"""Wires sources → process → the bounded queue → the Elasticsearch sink (→ alerts).

Data flow and who waits for whom::

    Tailer (one per input) --Events--> LineProcessor (encodes) --Events--> EventQueue (budget)
        (logpipe.handover; with ``workers``, the LineProcessor runs in a worker process)
        --batch--> ElasticsearchSink.send (retries until settled)
        --settled--> CheckpointStore.advance + save soon (offsets only move on ack)
        --created--> AlertService.offer                   (never waits)

The queue's budget is the only buffer; when it is spent the tailers wait, so a
slow or absent Elasticsearch is absorbed by the files on disk, not by memory. A
line's offset is checkpointed only after its document is settled (created, 409
duplicate, or dead-lettered), and saved at most half a second later, so a
crash at any moment re-reads at most the unsettled lines and those settled in
that last half second — and their deterministic ids make the re-read harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING

from logpipe.alerts.build import make_alert_service
from logpipe.checkpoints.saver import CheckpointSaver
from logpipe.checkpoints.store import CheckpointStore
from logpipe.config import InputConfig, PipelineConfig
from logpipe.enrich.static import Enricher, static_fields
from logpipe.errors import DeliveryError, FatalSinkError, SinkError
from logpipe.event import Event
from logpipe.handover import Encode, emitter, inline
from logpipe.process import LineProcessor
from logpipe.queue import BatchSizer, EventQueue
from logpipe.sinks.deadletter import DeadLetterFile
from logpipe.sinks.elasticsearch.encode import IndexNamer
from logpipe.sinks.elasticsearch.retention import RetentionKeeper
from logpipe.sinks.elasticsearch.sink import ElasticsearchSink
from logpipe.sources.recover import prune_checkpoints
from logpipe.sources.tail import Tailer
from logpipe.stats import InputStats
from logpipe.tasks import cancel, first_failure, stop_readers, until_stopped

if TYPE_CHECKING:
    from logpipe.alerts.service import AlertService
    from logpipe.workers import EncodePool

log = logging.getLogger("logpipe.pipeline")

_PRUNE_EVERY = 3600.0
_WATCH_EVERY = 5.0
# A file generation's key, per event (for the checkpoints a settled batch advances).
_FILE_GENERATION = attrgetter("file_id", "generation")


@dataclass(slots=True)
class RunReport:
    """What a run did; ``problems`` is empty when everything was delivered.

    ``fatal`` means the run stopped because the sink refused for good
    (credentials, permissions), as opposed to events left for a later run.
    """

    read: int
    created: int
    duplicates: int
    dead_lettered: int
    alerts_sent: int
    alerts_failed: int
    alerts_dropped: int
    problems: list[str]
    fatal: bool = False


class Pipeline:
    """One pipeline file, running."""

    def __init__(self, config: PipelineConfig, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.config = config
        data_dir = config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints = CheckpointStore(data_dir / "checkpoints.json")
        self._saver = CheckpointSaver(self.checkpoints)
        self.dead_letters = DeadLetterFile(data_dir / "dead_letters.ndjson")
        self.queue = EventQueue(config.queue.max_events, config.queue.max_bytes)
        fields = static_fields(config.enrich, env)
        email = config.alerts.email
        self.alerts: AlertService | None = (
            make_alert_service(email, data_dir, fields) if email else None
        )
        self.sink = ElasticsearchSink(
            config.output.elasticsearch, self.dead_letters, on_created=self._alert
        )
        es = config.output.elasticsearch
        self.retention = (
            RetentionKeeper(self.sink.client, es) if es.retention.days is not None else None
        )
        enricher = Enricher(fields)
        namer = IndexNamer(es.index_prefix, es.index_timezone)
        alert_levels = self.alerts.levels if self.alerts is not None else frozenset()
        self.input_stats: dict[str, InputStats] = {}
        self.file_errors: Counter[str] = Counter()  # by input
        self._patterns = [p for input_config in config.inputs.values() for p in input_config.paths]
        prune_checkpoints(self.checkpoints, self._patterns)
        self.pool: EncodePool | None = None
        if config.workers:
            # Imported only when asked for: a sidecar without workers does not pay for it.
            from logpipe.workers import EncodePool, WorkerSetup

            setup = WorkerSetup(
                dict(config.inputs), fields, es.index_prefix, es.index_timezone, alert_levels
            )
            self.pool = EncodePool(setup, config.workers)

        def encoder(name: str, input_config: InputConfig) -> Encode:
            local = LineProcessor(
                input_config,
                enricher,
                namer,
                self._resume_time,
                alert_levels,
                self.checkpoints.uses_legacy_ids,
            )
            if self.pool is None:
                return inline(local)
            return self.pool.processor(name, local).process

        self.tailers = [
            Tailer(
                name,
                input_config.paths,
                self.checkpoints,
                emitter(
                    encoder(name, input_config),
                    self.queue,
                    self.input_stats.setdefault(name, InputStats()),
                    self._taken,
                ),
                max_line_bytes=input_config.max_line_bytes,
                poll_interval=input_config.poll_interval_seconds,
                partial_line_timeout=input_config.partial_line_timeout_seconds,
                ack_hold=input_config.rotated_hold_seconds,
                on_file_error=functools.partial(self._file_error, name),
            )
            for name, input_config in config.inputs.items()
        ]
        self._outstanding = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._reported_dead = 0
        self._outage_alerted = False
        self.read = 0

    # -- per line / per batch ------------------------------------------------------

    def _taken(self, count: int) -> None:
        """``count`` lines were queued: outstanding until acknowledged."""
        self.read += count
        self._outstanding += count
        self._settled.clear()

    def _resume_time(self, file_id: str, generation: int) -> datetime | None:
        """The time of the last acknowledged event of a file (for undated lines)."""
        checkpoint = self.checkpoints.get(file_id)
        if checkpoint is None or checkpoint.generation != generation:
            return None
        if checkpoint.event_time is None:
            return None
        return datetime.fromtimestamp(checkpoint.event_time, UTC)

    def _alert(self, events: list[Event]) -> None:
        # Alerts go out for events Elasticsearch newly created (or refused), never for
        # 409 duplicates: a line re-read after a restart does not e-mail ops twice.
        if self.alerts is not None:
            for event in events:
                if event.alert is not None:
                    self.alerts.offer(event.alert)

    async def _ship(self) -> None:
        """The sender loop: batch, deliver, then acknowledge.

        One request at a time, inline: the next batch is taken the moment the
        last one is released, before the readers it wakes refill the budget, so
        they have room to keep reading while it is sent. (Two requests in flight
        were tried: no faster into noida-db, and every extra task hop let a
        reader's whole chunk run first — bench/RESULTS.md.)
        """
        batch_config = self.config.output.elasticsearch.batch
        sizer = BatchSizer(
            batch_config.max_events,
            batch_config.max_bytes,
            batch_config.backlog_max_events,
            budget_events=self.config.queue.max_events,
            budget_bytes=self.config.queue.max_bytes,
        )
        while True:
            batch = await self.queue.get_batch(
                sizer.max_events, sizer.max_bytes, batch_config.max_age_seconds
            )
            sizer.observe(len(batch), len(self.queue))
            await self.sink.send(batch)
            await self._acknowledge(batch)

    async def _acknowledge(self, batch: list[Event]) -> None:
        """Advance the checkpoints past a settled batch and give back its budget."""
        # A file's lines are in order within a batch: its last one is its checkpoint.
        last = dict(zip(map(_FILE_GENERATION, batch), batch, strict=True))
        for event in last.values():
            self.checkpoints.advance(
                event.file_id, event.path, event.generation, event.end, event.event_time
            )
        self._saver.soon()
        await self.queue.release(batch)
        self._outstanding -= len(batch)
        if self._outstanding == 0:
            self._settled.set()
        self._alert_dead_letters()

    # -- self-alerts ---------------------------------------------------------------

    def _alert_dead_letters(self) -> None:
        dead = self.sink.stats.dead_lettered
        if self.alerts is not None and dead > self._reported_dead:
            self.alerts.self_alert(
                "documents_dead_lettered",
                f"{dead - self._reported_dead} documents were dead-lettered",
                {"file": str(self.dead_letters.path), "total": dead},
            )
        self._reported_dead = dead

    def _file_error(self, input_name: str, path: str, reason: str) -> None:
        self.file_errors[input_name] += 1
        if self.alerts is not None:
            self.alerts.self_alert("file_unreadable", f"cannot read {path}", {"error": reason})

    def _watch_outage(self) -> None:
        email = self.config.alerts.email
        if self.alerts is None or email is None or not email.self_alerts.enabled:
            return
        down_for = self.sink.unreachable_for()
        if down_for is None:
            self._outage_alerted = False
            return
        threshold = email.self_alerts.elasticsearch_unreachable_seconds
        if down_for >= threshold and not self._outage_alerted:
            self._outage_alerted = True
            self.alerts.self_alert(
                "elasticsearch_unreachable",
                f"Elasticsearch unreachable for {int(down_for)} s",
                {
                    "hosts": ", ".join(self.config.output.elasticsearch.hosts),
                    "error": self.sink.last_error or "",
                },
            )

    async def _maintain(self) -> None:
        """Watch for outages; hourly, forget the checkpoints of files long gone."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + _PRUNE_EVERY
        while True:
            await asyncio.sleep(_WATCH_EVERY)
            self._watch_outage()
            if loop.time() >= next_prune:
                next_prune = loop.time() + _PRUNE_EVERY
                if prune_checkpoints(self.checkpoints, self._patterns):
                    self._saver.now()

    # -- running -------------------------------------------------------------------

    async def run_once(self, timeout: float | None = None) -> RunReport:
        """Read every input to its current end, deliver everything, then stop."""
        loop = asyncio.get_running_loop()
        if timeout is not None:
            self.sink.give_up_at = loop.time() + timeout
        problems: list[str] = []
        fatal = False
        background = self._start_background()
        shipper: asyncio.Task[None] | None = None
        try:
            await self.sink.start()
            if self.pool is not None:
                await self.pool.start()
            shipper = asyncio.create_task(self._ship())
            readers = [asyncio.create_task(t.read_available()) for t in self.tailers]
            await first_failure([*readers, shipper], asyncio.gather(*readers))
            await first_failure([shipper], self._settled.wait())
            if self.alerts is not None:
                await self.alerts.drain(timeout)
        except (DeliveryError, SinkError) as exc:
            problems.append(str(exc))
            fatal = isinstance(exc, FatalSinkError)
        finally:
            await self._shutdown(shipper, background)
        return self._report(problems, fatal=fatal)

    async def run_forever(self, stop: asyncio.Event, drain_timeout: float = 8.0) -> RunReport:
        """Follow the inputs until ``stop`` is set, then drain what is in flight."""
        background = self._start_background()
        shipper: asyncio.Task[None] | None = None
        problems: list[str] = []
        fatal = False
        try:
            await until_stopped(self.sink.start(), stop)
            if self.retention is not None:
                # After start: the first check then finds the server up (not an hour later).
                background.append(asyncio.create_task(self.retention.run()))
            if self.pool is not None:
                await self.pool.start()
            shipper = asyncio.create_task(self._ship())
            readers = [asyncio.create_task(t.run(stop)) for t in self.tailers]
            await first_failure([*readers, shipper], stop_readers(readers, stop))
            # Stopping: give in-flight batches a bounded time to settle — none while
            # Elasticsearch is failing, it would only burn the grace period. What does
            # not settle is not checkpointed and is re-read on the next start.
            if self.sink.unreachable_for() is not None:
                drain_timeout = min(drain_timeout, 1.0)
            with contextlib.suppress(TimeoutError):
                await first_failure([shipper], self._settle_within(drain_timeout))
            if self.alerts is not None:
                # What is not sent now stays in the spool for the next start.
                with contextlib.suppress(DeliveryError):
                    await self.alerts.drain(2.0, flush=False)
        except asyncio.CancelledError:
            pass
        except FatalSinkError as exc:
            # Credentials refused and the like: exit non-zero so the orchestrator
            # shows it; nothing unacknowledged was checkpointed, so nothing is lost.
            problems.append(str(exc))
            fatal = True
        finally:
            await self._shutdown(shipper, background)
        if self._outstanding:
            problems.append(
                f"{self._outstanding} events were not acknowledged before exit; "
                "they will be re-read on the next start"
            )
        return self._report(problems, fatal=fatal)

    async def _settle_within(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for, which can swallow a cancellation on 3.11.
        async with asyncio.timeout(seconds):
            await self._settled.wait()

    def _start_background(self) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(self._maintain())]
        if self.alerts is not None:
            tasks.append(asyncio.create_task(self.alerts.run()))
        return tasks

    async def _shutdown(
        self, shipper: asyncio.Task[None] | None, background: list[asyncio.Task[None]]
    ) -> None:
        await cancel(shipper, *background)
        if self.pool is not None:
            await self.pool.close()
        if self.alerts is not None:
            await self.alerts.close()
        for tailer in self.tailers:
            tailer.close()
        self._saver.now()
        await self.sink.close()

    def interrupted_report(self) -> RunReport:
        """The report of a --once run stopped by a signal before it finished."""
        return self._report(
            [
                f"interrupted with {self._outstanding} events not yet acknowledged; "
                "they will be read again on the next run"
            ],
            fatal=False,
        )

    def _report(self, problems: list[str], *, fatal: bool) -> RunReport:
        stats = self.sink.stats
        if stats.dead_lettered:
            problems.append(
                f"{stats.dead_lettered} documents were rejected by Elasticsearch "
                f"and dead-lettered to {self.dead_letters.path}"
            )
        sent = failed = dropped = 0
        if self.alerts is not None:
            alert_stats = self.alerts.stats
            sent, failed, dropped = alert_stats.sent, alert_stats.failed, alert_stats.dropped
            if failed or dropped:
                problems.append(f"{failed} alert e-mails failed and {dropped} were dropped")
            if self.alerts.spooled:
                problems.append(
                    f"{self.alerts.spooled} alert e-mails are still spooled; "
                    "they are sent on the next start"
                )
        return RunReport(
            read=self.read,
            created=stats.created,
            duplicates=stats.duplicates,
            dead_lettered=stats.dead_lettered,
            alerts_sent=sent,
            alerts_failed=failed,
            alerts_dropped=dropped,
            problems=problems,
            fatal=fatal,
        )
