"""Reusable SMTP fixtures: real aiosmtpd servers on free loopback ports.

The server itself is :class:`logpipe.devservers.smtp.RecordingSMTP` (in the
package, because ``logpipe demo`` needs it too); this module only ties its life
to a test. Use it from a test module with
``from tests.integration.smtp_server import smtp_server_factory``, or from
``tests/conftest.py`` the same way to share it with every test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import pytest

from logpipe.devservers.smtp import RecordingSMTP


class SmtpServerFactory(Protocol):
    """Makes a :class:`RecordingSMTP`, started unless ``start=False``."""

    def __call__(self, *, start: bool = True, port: int | None = None) -> RecordingSMTP: ...


@pytest.fixture
def smtp_server_factory() -> Iterator[SmtpServerFactory]:
    """Make SMTP servers on demand; every one is stopped when the test ends.

    ``start=False`` gives a server whose port is chosen but not yet listening:
    clients pointed at it see "connection refused" until ``start()`` is called.
    """
    servers: list[RecordingSMTP] = []

    def make(*, start: bool = True, port: int | None = None) -> RecordingSMTP:
        server = RecordingSMTP(port=port)
        servers.append(server)
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


def close_as_a_connection_is_refused(
    monkeypatch: pytest.MonkeyPatch, sender: str, close: Callable[[], Awaitable[None]]
) -> list[asyncio.Task[None]]:
    """Make ``close()`` cancel the sender just as its next connection is refused.

    ``sender`` is the qualified name of the sender task's coroutine
    (``"SpoolSender.run"``). The next refused connection starts ``close()`` and
    raises its ``ConnectionRefusedError`` only once the sender has been asked to
    cancel, so the refusal and the cancellation reach the sender in the same
    loop iteration: the race a loaded machine runs into now and then, made
    certain. Returns a list that then holds the ``close()`` task.
    """
    loop = asyncio.get_running_loop()
    connect = loop.create_connection
    closing: list[asyncio.Task[None]] = []

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        try:
            return await connect(*args, **kwargs)
        except OSError:
            if not closing:
                (victim,) = (
                    task
                    for task in asyncio.all_tasks()
                    if getattr(task.get_coro(), "__qualname__", None) == sender
                )
                closing.append(asyncio.ensure_future(close()))
                while not victim.cancelling():
                    await asyncio.sleep(0)
            raise

    monkeypatch.setattr(loop, "create_connection", create_connection)
    return closing
