"""AlertService against a real SMTP server (aiosmtpd on loopback).

Windows, ticks and backoffs are a fraction of a second so that storms, outages
and restarts run quickly; the state machine is the same at any scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from logpipe.alerts import service as service_module
from logpipe.alerts.compose import MailSettings
from logpipe.alerts.delivery import DeliverySettings, SpoolSender
from logpipe.alerts.policy import PolicySettings
from logpipe.alerts.rules import AlertRule
from logpipe.alerts.service import AlertService
from logpipe.alerts.smtp import SmtpSettings
from logpipe.devservers.smtp import STALL, ReceivedMessage, RecordingSMTP
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
KIBANA = "https://kibana.example.com"


def error_event(
    n: int = 0, message: str = "Database error recording daily input for SPK {n}"
) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-27T10:00:00.123Z",
        "log": {"level": "error", "logger": "app.api.production"},
        "message": message.format(n=n),
        "error": {
            "type": "OperationalError",
            "stack_trace": "Traceback (most recent call last):\nOperationalError: boom",
        },
        "http": {"request": {"id": f"req-{n}"}},
        "user": {"id": str(n)},
    }


def distinct(n: int) -> dict[str, Any]:
    """An error of its own group (numbers are masked, so the words differ)."""
    return error_event(n, message=f"fault {'abcdefghijklmnopqrstuvwxyz'[n]}" + " {n}")


def service_for(
    server: RecordingSMTP,
    spool_dir: Path,
    *,
    smtp_timeout: float = 2.0,
    window: float = 0.5,
    **overrides: Any,
) -> AlertService:
    options: dict[str, Any] = {
        "spool_dir": spool_dir,
        "policy": PolicySettings(window_seconds=window),
        "delivery": DeliverySettings(
            backoff_base=0.02, backoff_max=0.1, tick_seconds=0.02, save_interval=0.05
        ),
    }
    return AlertService(
        SmtpSettings(host=server.host, port=server.port, timeout=smtp_timeout),
        MailSettings(sender=SENDER, to=(OPS,), kibana_url=KIBANA),
        **(options | overrides),
    )


@contextlib.asynccontextmanager
async def running(service: AlertService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.run())
    try:
        yield task
    finally:
        await service.close()
        # Bounded: a task that outlives close() fails the test, it does not hang it.
        await asyncio.wait({task}, timeout=1.0)
        assert task.done(), "close() returned with the service's tasks still running"


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def counts(messages: list[ReceivedMessage]) -> list[tuple[str, int]]:
    return [
        (str(m.parsed()["X-Logpipe-Kind"]), int(str(m.parsed()["X-Logpipe-Count"])))
        for m in messages
    ]


def total(messages: list[ReceivedMessage]) -> int:
    return sum(count for _, count in counts(messages))


# -- storms ------------------------------------------------------------------------


async def test_storm_of_10000_errors_is_a_handful_of_emails_whose_counts_add_up(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    service = service_for(server, tmp_path, window=0.3, queue_size=10_000)

    async with running(service):
        for n in range(10_000):
            service.offer(error_event(n))
            if n % 500 == 0:
                await asyncio.sleep(0.01)  # indexing goes on, windows end meanwhile
        await service.drain(timeout=30)

    assert total(server.messages) == 10_000
    assert 2 <= len(server.messages) <= 40
    assert counts(server.messages)[0] == ("first", 1)
    assert service.stats.unqueued == 0
    digest = server.messages[1].parsed()
    assert "more)" in str(digest["Subject"])
    plain = digest.get_body(("plain",))
    assert plain is not None and "Sample request ids: req-" in plain.get_content()


async def test_storm_beyond_the_queue_is_still_counted_exactly(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    service = service_for(server, tmp_path, queue_size=100)

    async with running(service):
        for n in range(10_000):  # no await: the queue fills at once
            service.offer(error_event(n))
        await service.drain(timeout=30)

    assert service.stats.unqueued == 9_900
    assert total(server.messages) == 10_000
    subjects = [str(m.parsed()["Subject"]) for m in server.messages]
    assert any("alert queue was full" in s for s in subjects)


# -- delivery -----------------------------------------------------------------------


async def test_first_error_reaches_ops_once_with_details_and_a_kibana_link(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    service = service_for(server, tmp_path)

    async with running(service):
        service.offer(error_event(4711))
        service.offer({"log": {"level": "info"}, "message": "not an alert"})
        await service.drain(timeout=10)

    (received,) = server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (OPS,))
    message = received.parsed()
    assert message["Subject"] == "Critical Error: Database error recording daily input for SPK 4711"
    plain = message.get_body(("plain",))
    assert plain is not None
    content = plain.get_content()
    assert "OperationalError: boom" in content
    assert f"Open in Kibana: {KIBANA}/app/discover#/?_g=" in content
    assert list((tmp_path / "pending").iterdir()) == []


async def test_smtp_down_then_back_delivers_each_alert_exactly_once(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory(start=False)
    service = service_for(server, tmp_path)

    async with running(service):
        for n in range(3):
            service.offer(distinct(n))
        await eventually(lambda: service.stats.retried >= 3)
        assert service.stats.sent == 0
        assert len(list((tmp_path / "pending").iterdir())) == 3
        await asyncio.to_thread(server.start)
        await service.drain(timeout=10)

    subjects = sorted(str(m.parsed()["Subject"]) for m in server.messages)
    assert subjects == [f"Critical Error: fault {c} {n}" for n, c in enumerate("abc")]
    assert len({m.parsed()["Message-ID"] for m in server.messages}) == 3
    assert (service.stats.sent, service.stats.failed) == (3, 0)


@pytest.mark.parametrize("reply", ["451 4.3.0 Try again later", "421 4.7.0 Closing connection"])
async def test_transient_reply_is_retried_and_delivered_once(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path, reply: str
) -> None:
    server = smtp_server_factory()
    server.respond_with(reply, reply)
    service = service_for(server, tmp_path)

    async with running(service):
        service.offer(error_event())
        await service.drain(timeout=10)

    assert len(server.messages) == 1
    assert server.attempts == 3
    assert (service.stats.sent, service.stats.retried, service.stats.failed) == (1, 2, 0)


async def test_550_moves_the_alert_to_failed_and_the_next_one_is_delivered(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    server.respond_with("550 5.7.1 Message rejected")
    service = service_for(server, tmp_path)

    async with running(service) as task:
        service.offer(distinct(0))
        await service.drain(timeout=10)
        service.offer(distinct(1))
        await service.drain(timeout=10)
        assert not task.done()

    (received,) = server.messages
    assert received.parsed()["Subject"] == "Critical Error: fault b 1"
    (failed,) = (tmp_path / "failed").iterdir()
    kept = json.loads(failed.read_bytes())
    assert "550" in kept["error"]
    assert kept["outgoing"]["title"] == "fault a 0"
    assert (service.stats.sent, service.stats.failed, service.stats.retried) == (1, 1, 0)


async def test_drain_times_out_with_delivery_error_and_keeps_the_spool(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory(start=False)
    service = service_for(server, tmp_path)

    async with running(service):
        service.offer(error_event())
        with pytest.raises(DeliveryError):
            await service.drain(timeout=0.3)

    assert len(list((tmp_path / "pending").iterdir())) == 1


# -- restarts ------------------------------------------------------------------------


async def test_restart_with_spooled_alerts_delivers_them_once(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory(start=False)
    before = service_for(server, tmp_path)
    async with running(before):
        for n in range(3):
            before.offer(distinct(n))
        await eventually(lambda: before.spooled == 3)
    assert before.stats.sent == 0

    await asyncio.to_thread(server.start)
    after = service_for(server, tmp_path)
    async with running(after):
        await after.drain(timeout=10)

    assert sorted(str(m.parsed()["Subject"]) for m in server.messages) == [
        "Critical Error: fault a 0",
        "Critical Error: fault b 1",
        "Critical Error: fault c 2",
    ]
    assert after.stats.sent == 3


async def test_restart_with_a_pending_digest_reports_its_count_once(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    before = service_for(server, tmp_path, window=60)
    async with running(before):
        for n in range(5):
            before.offer(error_event(n))
        await before.drain(timeout=10, flush=False)  # the first goes out, 4 stay pending
    assert counts(server.messages) == [("first", 1)]

    after = service_for(server, tmp_path, window=60)
    assert after.pending_events == 4
    async with running(after):
        await after.drain(timeout=10)

    assert counts(server.messages) == [("first", 1), ("digest", 4)]


async def test_alert_in_flight_at_a_crash_is_resent_once_with_the_same_message_id(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    server.respond_with(STALL)  # takes the DATA, never answers: the send hangs
    before = service_for(server, tmp_path, smtp_timeout=30)
    async with running(before):
        before.offer(error_event())
        await eventually(lambda: server.attempts == 1)
        (spooled,) = (tmp_path / "pending").iterdir()
    # close() cancelled the send mid-flight, like a kill would.

    after = service_for(server, tmp_path)
    async with running(after):
        await after.drain(timeout=10)

    (received,) = server.messages
    assert received.parsed()["Message-ID"] == f"<logpipe.{spooled.stem}@example.com>"


async def test_full_spool_merges_into_a_summary_and_counts_add_up(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory(start=False)
    service = service_for(server, tmp_path, spool_max_entries=2)

    async with running(service):
        for n in range(6):
            service.offer(distinct(n))
        await eventually(lambda: service.stats.spooled == 6)
        assert service.spooled == 3
        await asyncio.to_thread(server.start)
        await service.drain(timeout=10)

    assert len(server.messages) == 3
    assert total(server.messages) == 6
    # One of them is the summary. Not necessarily the last: an e-mail whose first
    # attempt met the server still starting is retried after the others.
    groups = [message.parsed()["X-Logpipe-Group"] for message in server.messages]
    assert groups.count("spool-summary") == 1, groups


async def test_close_as_a_connection_is_refused_stops_the_sender_and_keeps_the_spool(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What hung test_restart_with_spooled_alerts_delivers_them_once for 120 s on a
    # loaded CI machine: close() cancelled the sender in the loop iteration in
    # which its connection was refused. aiosmtplib's asyncio.wait_for (Python
    # 3.11) then raised the refusal and dropped the cancellation, the sender
    # took it for one more failed attempt and retried forever, and close()
    # waited for it forever.
    server = smtp_server_factory(start=False)
    service = service_for(server, tmp_path)
    closing = close_as_a_connection_is_refused(monkeypatch, "SpoolSender.run", service.close)
    task = asyncio.create_task(service.run())
    service.offer(distinct(0))
    await eventually(lambda: bool(closing))

    started = time.monotonic()
    await asyncio.wait({task, *closing}, timeout=3.0)
    assert closing[0].done() and task.done(), "close() did not stop the sender"
    assert time.monotonic() - started < 2.0
    closing[0].result()
    assert (service.stats.sent, service.stats.retried, service.stats.failed) == (0, 0, 0)
    assert len(list((tmp_path / "pending").iterdir())) == 1  # kept for the next start


async def test_close_gives_up_on_a_task_that_ignores_cancellation(
    smtp_server_factory: SmtpServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()

    async def stubborn(self: SpoolSender) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await stop.wait()

    monkeypatch.setattr(SpoolSender, "run", stubborn)
    monkeypatch.setattr(service_module, "CLOSE_TIMEOUT", 0.2)
    service = service_for(smtp_server_factory(start=False), tmp_path)
    task = asyncio.create_task(service.run())
    service.offer(distinct(0))
    await eventually(lambda: service.spooled == 1)

    started = time.monotonic()
    await asyncio.wait_for(service.close(), timeout=3.0)
    assert time.monotonic() - started < 1.0
    assert "alert_tasks_not_stopped" in caplog.messages
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- isolation ----------------------------------------------------------------------


async def test_stalled_smtp_server_never_blocks_offer_or_the_event_loop(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    server.stall()  # accepts the connection, never sends a greeting
    service = service_for(server, tmp_path, smtp_timeout=3.0, queue_size=20_000)

    async with running(service):
        service.offer(error_event(0))
        await eventually(lambda: server.held_connections >= 1)  # the sender is stuck

        durations = []
        for n in range(1, 10_001):
            started = time.perf_counter()
            service.offer(error_event(n))
            durations.append(time.perf_counter() - started)
        # The loop keeps turning while the sender waits on the silent server.
        started = time.perf_counter()
        for _ in range(20):
            await asyncio.sleep(0.005)
        loop_lag = time.perf_counter() - started - 20 * 0.005

        assert service.stats.sent == 0
        assert server.held_connections >= 1
        await asyncio.to_thread(server.start)  # the stall ends
        await service.drain(timeout=30)

    # offer() is synchronous: it cannot await the sender. The bounds are loose
    # enough for a busy CI machine (a GC pause or a thread switch shows up as
    # one slow call) yet far below the 3 s the sender is stuck for.
    durations.sort()
    assert durations[len(durations) // 2] < 0.001
    assert durations[int(len(durations) * 0.99)] < 0.005
    assert durations[-1] < 0.5
    assert loop_lag < 1.0
    assert total(server.messages) == 10_001


# -- content --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "boom\r\nBcc: evil@attacker.test",
        "boom =?UTF-8?Q?=0D=0ABcc:_evil@attacker.test?=",
        "boom =?UTF-8?Q?=0A?=",
        "boom\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<h1>fake</h1>",
    ],
)
async def test_injected_headers_reach_no_extra_recipient(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path, message: str
) -> None:
    server = smtp_server_factory()
    service = service_for(server, tmp_path)

    async with running(service):
        service.offer(error_event(message=message))
        await service.drain(timeout=10)

    (received,) = server.messages
    assert received.rcpt_tos == (OPS,)
    parsed = received.parsed()
    assert "Bcc" not in parsed
    assert parsed.get_all("To") == [OPS]
    assert "\n" not in str(parsed["Subject"]).strip()
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


async def test_log_text_is_escaped_in_the_html_part(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    service = service_for(server, tmp_path)

    async with running(service):
        service.offer(error_event(message="<script>alert('x')</script> & <img src=x>"))
        await service.drain(timeout=10)

    html_part = server.messages[0].parsed().get_body(("html",))
    assert html_part is not None
    html_body = html_part.get_content()
    assert "<script>" not in html_body and "<img" not in html_body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img src=x&gt;" in html_body


async def test_rules_route_recipients_and_the_first_match_wins(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    rules = [
        AlertRule(
            name="database",
            when={"log.logger": "app.database*"},
            to=("dba@example.com",),
            cc=(OPS,),
        ),
        AlertRule(name="default"),
    ]
    service = service_for(server, tmp_path, rules=rules)

    async with running(service):
        database_error = error_event(1, message="connection lost")
        database_error["log"]["logger"] = "app.database.pool"
        service.offer(database_error)
        await service.drain(timeout=10)
        service.offer(error_event(2))
        await service.drain(timeout=10)

    first, second = server.messages
    assert first.rcpt_tos == ("dba@example.com", OPS)
    assert first.parsed()["Cc"] == OPS
    assert second.rcpt_tos == (OPS,)


async def test_self_alerts_go_through_the_same_grouping(
    smtp_server_factory: SmtpServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory()
    service = service_for(server, tmp_path, self_fields={"host": {"name": "pod-1"}})

    async with running(service):
        for seconds in (120, 180, 240):
            service.self_alert(
                "elasticsearch_unreachable",
                f"Elasticsearch unreachable for {seconds} s",
                {"hosts": "http://es:9200"},
            )
        await service.drain(timeout=10)

    assert counts(server.messages) == [("first", 1), ("digest", 2)]
    first = server.messages[0].parsed()
    assert first["Subject"] == "Critical Error: Elasticsearch unreachable for 120 s"
    plain = first.get_body(("plain",))
    assert plain is not None
    content = plain.get_content()
    assert "Logger:" in content and "logpipe" in content
    assert "elasticsearch_unreachable" in content
    assert "hosts: http://es:9200" in content
    assert "pod-1" in content
