"""send_message's guards that need no SMTP server: the EHLO name lookup."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from logpipe.alerts import smtp


async def test_slow_ehlo_name_lookup_is_bounded_by_the_timeout_and_retried_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def slow_getfqdn(name: str = "") -> str:
        release.wait(5)  # a DNS server that does not answer
        return "host.example.com"

    monkeypatch.setattr(smtp, "_fqdn", None)
    monkeypatch.setattr(socket, "getfqdn", slow_getfqdn)
    started = time.monotonic()
    assert await smtp._local_hostname(0.1) == socket.gethostname()
    assert time.monotonic() - started < 1.0
    release.set()

    assert await smtp._local_hostname(1.0) == "host.example.com"
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "other.example.com")
    assert await smtp._local_hostname(1.0) == "host.example.com"  # looked up once
