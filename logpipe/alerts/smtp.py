"""Send rendered alerts over SMTP, off the indexing path.

:func:`send_message` (one message, one session, bounded by timeouts) and
:func:`is_transient` are what :class:`logpipe.alerts.service.AlertService`
delivers its spool with. :class:`EmailAlerter` is the earlier, ungrouped path
(one e-mail per event, in-memory queue, drops when full), kept working until
the pipeline switches to the service.

For :class:`EmailAlerter` the alert path is ``rule -> queue -> sender``. This
module is the last two: :meth:`EmailAlerter.offer` snapshots an event's alert fields
onto a bounded queue without ever waiting, and :meth:`EmailAlerter.run` is the
one task that takes them off the queue, renders and delivers them. Rendering
happens in the sender, not in ``offer``: the ``email`` package needs about a
millisecond per message, which a burst of errors must not add to the indexing
path. Indexing therefore never
waits on e-mail: when SMTP is slow or down the queue fills and further alerts
are dropped and counted, not buffered without bound.

Delivery failures are split in two, and neither ever ends the sender task::

    transient (retried with jittered exponential backoff, up to max_attempts)
     ├── OSError: connection refused/reset, DNS, socket timeouts
     │    (aiosmtplib's SMTPServerDisconnected, SMTPConnectError and
     │     SMTPTimeoutError are OSErrors too)
     ├── SMTPResponseException with a 4xx code ("451 try later")
     └── SMTPRecipientsRefused where some refusal was 4xx
    permanent (counted failed and logged at once)
     ├── SMTPResponseException with any other code (550, 535 bad login, ...)
     ├── ssl.SSLCertVerificationError: retrying cannot fix a certificate
     └── any other SMTPException (e.g. STARTTLS or AUTH not supported)
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import aiosmtplib

from logpipe.alerts.render import alert_fields, render_email
from logpipe.errors import DeliveryError

log = logging.getLogger("logpipe.alerts")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the SMTP server.

    ``starttls`` upgrades a plain connection (usually port 587); ``use_tls`` is
    implicit TLS from the first byte (usually port 465); at most one may be set.
    The password is kept out of ``repr`` so that logging the settings, or a
    traceback that shows them, never prints it.
    """

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_tls: bool = False
    timeout: float = 10.0
    validate_certs: bool = True
    cafile: str | None = None

    def __post_init__(self) -> None:
        if self.starttls and self.use_tls:
            raise ValueError("starttls and use_tls are mutually exclusive")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be set together")


@dataclass(slots=True)
class AlertStats:
    """Counters of what happened to alerts since start.

    ``sent`` delivered; ``failed`` given up on (permanent error or attempts
    exhausted); ``dropped`` never queued because the queue was full, or still
    queued at :meth:`EmailAlerter.close`; ``retried`` attempts repeated after a
    transient error.
    """

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0


@dataclass(frozen=True, slots=True)
class _Alert:
    """What waits on the queue: the event's alert fields and when it was offered."""

    fields: dict[str, Any]
    offered_at: datetime


class EmailAlerter:
    """Queue alert e-mails without blocking and deliver them from one task.

    Usage::

        alerter = EmailAlerter(settings, sender=..., to=[...])
        task = asyncio.create_task(alerter.run())
        ...
        if event.alert is not None and rule.matches(event.alert):
            alerter.offer(event.alert)
        ...
        await alerter.drain(timeout=30)   # --once: let queued alerts go out
        await alerter.close()

    ``offer`` does not apply any rule: deciding *whether* to alert (rule,
    throttle, digest) belongs upstream, so that it can change without touching
    delivery.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        sender: str,
        to: list[str],
        subject_template: str = "Critical Error: {message}",
        queue_size: int = 1000,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if queue_size < 1 or max_attempts < 1 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("queue_size and max_attempts must be >= 1, backoffs >= 0")
        self._settings = settings
        self._sender = sender
        self._to = list(to)
        # The envelope is fixed from configuration, so no header can add a
        # recipient even if one were ever smuggled into the message.
        self._envelope_from = bare_address(sender)
        self._envelope_to = [bare_address(address) for address in to]
        self._subject_template = subject_template
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._queue: asyncio.Queue[_Alert] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._dropping = False
        self._closed = False
        self.stats = AlertStats()
        # Fail at start-up, not at the first error of the day, on a bad address.
        render_email({}, sender=sender, to=self._to, subject_template=subject_template)

    def offer(self, fields: dict[str, Any]) -> bool:
        """Queue an alert for the event ``fields``; never waits.

        Returns False, and counts the alert as dropped, when the queue is full.
        """
        # Checked first: during a flood most offers are drops, and each must
        # cost the indexing path next to nothing.
        if self._queue.full():
            self.stats.dropped += 1
            # One warning per streak of drops: a flood must not flood the log too.
            level = logging.DEBUG if self._dropping else logging.WARNING
            log.log(level, "alert_dropped", extra={"reason": "queue_full", **self._counts()})
            self._dropping = True
            return False
        # Cannot raise QueueFull: nothing awaits between the check and the put.
        self._queue.put_nowait(_Alert(alert_fields(fields), datetime.now(UTC)))
        self._dropping = False
        return True

    async def run(self) -> None:
        """Deliver queued alerts until cancelled; no SMTP error ends this loop."""
        if self._closed:
            return  # close() ran before this task got its first turn
        self._task = asyncio.current_task()
        while True:
            alert = await self._queue.get()
            try:
                message = render_email(
                    alert.fields,
                    sender=self._sender,
                    to=self._to,
                    subject_template=self._subject_template,
                    date=alert.offered_at,
                )
                await self._deliver(message)
            except asyncio.CancelledError:
                self.stats.dropped += 1
                log.warning("alert_dropped", extra={"reason": "closed", "count": 1})
                raise
            finally:
                self._queue.task_done()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued alert has been sent or given up on.

        Needs :meth:`run` to be running. Raises :class:`DeliveryError` if that
        takes longer than ``timeout`` seconds (``--once`` then exits non-zero);
        the alerts stay queued.
        """
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            raise DeliveryError(
                f"{self._queue.qsize()} alerts still queued, and maybe one being sent, "
                f"after {timeout}s"
            ) from None

    async def close(self) -> None:
        """Cancel the sender task and wait for it to end.

        Alerts still queued are counted as dropped: call :meth:`drain` first to
        give them a chance.
        """
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            # wait() rather than awaiting the task: its CancelledError is its
            # own, while a cancellation of close()'s caller still propagates.
            await asyncio.wait({task})
        # Empty the queue rather than just counting it: a second close() must
        # not count the same alerts again, and a waiting drain() must return.
        pending = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            pending += 1
        if pending:
            self.stats.dropped += pending
            log.warning("alert_dropped", extra={"reason": "closed", "count": pending})

    async def _deliver(self, message: EmailMessage) -> None:
        # The Subject is already one sanitised line (render.safe_subject), so it
        # is safe in our own log output too.
        context: dict[str, Any] = {
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
        }
        for attempt in range(1, self._max_attempts + 1):
            context["attempts"] = attempt
            try:
                await self._send(message)
            except (aiosmtplib.SMTPException, OSError) as error:
                context["error"] = describe(error)
                if not is_transient(error) or attempt == self._max_attempts:
                    self.stats.failed += 1
                    log.error("alert_failed", extra={**context, **self._counts()})
                    return
                delay = self._backoff(attempt)
                self.stats.retried += 1
                log.warning("alert_retried", extra={**context, "delay_seconds": round(delay, 3)})
                await asyncio.sleep(delay)
            else:
                self.stats.sent += 1
                log.info("alert_sent", extra=context)
                return

    async def _send(self, message: EmailMessage) -> None:
        await send_message(
            self._settings, message, sender=self._envelope_from, recipients=self._envelope_to
        )

    def _counts(self) -> dict[str, int]:
        return {"sent": self.stats.sent, "failed": self.stats.failed, "dropped": self.stats.dropped}

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": half the exponential delay fixed, half random, so that
        # retries spread out but never collapse to zero against a down server.
        ceiling = min(self._backoff_max, self._backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


async def send_message(
    settings: SmtpSettings, message: EmailMessage, *, sender: str, recipients: list[str]
) -> None:
    """Deliver one message in one SMTP session; raise on failure (see :func:`is_transient`).

    The envelope (``sender``, ``recipients``) is passed explicitly, never read
    from the headers. ``settings.timeout`` bounds every step: the EHLO name
    lookup, connect, TLS, login, each command and reply, so a server that
    stalls costs at most that long per step.

    Cancelling this coroutine always ends it at once with ``CancelledError``,
    which is what lets ``close()`` stop a sender. That takes two guards, because
    aiosmtplib awaits every step through ``asyncio.wait_for``, and on Python
    3.11 ``wait_for`` swallows a cancellation that arrives in the same loop
    iteration as the step's own outcome (CPython gh-86296): it returns the
    result, or raises the step's error (a refused connection, say), and the
    cancellation is gone. The sender would then take it for an ordinary failed
    attempt, retry, and never end. So the session runs in a task of its own that
    this coroutine awaits with :func:`asyncio.wait`, which never swallows; and
    the session checks after each step whether it was cancelled meanwhile, so a
    session whose cancellation was swallowed still stops at the next step.

    Not ``aiosmtplib.send``: its ``async with`` sends QUIT on the way out even
    when the task is being cancelled, and waits the full timeout for a stalled
    server to answer it, so shutting down would hang. Here any failure or
    cancellation drops the connection at once, and QUIT is only sent, bounded
    by the same timeout, after the message has been accepted.
    """
    session = asyncio.ensure_future(
        _session(settings, message, sender=sender, recipients=recipients)
    )
    session.add_done_callback(_retrieve)
    try:
        await asyncio.wait({session})
    except asyncio.CancelledError:
        session.cancel()
        # Normally over by the next loop iteration (the connection is dropped);
        # bounded in case the session's own cancellation is swallowed as well.
        await asyncio.wait({session}, timeout=_CANCEL_GRACE)
        raise
    session.result()  # its exception, if any


_CANCEL_GRACE = 1.0
"""How long a cancelled :func:`send_message` waits for its session to drop the connection."""


async def _session(
    settings: SmtpSettings, message: EmailMessage, *, sender: str, recipients: list[str]
) -> None:
    """One SMTP session (see :func:`send_message`); runs in a task of its own."""
    this = asyncio.current_task()
    assert this is not None  # a coroutine run by send_message's task

    def check_cancelled() -> None:
        # Task.cancelling() counts requests that no CancelledError has answered:
        # non-zero here means a wait_for inside aiosmtplib swallowed ours.
        if this.cancelling():
            raise asyncio.CancelledError

    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        local_hostname=await _local_hostname(settings.timeout),
        start_tls=settings.starttls,
        use_tls=settings.use_tls,
        timeout=settings.timeout,
        validate_certs=settings.validate_certs,
        cert_bundle=settings.cafile,
    )
    try:
        await client.connect()  # also STARTTLS and login, as configured
        check_cancelled()
        errors, _ = await client.send_message(message, sender=sender, recipients=recipients)
        check_cancelled()
    except BaseException as error:
        client.close()
        if not isinstance(error, asyncio.CancelledError) and this.cancelling():
            raise asyncio.CancelledError from error
        raise
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        pass  # accepted is accepted; a server that fumbles QUIT changes nothing
    finally:
        client.close()
    # Some recipients accepted, some refused: retrying would duplicate the
    # e-mail for the ones that got it, so report the others and move on.
    for recipient, response in errors.items():
        log.warning(
            "alert_recipient_refused",
            extra={"recipient": recipient, "code": response.code, "reply": response.message},
        )


def _retrieve(session: asyncio.Future[None]) -> None:
    # A session left running by a cancelled send_message() may still fail
    # later: fetch its exception so asyncio does not log it as never retrieved.
    if not session.cancelled():
        session.exception()


_fqdn: str | None = None


async def _local_hostname(timeout: float) -> str:
    """The name to say in EHLO: this host's FQDN, looked up once, within ``timeout``.

    aiosmtplib would otherwise call ``socket.getfqdn()`` (a DNS lookup) in a
    thread for every session, outside its timeouts. When the lookup is slow,
    the bare host name is used for that session and the lookup tried again
    next time.
    """
    global _fqdn
    if _fqdn is None:
        try:
            async with asyncio.timeout(timeout):
                _fqdn = await asyncio.to_thread(socket.getfqdn)
        except TimeoutError:
            return socket.gethostname()
    return _fqdn


def is_transient(error: BaseException) -> bool:
    """Whether a delivery error may go away on retry (see the module docstring)."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return any(400 <= refused.code < 500 for refused in error.recipients)
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    return isinstance(error, OSError)


def describe(error: BaseException) -> str:
    # Class name plus text: "OSError" alone hides the errno, str() alone hides
    # the kind. Neither ever contains the password (aiosmtplib does not echo it).
    return f"{type(error).__name__}: {error}"


def bare_address(address: str) -> str:
    """The addr-spec of a configured address (``"Ops <ops@x>"`` -> ``"ops@x"``)."""
    parsed = getaddresses([address])
    if len(parsed) != 1 or "@" not in parsed[0][1]:
        raise ValueError(f"invalid address, expected exactly one: {address!r}")
    return parsed[0][1]
