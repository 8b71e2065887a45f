"""The alert service: rules, grouping, rate limits, a durable spool and SMTP, off indexing.

::

    offer(fields) -rule-> bounded queue -> intake: policy.observe -> spool -> sender -> SMTP
     (never waits)        full: counted    ticker (1 s): policy.tick -^     (delivery.py)
                          in the "unqueued"   + state saved
                          digest

:meth:`AlertService.offer` runs on the indexing path: it picks the first
matching rule, snapshots the event's alert fields and puts them on a bounded
queue, and never waits. Everything else runs in :meth:`AlertService.run`'s
three tasks. Nothing is dropped silently: an event the queue has no room for
is counted and reported in a digest; an e-mail the spool cannot write (disk
error) is counted in ``stats.dropped`` and logged.

Spool writes and state saves are synchronous (fsync) on the event loop. That
is bounded by the number of e-mails, which the policy's global cap keeps to a
few per minute, not by the number of events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from logpipe.alerts.compose import MailSettings
from logpipe.alerts.delivery import AlertServiceStats, DeliverySettings, SpoolSender
from logpipe.alerts.outgoing import Outgoing
from logpipe.alerts.policy import AlertPolicy, PolicySettings
from logpipe.alerts.render import alert_fields
from logpipe.alerts.rules import AlertRule, first_match
from logpipe.alerts.smtp import SmtpSettings
from logpipe.alerts.spool import AlertSpool
from logpipe.errors import DeliveryError

log = logging.getLogger("logpipe.alerts")

SELF_LOGGER = "logpipe"
_YIELD_EVERY = 100  # intake lets indexing run after this many events
CLOSE_TIMEOUT = 5.0
"""How long :meth:`AlertService.close` waits for its tasks to end."""


@dataclass(frozen=True, slots=True)
class _Offer:
    """What waits on the queue: the matching rule and the event's alert fields."""

    rule: AlertRule
    fields: dict[str, Any]


class AlertService:
    """Group, rate-limit, spool and deliver alert e-mails (see the module docstring).

    Usage::

        service = AlertService(smtp, mail, rules=rules, spool_dir=data_dir / "alerts")
        task = asyncio.create_task(service.run())
        service.offer(event.alert)            # per created event; filters by rule
        service.self_alert("elasticsearch_unreachable", "...", {"for_seconds": 300})
        await service.drain(timeout=30)       # --once: flush digests, deliver the spool
        await service.close()                 # saves the state; the spool stays on disk

    The constructor reads the spool and the saved state (creating the
    directories), so a bad data directory fails at start-up.
    """

    def __init__(
        self,
        smtp: SmtpSettings,
        mail: MailSettings,
        *,
        spool_dir: Path,
        rules: Sequence[AlertRule] = (AlertRule(),),
        policy: PolicySettings | None = None,
        delivery: DeliverySettings | None = None,
        queue_size: int = 1000,
        spool_max_entries: int = 1000,
        self_fields: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self._rules = tuple(rules)
        self._self_rule = AlertRule(name=SELF_LOGGER)
        self._delivery = delivery or DeliverySettings()
        self._self_fields = dict(self_fields or {})
        self._clock = clock
        self._queue: asyncio.Queue[_Offer] = asyncio.Queue(maxsize=queue_size)
        self._unqueued = 0  # not yet handed to the policy
        self._unqueued_streak = False
        self.stats = AlertServiceStats()
        settings = policy or PolicySettings()
        self._spool = AlertSpool(
            spool_dir, max_entries=spool_max_entries, sample_ids=settings.sample_ids, clock=clock
        )
        for problem in self._spool.load():
            log.error("alert_spool_entry_unreadable", extra={"reason": problem})
        self._policy = self._restore_policy(settings)
        self._saved_version = self._policy.version
        self._saved_at = 0.0
        self._sender = SpoolSender(self._spool, smtp, mail, self._delivery, self.stats)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- the indexing side: never waits, never raises ------------------------------

    @property
    def levels(self) -> frozenset[str]:
        """The log levels some rule matches: events at other levels are never offered."""
        return frozenset().union(*(rule.levels for rule in self._rules))

    @property
    def policy(self) -> AlertPolicy:
        """The grouping state machine (its counters feed the metrics)."""
        return self._policy

    def offer(self, fields: dict[str, Any]) -> None:
        """Queue the event for alerting if a rule matches it; returns at once."""
        rule = first_match(self._rules, fields)
        if rule is not None:
            self._enqueue(rule, fields)

    def self_alert(self, kind: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        """Alert ops about logpipe's own trouble, through the same grouping and limits.

        ``kind`` names the trouble (``elasticsearch_unreachable``,
        ``documents_dead_lettered``, ``file_unreadable``) and becomes the
        group's error type; ``details`` are shown as the error message.
        """
        fields: dict[str, Any] = {
            **self._self_fields,
            "@timestamp": _iso(self._clock()),
            "log": {"level": "error", "logger": SELF_LOGGER},
            "event": {"dataset": SELF_LOGGER},
            "message": message,
            "error": {"type": kind},
        }
        if details:
            fields["error"]["message"] = "; ".join(f"{k}: {v}" for k, v in details.items())
        self.stats.self_alerts += 1
        self._enqueue(self._self_rule, fields)

    def _enqueue(self, rule: AlertRule, fields: dict[str, Any]) -> None:
        # Checked first: during a flood most offers find the queue full, and
        # each must cost the indexing path next to nothing.
        if self._closed or self._queue.full():
            self._unqueued += 1
            self.stats.unqueued += 1
            if not self._unqueued_streak:  # one warning per streak, not per event
                reason = "closed" if self._closed else "queue_full"
                log.warning("alert_unqueued", extra={"reason": reason})
                self._unqueued_streak = True
            return
        # Cannot raise QueueFull: nothing awaits between the check and the put.
        self._queue.put_nowait(_Offer(rule, alert_fields(fields)))
        self._unqueued_streak = False
        self.stats.offered += 1

    # -- the alert side -------------------------------------------------------------

    async def run(self) -> None:
        """Group, spool and deliver until cancelled; spooled e-mails from before go first."""
        if self._closed:
            return  # close() ran before this task got its first turn
        self._task = asyncio.current_task()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._intake())
            tasks.create_task(self._ticker())
            tasks.create_task(self._sender.run())

    async def drain(self, timeout: float | None = None, *, flush: bool = True) -> None:
        """Wait until every queued event is grouped and every spooled e-mail delivered.

        ``flush`` sends pending digests now rather than at the end of their
        window (as far as the rate cap allows; the rest stay in the saved
        state). Needs :meth:`run`. Raises :class:`DeliveryError` after
        ``timeout`` seconds; what is left stays spooled for the next start.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
                if flush:
                    self._fold_unqueued()
                    self._spool_all(self._policy.flush(self._clock()))
                while len(self._spool):
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise DeliveryError(
                f"{len(self._spool)} alert e-mails still spooled and {self._queue.qsize()} "
                f"events queued after {timeout}s; they are kept for the next start"
            ) from None

    async def close(self) -> None:
        """Stop the tasks, group what is still queued, and save the state."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            # wait() rather than awaiting the task: its CancelledError is its
            # own, while a cancellation of close()'s caller still propagates.
            # Bounded: the tasks end at their next await (the sender's SMTP
            # session included, see smtp.send_message), and should one ever
            # swallow its cancellation, shutting down must not hang on it.
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
            if not task.done():
                log.error("alert_tasks_not_stopped", extra={"timeout_seconds": CLOSE_TIMEOUT})
        # Events still queued are grouped now: their e-mails are spooled and go
        # out at the next start, their counts are in the saved state.
        while not self._queue.empty():
            self._observe(self._queue.get_nowait())
            self._queue.task_done()
        self._fold_unqueued()
        self._save_state()

    @property
    def spooled(self) -> int:
        """E-mails waiting in the spool."""
        return len(self._spool)

    @property
    def pending_events(self) -> int:
        """Events counted and not yet in any e-mail (pending digests)."""
        return self._policy.pending + self._unqueued

    # -- tasks ---------------------------------------------------------------------

    async def _intake(self) -> None:
        # Offers are taken in runs of up to _YIELD_EVERY and their e-mails spooled
        # together, so the policy state (O(groups) to encode, fsynced) is saved once
        # per run, not once per e-mail: per e-mail, an uncapped flood of alerts cut
        # indexing to 0.28x (bench/RESULTS.md, alerts_isolation).
        while True:
            offer = await self._queue.get()
            outgoing: list[Outgoing] = []
            for taken in range(1, _YIELD_EVERY + 1):
                try:
                    outgoing += self._policy.observe(offer.fields, self._clock(), rule=offer.rule)
                finally:
                    self._queue.task_done()
                if taken == _YIELD_EVERY or self._queue.empty():
                    break
                offer = self._queue.get_nowait()
            self._spool_all(outgoing)
            await asyncio.sleep(0)  # get() does not yield while items are queued

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._delivery.tick_seconds)
            self._fold_unqueued()
            self._spool_all(self._policy.tick(self._clock()))
            unsaved = self._policy.version != self._saved_version
            if unsaved and time.monotonic() - self._saved_at >= self._delivery.save_interval:
                self._save_state()

    # -- steps ---------------------------------------------------------------------

    def _observe(self, offer: _Offer) -> None:
        self._spool_all(self._policy.observe(offer.fields, self._clock(), rule=offer.rule))

    def _fold_unqueued(self) -> None:
        if self._unqueued:
            self._policy.observe_unqueued(self._unqueued, self._clock())
            self._unqueued = 0

    def _spool_all(self, outgoing: list[Outgoing]) -> None:
        if not outgoing:
            return
        for item in outgoing:
            context = {"kind": item.kind, "group": item.key, "count": item.count}
            try:
                entry = self._spool.add(item)
            except OSError as exc:
                self.stats.dropped += 1
                log.error("alert_dropped", extra={**context, "reason": f"spool: {exc}"})
                continue
            self.stats.spooled += 1
            log.info("alert_spooled", extra={**context, "entry": entry.id})
        # Saved at once: a restart must not report these counts a second time.
        self._save_state()
        self._sender.wake()

    # -- state ---------------------------------------------------------------------

    def _restore_policy(self, settings: PolicySettings) -> AlertPolicy:
        knobs = asdict(settings)
        try:
            state = self._spool.load_state()
            if state is not None:
                policy = AlertPolicy.from_dict(state, **knobs)
                log.info(
                    "alert_state_restored",
                    extra={"groups": policy.groups, "pending_events": policy.pending},
                )
                return policy
        except ValueError as exc:
            log.error("alert_state_unreadable", extra={"reason": str(exc)})
        return AlertPolicy(**knobs)

    def _save_state(self) -> None:
        try:
            self._spool.save_state(self._policy.to_dict())
        except OSError as exc:
            log.error("alert_state_save_failed", extra={"reason": str(exc)})
            return
        self._saved_version = self._policy.version
        self._saved_at = time.monotonic()


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
