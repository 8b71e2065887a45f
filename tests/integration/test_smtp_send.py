"""Sending one e-mail over SMTP, against a real server (aiosmtpd on loopback).

:func:`send_message` and :func:`is_transient` first, directly: what reaches the
server, and how each kind of failure is classified (the sender retries what is
transient and gives up on the rest). Then two guarantees checked end to end
through :class:`AlertService`, because they depend on the configuration
reaching the wire: the envelope holds the bare configured addresses, and the
SMTP password shows up nowhere, not even when the login fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from logpipe.alerts.compose import MailSettings
from logpipe.alerts.delivery import DeliverySettings
from logpipe.alerts.render import render_email
from logpipe.alerts.service import AlertService
from logpipe.alerts.smtp import SmtpSettings, describe, is_transient, send_message
from logpipe.devservers.smtp import RecordingSMTP
from tests.integration.smtp_server import SmtpServerFactory, smtp_server_factory

__all__ = ["smtp_server_factory"]  # the fixture, imported to be used by name below

pytestmark = pytest.mark.integration

OPS = "ops-team@example.com"
SENDER = "logpipe@example.com"
SECRET = "hunter2-not-for-logs"


def error_event(message: str = "Database error recording daily input") -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-27T10:00:00.123Z",
        "log": {"level": "error", "logger": "app.api.production"},
        "message": message,
        "error": {"stack_trace": "Traceback (most recent call last):\nOperationalError: boom"},
    }


def settings_for(server: RecordingSMTP, **overrides: Any) -> SmtpSettings:
    options: dict[str, Any] = {"host": server.host, "port": server.port, "timeout": 2.0}
    return SmtpSettings(**(options | overrides))


def alert_message(message: str = "Database error recording daily input") -> EmailMessage:
    return render_email(
        error_event(message),
        sender=f"logpipe <{SENDER}>",
        to=[f"Ops Team <{OPS}>"],
        subject_template="Critical Error: {message}",
    )


async def send(settings: SmtpSettings, message: EmailMessage | None = None) -> None:
    """Send ``message`` (a rendered alert by default) to OPS, from SENDER."""
    await send_message(settings, message or alert_message(), sender=SENDER, recipients=[OPS])


# -- send_message ------------------------------------------------------------------


async def test_envelope_is_the_one_given_never_the_headers(
    smtp_server_factory: SmtpServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory()
    message = alert_message()
    message["Cc"] = "someone-else@attacker.test"  # in the headers, not the envelope
    caplog.set_level(logging.DEBUG, logger="logpipe")

    await send(settings_for(server), message)

    (received,) = server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (OPS,))
    parsed = received.parsed()
    assert parsed["Subject"] == "Critical Error: Database error recording daily input"
    assert parsed["To"] == f"Ops Team <{OPS}>"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("logpipe")] == []


async def test_451_raises_a_transient_error_and_the_next_send_is_delivered_once(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    server.respond_with("451 4.3.0 Try again later")

    with pytest.raises(aiosmtplib.SMTPResponseException) as raised:
        await send(settings_for(server))
    assert raised.value.code == 451
    assert is_transient(raised.value)
    assert server.messages == []

    await send(settings_for(server))
    assert len(server.messages) == 1
    assert server.attempts == 2


async def test_550_raises_a_permanent_error_that_names_the_reply(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    server.respond_with("550 5.7.1 Message rejected")

    with pytest.raises(aiosmtplib.SMTPResponseException) as raised:
        await send(settings_for(server))

    assert not is_transient(raised.value)
    assert "550" in describe(raised.value) and "Message rejected" in describe(raised.value)
    assert (server.messages, server.attempts) == ([], 1)


async def test_refused_connection_is_transient_and_delivers_once_the_server_is_up(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory(start=False)

    with pytest.raises(OSError) as raised:
        await send(settings_for(server))
    assert is_transient(raised.value)

    await asyncio.to_thread(server.start)
    await send(settings_for(server))
    assert len(server.messages) == 1


async def test_silent_server_times_out_as_a_transient_error(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    server.stall()  # accepts the connection, never sends the greeting

    with pytest.raises(OSError) as raised:
        await send(settings_for(server, timeout=0.3))

    assert is_transient(raised.value)
    assert server.held_connections == 1


async def test_login_the_server_cannot_do_is_permanent_and_keeps_the_password_out(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()  # offers no AUTH
    settings = settings_for(server, username="logpipe", password=SECRET)

    with pytest.raises(aiosmtplib.SMTPException) as raised:
        await send(settings)

    assert not is_transient(raised.value)
    assert SECRET not in describe(raised.value)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert server.attempts == 0


# -- through AlertService ----------------------------------------------------------


def service_for(smtp: SmtpSettings, mail: MailSettings, spool_dir: Path) -> AlertService:
    delivery = DeliverySettings(
        backoff_base=0.02, backoff_max=0.1, tick_seconds=0.02, save_interval=0.05
    )
    return AlertService(smtp, mail, spool_dir=spool_dir, delivery=delivery)


@contextlib.asynccontextmanager
async def running(service: AlertService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run())
    try:
        yield
    finally:
        await service.close()
        # Bounded: a task that outlives close() fails the test, it does not hang it.
        await asyncio.wait({task}, timeout=1.0)
        assert task.done(), "close() returned with the service's tasks still running"


async def test_envelope_uses_the_bare_configured_addresses(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    mail = MailSettings(sender=f"logpipe <{SENDER}>", to=(f"Ops Team <{OPS}>",))
    service = service_for(settings_for(server), mail, tmp_path)

    async with running(service):
        service.offer(error_event())
        await service.drain(timeout=10)

    (received,) = server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (OPS,))
    parsed = received.parsed()
    assert (parsed["From"], parsed["To"]) == (f"logpipe <{SENDER}>", f"Ops Team <{OPS}>")


async def test_password_never_appears_in_logs_or_the_spool_when_login_fails(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory()  # offers no AUTH: the login fails, permanently, at once
    settings = settings_for(server, username="logpipe", password=SECRET)
    service = service_for(settings, MailSettings(sender=SENDER, to=(OPS,)), tmp_path)
    caplog.set_level(logging.DEBUG)

    async with running(service):
        service.offer(error_event())
        await service.drain(timeout=10)

    assert (service.stats.sent, service.stats.failed) == (0, 1)
    assert "alert_failed" in caplog.messages
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.__dict__)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.parent.name == "failed" for path in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
