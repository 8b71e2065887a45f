"""EmailAlerter against a real SMTP server (aiosmtpd on loopback).

Backoffs are a few milliseconds so that retry scenarios run in well under a
second; the retry logic is the same at any scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from logpipe.alerts.smtp import EmailAlerter, SmtpSettings
from logpipe.devservers.smtp import RecordingSMTP
from logpipe.errors import DeliveryError
from tests.integration.smtp_server import (
    SmtpServerFactory,
    close_as_a_connection_is_refused,
    smtp_server_factory,
)

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
        "http": {"request": {"id": "req-123"}},
    }


def alerter_for(server: RecordingSMTP, **overrides: Any) -> EmailAlerter:
    settings = overrides.pop(
        "settings", SmtpSettings(host=server.host, port=server.port, timeout=2.0)
    )
    options: dict[str, Any] = {
        "sender": SENDER,
        "to": [OPS],
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    return EmailAlerter(settings, **(options | overrides))


@contextlib.asynccontextmanager
async def running(alerter: EmailAlerter) -> AsyncIterator[asyncio.Task[None]]:
    """Run the sender task for the duration of the block, then close it."""
    task = asyncio.create_task(alerter.run())
    try:
        yield task
    finally:
        await alerter.close()
        # Also covers a task that never got to start. Bounded: a sender that
        # outlives close() fails the test, it does not hang it.
        await asyncio.wait({task}, timeout=1.0)
        assert task.done(), "close() returned with the sender still running"


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_error_event_produces_exactly_one_email_with_critical_error_subject(
    smtp_server_factory: SmtpServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory()
    alerter = alerter_for(server)
    caplog.set_level(logging.INFO, logger="logpipe.alerts")

    async with running(alerter):
        assert alerter.offer(error_event())
        await alerter.drain(timeout=5)

    (received,) = server.messages
    assert received.mail_from == SENDER
    assert received.rcpt_tos == (OPS,)
    message = received.parsed()
    assert message["Subject"] == "Critical Error: Database error recording daily input"
    plain = message.get_body(("plain",))
    assert plain is not None
    assert "OperationalError: boom" in plain.get_content()
    assert (alerter.stats.sent, alerter.stats.failed, alerter.stats.retried) == (1, 0, 0)
    assert [r.getMessage() for r in caplog.records] == ["alert_sent"]


@pytest.mark.parametrize(
    "message",
    [
        "boom\r\nBcc: evil@attacker.test",
        "boom =?UTF-8?Q?=0D=0ABcc:_evil@attacker.test?=",
        "boom =?UTF-8?Q?=0A?=",
    ],
)
async def test_injected_headers_reach_no_extra_recipient(
    smtp_server_factory: SmtpServerFactory, message: str
) -> None:
    server = smtp_server_factory()
    alerter = alerter_for(server)

    async with running(alerter):
        alerter.offer(error_event(message))
        await alerter.drain(timeout=5)

    (received,) = server.messages
    assert received.rcpt_tos == (OPS,)
    parsed = received.parsed()
    assert "Bcc" not in parsed
    assert parsed.get_all("To") == [OPS]
    assert "\n" not in str(parsed["Subject"]).strip()


async def test_451_then_accept_delivers_exactly_once_and_counts_the_retry(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    server.respond_with("451 4.3.0 Try again later")
    alerter = alerter_for(server)

    async with running(alerter):
        alerter.offer(error_event())
        await alerter.drain(timeout=5)

    assert len(server.messages) == 1
    assert server.attempts == 2
    assert (alerter.stats.sent, alerter.stats.retried, alerter.stats.failed) == (1, 1, 0)


async def test_transient_errors_give_up_after_max_attempts(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    server.respond_with(*["451 4.3.0 Try again later"] * 3)
    alerter = alerter_for(server, max_attempts=3)

    async with running(alerter):
        alerter.offer(error_event())
        await alerter.drain(timeout=5)

    assert server.messages == []
    assert server.attempts == 3
    assert (alerter.stats.sent, alerter.stats.retried, alerter.stats.failed) == (0, 2, 1)


async def test_550_counts_failed_at_once_and_the_next_alert_is_delivered(
    smtp_server_factory: SmtpServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory()
    server.respond_with("550 5.7.1 Message rejected")
    alerter = alerter_for(server)

    async with running(alerter) as task:
        alerter.offer(error_event("first"))
        await alerter.drain(timeout=5)
        assert (alerter.stats.failed, alerter.stats.retried) == (1, 0)
        assert server.attempts == 1
        assert not task.done()

        alerter.offer(error_event("second"))
        await alerter.drain(timeout=5)

    (received,) = server.messages
    assert received.parsed()["Subject"] == "Critical Error: second"
    assert (alerter.stats.sent, alerter.stats.failed) == (1, 1)
    (failure,) = [r for r in caplog.records if r.getMessage() == "alert_failed"]
    assert "550" in failure.__dict__["error"]


async def test_connection_refused_then_server_up_delivers_once(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory(start=False)
    alerter = alerter_for(server, max_attempts=200, backoff_base=0.02, backoff_max=0.05)

    async with running(alerter):
        alerter.offer(error_event())
        await eventually(lambda: alerter.stats.retried >= 2)
        assert alerter.stats.sent == 0
        # start() blocks until the server answers: keep the loop (and the
        # retrying alerter) running meanwhile.
        await asyncio.to_thread(server.start)
        await alerter.drain(timeout=5)

    assert len(server.messages) == 1
    assert (alerter.stats.sent, alerter.stats.failed) == (1, 0)


async def test_offer_on_full_queue_returns_false_at_once_and_counts_dropped(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    alerter = alerter_for(server, queue_size=2)

    # No sender running yet: the queue fills and stays full.
    assert alerter.offer(error_event("one"))
    assert alerter.offer(error_event("two"))
    started = time.perf_counter()
    assert not alerter.offer(error_event("three"))
    assert time.perf_counter() - started < 0.1
    assert alerter.stats.dropped == 1

    async with running(alerter):
        await alerter.drain(timeout=5)

    subjects = [m.parsed()["Subject"] for m in server.messages]
    assert subjects == ["Critical Error: one", "Critical Error: two"]
    assert (alerter.stats.sent, alerter.stats.dropped) == (2, 1)


async def test_close_stops_the_sender_and_counts_unsent_alerts_as_dropped(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory(start=False)
    alerter = alerter_for(server, max_attempts=1000, backoff_base=0.02, backoff_max=0.05)

    async with running(alerter) as task:
        for n in range(3):
            alerter.offer(error_event(f"alert {n}"))
        await eventually(lambda: alerter.stats.retried >= 1)
        await alerter.close()
        assert task.done()
        assert alerter.stats.dropped == 3  # one in flight, two queued
        await alerter.drain(timeout=1)  # nothing left to wait for

    assert alerter.stats.sent == 0


async def test_close_as_a_connection_is_refused_stops_the_sender(
    smtp_server_factory: SmtpServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cancellation must not be lost inside aiosmtplib (asyncio.wait_for on
    # Python 3.11) and taken for one more refused attempt: see the AlertService test.
    server = smtp_server_factory(start=False)
    alerter = alerter_for(server, max_attempts=1000)
    closing = close_as_a_connection_is_refused(monkeypatch, "EmailAlerter.run", alerter.close)
    task = asyncio.create_task(alerter.run())
    alerter.offer(error_event())
    await eventually(lambda: bool(closing))

    await asyncio.wait({task, *closing}, timeout=3.0)
    assert closing[0].done() and task.done(), "close() did not stop the sender"
    closing[0].result()
    assert (alerter.stats.sent, alerter.stats.retried, alerter.stats.dropped) == (0, 0, 1)


async def test_drain_timeout_raises_delivery_error(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory(start=False)
    alerter = alerter_for(server, max_attempts=1000, backoff_base=0.05, backoff_max=0.1)

    async with running(alerter):
        alerter.offer(error_event())
        with pytest.raises(DeliveryError):
            await alerter.drain(timeout=0.2)


async def test_envelope_uses_bare_configured_addresses(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory()
    alerter = alerter_for(server, sender=f"logpipe <{SENDER}>", to=[f"Ops Team <{OPS}>"])

    async with running(alerter):
        alerter.offer(error_event())
        await alerter.drain(timeout=5)

    (received,) = server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (OPS,))
    assert received.parsed()["To"] == f"Ops Team <{OPS}>"


async def test_password_never_appears_in_repr_or_logs(
    smtp_server_factory: SmtpServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory()
    settings = SmtpSettings(
        host=server.host, port=server.port, username="logpipe", password=SECRET, timeout=2.0
    )
    alerter = alerter_for(server, settings=settings)
    caplog.set_level(logging.DEBUG)

    # The test server offers no AUTH: login fails, permanently, at once.
    async with running(alerter):
        alerter.offer(error_event())
        await alerter.drain(timeout=5)

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert alerter.stats.failed == 1
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.__dict__)
