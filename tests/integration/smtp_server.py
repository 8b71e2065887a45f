"""Reusable SMTP fixtures: real aiosmtpd servers on free loopback ports.

The server itself is :class:`logpipe.devservers.smtp.RecordingSMTP` (in the
package, because ``logpipe demo`` needs it too); this module only ties its life
to a test. Use it from a test module with
``from tests.integration.smtp_server import smtp_server_factory``, or from
``tests/conftest.py`` the same way to share it with every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

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
