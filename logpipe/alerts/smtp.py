"""Send one alert e-mail over SMTP, and say whether a failure is worth retrying.

:class:`logpipe.alerts.delivery.SpoolSender` delivers the alert spool with
:func:`send_message` (one message, one session, every step bounded by
``SmtpSettings.timeout``, cancellable at once) and decides what a failure means
with :func:`is_transient`. Retries, backoff and giving up are the sender's
business; this module only sends and classifies.

Failures are split in two::

    transient (the sender keeps the e-mail spooled and retries it)
     ├── OSError: connection refused/reset, DNS, socket timeouts
     │    (aiosmtplib's SMTPServerDisconnected, SMTPConnectError and
     │     SMTPTimeoutError are OSErrors too)
     ├── SMTPResponseException with a 4xx code ("451 try later")
     └── SMTPRecipientsRefused where some refusal was 4xx
    permanent (the sender moves the e-mail to failed/ at once)
     ├── SMTPResponseException with any other code (550, 535 bad login, ...)
     ├── ssl.SSLCertVerificationError: retrying cannot fix a certificate
     └── any other SMTPException (e.g. STARTTLS or AUTH not supported)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses

import aiosmtplib

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


async def send_message(
    settings: SmtpSettings, message: EmailMessage, *, sender: str, recipients: list[str]
) -> None:
    """Deliver one message in one SMTP session; raise on failure (see :func:`is_transient`).

    The envelope (``sender``, ``recipients``) is passed explicitly, never read
    from the headers. ``settings.timeout`` bounds every step: the EHLO name
    lookup, connect, TLS, login, each command and reply, so a server that
    stalls costs at most that long per step.

    Cancelling this coroutine always ends it at once with ``CancelledError``,
    which is what lets ``AlertService.close()`` stop the sender. That takes two
    guards, because aiosmtplib awaits every step through ``asyncio.wait_for``,
    and on Python 3.11 ``wait_for`` swallows a cancellation that arrives in the
    same loop iteration as the step's own outcome (CPython gh-86296): it returns the
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
