"""The sender: spooled e-mails to the SMTP server, oldest first, retried until delivered.

Each spool entry is rendered (:func:`logpipe.alerts.compose.compose`, the same
bytes every time) and sent in its own SMTP session, with ``timeout`` on every
step. Outcomes (see :func:`logpipe.alerts.smtp.is_transient`)::

    accepted (2xx)         -> removed from the spool, counted sent
    transient (refused connection, timeout, 4xx)
                           -> stays spooled; that entry waits a jittered
                              exponential backoff, and so does the sender as a
                              whole, so a dead server is not hammered
    permanent (5xx, bad certificate, no AUTH, unrenderable)
                           -> moved to failed/ with the reason, counted failed

Backoff state lives in memory: after a restart every spooled entry is tried
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiosmtplib

from logpipe.alerts.compose import MailSettings, compose, recipients
from logpipe.alerts.smtp import SmtpSettings, bare_address, describe, is_transient, send_message
from logpipe.alerts.spool import AlertSpool, SpoolEntry

log = logging.getLogger("logpipe.alerts")


@dataclass(slots=True)
class AlertServiceStats:
    """Counters since start.

    Events: ``offered`` queued; ``unqueued`` found the queue full (counted in
    the "unqueued" digest, not lost); ``self_alerts`` raised by logpipe itself.
    E-mails: ``spooled`` written to the spool; ``sent`` accepted by the
    server; ``retried`` attempts repeated after a transient error; ``failed``
    refused for good (moved to ``failed/``); ``dropped`` could not be spooled
    at all (disk error, logged).
    """

    offered: int = 0
    unqueued: int = 0
    self_alerts: int = 0
    spooled: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Timing: backoff between attempts, the policy tick and state saves."""

    backoff_base: float = 1.0
    backoff_max: float = 60.0
    tick_seconds: float = 1.0
    save_interval: float = 5.0

    def __post_init__(self) -> None:
        if min(self.backoff_base, self.backoff_max) < 0:
            raise ValueError("backoffs must be >= 0")
        if self.tick_seconds <= 0 or self.save_interval < 0:
            raise ValueError("tick_seconds must be > 0 and save_interval >= 0")


class SpoolSender:
    """Deliver a spool's entries over SMTP until cancelled (see the module docstring)."""

    def __init__(
        self,
        spool: AlertSpool,
        smtp: SmtpSettings,
        mail: MailSettings,
        delivery: DeliverySettings,
        stats: AlertServiceStats,
    ) -> None:
        self._spool = spool
        self._smtp = smtp
        self._mail = mail
        self._delivery = delivery
        self.stats = stats
        self._envelope_from = bare_address(mail.sender)
        self._not_before: dict[str, float] = {}  # entry id -> loop time
        self._attempts: dict[str, int] = {}
        self._failures = 0  # consecutive transient failures, for the overall pause
        self._paused_until = 0.0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was spooled: look again now."""
        self._wake.set()

    async def run(self) -> None:
        """Send due entries, one at a time, forever."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            entry, delay = self._next_due(loop.time())
            if entry is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            await self._attempt(entry)

    def _next_due(self, now: float) -> tuple[SpoolEntry | None, float | None]:
        """The oldest entry that may be tried now, else how long until one may."""
        entries = self._spool.entries()
        if not entries:
            return None, None
        if now < self._paused_until:
            return None, self._paused_until - now
        earliest: float | None = None
        for entry in entries:
            not_before = self._not_before.get(entry.id, 0.0)
            if not_before <= now:
                return entry, None
            earliest = not_before if earliest is None else min(earliest, not_before)
        return None, None if earliest is None else earliest - now

    async def _attempt(self, entry: SpoolEntry) -> None:
        # In flight: the spool will not merge a summary into this entry meanwhile.
        self._spool.in_flight = entry.id
        outgoing = entry.outgoing
        context: dict[str, Any] = {
            "entry": entry.id,
            "kind": outgoing.kind,
            "count": outgoing.count,
        }
        try:
            message = compose(outgoing, entry.id, self._mail)
            context["subject"] = str(message["Subject"])
            to, cc = recipients(outgoing, self._mail)
            envelope = list(dict.fromkeys(bare_address(a) for a in [*to, *cc]))
            await send_message(self._smtp, message, sender=self._envelope_from, recipients=envelope)
        except ValueError as exc:  # an address or template that cannot render
            self._give_up(entry, f"ValueError: {exc}", context)
        except (aiosmtplib.SMTPException, OSError) as error:
            if is_transient(error):
                self._retry_later(entry, describe(error), context)
            else:
                self._give_up(entry, describe(error), context)
        else:
            self._delivered(entry, context)
        finally:
            self._spool.in_flight = None

    def _delivered(self, entry: SpoolEntry, context: dict[str, Any]) -> None:
        self.stats.sent += 1
        self._failures = 0
        self._forget(entry.id)
        log.info("alert_sent", extra=context)
        try:
            self._spool.ack(entry.id)
        except OSError as exc:
            log.error("alert_spool_write_failed", extra={**context, "reason": str(exc)})

    def _retry_later(self, entry: SpoolEntry, error: str, context: dict[str, Any]) -> None:
        now = asyncio.get_running_loop().time()
        attempts = self._attempts.get(entry.id, 0) + 1
        self._attempts[entry.id] = attempts
        self._failures += 1
        delay = self._backoff(attempts)
        self._not_before[entry.id] = now + delay
        # Pause everything too: when the server is down, trying the next entry
        # at once would only fail the same way.
        self._paused_until = now + self._backoff(self._failures)
        self.stats.retried += 1
        extra = {**context, "error": error, "attempts": attempts, "delay_seconds": round(delay, 3)}
        log.warning("alert_retried", extra=extra)

    def _give_up(self, entry: SpoolEntry, error: str, context: dict[str, Any]) -> None:
        self.stats.failed += 1
        self._forget(entry.id)
        log.error("alert_failed", extra={**context, "error": error})
        try:
            self._spool.fail(entry.id, error)
        except OSError as exc:
            log.error("alert_spool_write_failed", extra={**context, "reason": str(exc)})

    def _forget(self, entry_id: str) -> None:
        self._attempts.pop(entry_id, None)
        self._not_before.pop(entry_id, None)

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": half the exponential delay fixed, half random, so that
        # retries spread out but never collapse to zero against a down server.
        settings = self._delivery
        ceiling = min(settings.backoff_max, settings.backoff_base * 2.0 ** min(attempt - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
