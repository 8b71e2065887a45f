"""Wires sources → process → the bounded queue → the Elasticsearch sink (→ alerts).

Data flow and who waits for whom::

    Tailer (one per input) --Line--> LineProcessor --Event--> EventQueue (budget)
        --batch--> ElasticsearchSink.send (retries until settled)
        --settled--> CheckpointStore.advance + save      (offsets only move on ack)
        --created--> AlertRule -> EmailAlerter.offer      (never waits)

The queue is the only buffer; when it is full the tailers wait, so a slow or
absent Elasticsearch is absorbed by the files on disk, not by memory. A line's
offset is checkpointed only after its document is settled (created, 409
duplicate, or dead-lettered), so a crash at any moment re-reads at most the
unsettled lines — and their deterministic ids make the re-read harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from logpipe.alerts.rules import AlertRule
from logpipe.alerts.smtp import EmailAlerter, SmtpSettings
from logpipe.checkpoints.store import CheckpointStore, CheckpointWriteError
from logpipe.config import EmailAlertConfig, PipelineConfig
from logpipe.enrich.static import Enricher, static_fields
from logpipe.errors import DeliveryError, FatalSinkError, SinkError
from logpipe.event import Event, Line
from logpipe.process import LineProcessor
from logpipe.queue import EventQueue
from logpipe.sinks.deadletter import DeadLetterFile
from logpipe.sinks.elasticsearch.sink import ElasticsearchSink
from logpipe.sources.recover import prune_checkpoints
from logpipe.sources.tail import Tailer

log = logging.getLogger("logpipe.pipeline")


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


def make_alerter(config: EmailAlertConfig) -> EmailAlerter:
    smtp = config.smtp
    settings = SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        starttls=smtp.starttls,
        use_tls=smtp.tls,
        timeout=smtp.timeout_seconds,
        validate_certs=smtp.verify_certs,
        cafile=smtp.ca_cert,
    )
    return EmailAlerter(
        settings,
        sender=config.sender,
        to=list(config.to),
        subject_template=config.subject,
        queue_size=config.queue_size,
    )


class Pipeline:
    """One pipeline file, running."""

    def __init__(self, config: PipelineConfig, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.config = config
        data_dir = config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints = CheckpointStore(data_dir / "checkpoints.json")
        self.dead_letters = DeadLetterFile(data_dir / "dead_letters.ndjson")
        self.queue = EventQueue(config.queue.max_events, config.queue.max_bytes)
        email = config.alerts.email
        self.alerter = make_alerter(email) if email else None
        self._rule = AlertRule(frozenset(lv.lower() for lv in email.levels)) if email else None
        self.sink = ElasticsearchSink(
            config.output.elasticsearch, self.dead_letters, on_created=self._alert
        )
        enricher = Enricher(static_fields(config.enrich, env))
        self._patterns = [p for input_config in config.inputs.values() for p in input_config.paths]
        prune_checkpoints(self.checkpoints, self._patterns)
        self.tailers: list[Tailer] = []
        for name, input_config in config.inputs.items():
            processor = LineProcessor(input_config, enricher, self._resume_time)
            self.tailers.append(
                Tailer(
                    name,
                    input_config.paths,
                    self.checkpoints,
                    self._emitter(processor),
                    max_line_bytes=input_config.max_line_bytes,
                    poll_interval=input_config.poll_interval_seconds,
                    partial_line_timeout=input_config.partial_line_timeout_seconds,
                    ack_hold=input_config.rotated_hold_seconds,
                )
            )
        self._outstanding = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self.read = 0

    def _resume_time(self, file_id: str, generation: int) -> datetime | None:
        """The time of the last acknowledged event of a file (for undated lines)."""
        checkpoint = self.checkpoints.get(file_id)
        if checkpoint is None or checkpoint.generation != generation:
            return None
        if checkpoint.event_time is None:
            return None
        return datetime.fromtimestamp(checkpoint.event_time, UTC)

    async def _maintain(self) -> None:
        """Hourly: forget the checkpoints of files long gone (they accumulate otherwise)."""
        while True:
            await asyncio.sleep(3600)
            if prune_checkpoints(self.checkpoints, self._patterns):
                self._save_checkpoints()

    def _emitter(self, processor: LineProcessor) -> Callable[[Line], Awaitable[None]]:
        async def emit(line: Line) -> None:
            event = processor(line)
            await self.queue.put(event)
            # Counted only once queued: a put cancelled mid-wait is re-emitted later
            # by the tailer. Nothing can run between put's return and these lines.
            self.read += 1
            self._outstanding += 1
            self._settled.clear()

        return emit

    def _alert(self, event: Event) -> None:
        # Alerts go out for events Elasticsearch newly created (or refused), never for
        # 409 duplicates: a line re-read after a restart does not e-mail ops twice.
        if self.alerter is not None and self._rule is not None and self._rule.matches(event.fields):
            self.alerter.offer(event.fields)

    async def _ship(self) -> None:
        """The sender loop: batch, deliver, then advance checkpoints."""
        batch_config = self.config.output.elasticsearch.batch
        while True:
            batch = await self.queue.get_batch(
                batch_config.max_events, batch_config.max_bytes, batch_config.max_age_seconds
            )
            await self.sink.send(batch)
            for event in batch:
                line = event.line
                when = event.timestamp.timestamp() if event.timestamp else None
                self.checkpoints.advance(line.file_id, line.path, line.generation, line.end, when)
            self._save_checkpoints()
            await self.queue.release(batch)
            self._outstanding -= len(batch)
            if self._outstanding == 0:
                self._settled.set()

    def _save_checkpoints(self) -> None:
        try:
            self.checkpoints.save()
        except CheckpointWriteError as exc:
            # The in-memory state is kept and the next save retries; on disk the
            # checkpoint stays at the last offset it could persist, never ahead.
            log.error("checkpoint_save_failed", extra={"reason": str(exc)})

    async def run_once(self, timeout: float | None = None) -> RunReport:
        """Read every input to its current end, deliver everything, then stop."""
        loop = asyncio.get_running_loop()
        if timeout is not None:
            self.sink.give_up_at = loop.time() + timeout
        problems: list[str] = []
        alerter_task = asyncio.create_task(self.alerter.run()) if self.alerter else None
        shipper: asyncio.Task[None] | None = None
        try:
            await self.sink.start()
            shipper = asyncio.create_task(self._ship())
            readers = [asyncio.create_task(t.read_available()) for t in self.tailers]
            await _first_failure([*readers, shipper], asyncio.gather(*readers))
            await _first_failure([shipper], self._settled.wait())
            if self.alerter is not None:
                await self.alerter.drain(timeout)
        except (DeliveryError, SinkError) as exc:
            problems.append(str(exc))
            fatal = isinstance(exc, FatalSinkError)
        else:
            fatal = False
        finally:
            await self._shutdown(shipper, alerter_task)
        return self._report(problems, fatal=fatal)

    async def run_forever(self, stop: asyncio.Event, drain_timeout: float = 8.0) -> RunReport:
        """Follow the inputs until ``stop`` is set, then drain what is in flight."""
        alerter_task = asyncio.create_task(self.alerter.run()) if self.alerter else None
        shipper: asyncio.Task[None] | None = None
        problems: list[str] = []
        fatal = False
        maintenance: asyncio.Task[None] | None = None
        try:
            await _until_stopped(self.sink.start(), stop)
            shipper = asyncio.create_task(self._ship())
            maintenance = asyncio.create_task(self._maintain())
            readers = [asyncio.create_task(t.run(stop)) for t in self.tailers]
            await _first_failure([*readers, shipper], _stop_readers(readers, stop))
            # Stopping: give in-flight batches a bounded time to settle. What does not
            # settle is simply not checkpointed and is re-read on the next start.
            with contextlib.suppress(TimeoutError):
                await _first_failure(
                    [shipper], asyncio.wait_for(self._settled.wait(), drain_timeout)
                )
            if self.alerter is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.alerter.drain(), 2.0)
        except asyncio.CancelledError:
            pass
        except FatalSinkError as exc:
            # Credentials refused and the like: exit non-zero so the orchestrator
            # shows it; nothing unacknowledged was checkpointed, so nothing is lost.
            problems.append(str(exc))
            fatal = True
        finally:
            if maintenance is not None:
                maintenance.cancel()
            await self._shutdown(shipper, alerter_task)
        if self._outstanding:
            problems.append(
                f"{self._outstanding} events were not acknowledged before exit; "
                "they will be re-read on the next start"
            )
        return self._report(problems, fatal=fatal)

    async def _shutdown(
        self, shipper: asyncio.Task[None] | None, alerter_task: asyncio.Task[None] | None
    ) -> None:
        for task in (shipper, alerter_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.alerter is not None:
            await self.alerter.close()
        for tailer in self.tailers:
            tailer.close()
        self._save_checkpoints()
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
        alerts = self.alerter.stats if self.alerter else None
        if stats.dead_lettered:
            problems.append(
                f"{stats.dead_lettered} documents were rejected by Elasticsearch "
                f"and dead-lettered to {self.dead_letters.path}"
            )
        if alerts and (alerts.failed or alerts.dropped):
            problems.append(
                f"{alerts.failed} alert e-mails failed and {alerts.dropped} were dropped"
            )
        return RunReport(
            read=self.read,
            created=stats.created,
            duplicates=stats.duplicates,
            dead_lettered=stats.dead_lettered,
            alerts_sent=alerts.sent if alerts else 0,
            alerts_failed=alerts.failed if alerts else 0,
            alerts_dropped=alerts.dropped if alerts else 0,
            problems=problems,
            fatal=fatal,
        )


async def _first_failure(tasks: list[asyncio.Task[None]], awaitable: Awaitable[Any]) -> None:
    """Await ``awaitable``; if one of ``tasks`` fails first, raise its error instead."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        while not waiter.done():
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is waiter or task.cancelled():
                    continue
                error = task.exception()
                if error is not None:
                    raise error
            tasks = [t for t in tasks if not t.done()]
        waiter.result()
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


async def _stop_readers(readers: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Once ``stop`` is set, let the readers finish their pass, then cancel them.

    A reader blocked on a full queue (Elasticsearch down) would never notice the
    stop; cancelling it there is safe: the tailer keeps the lines it had not yet
    handed over, and nothing read is checkpointed before it is acknowledged.
    """
    await stop.wait()
    _, pending = await asyncio.wait(readers, timeout=1.0)
    for task in pending:
        task.cancel()
    for task in readers:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until_stopped(coro: Awaitable[None], stop: asyncio.Event) -> None:
    """Run ``coro`` unless ``stop`` is set first (then cancel it)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        else:
            raise asyncio.CancelledError
    finally:
        for t in (task, stopper):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
