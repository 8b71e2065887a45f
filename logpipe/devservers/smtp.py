"""A real SMTP server that records what it receives, for tests and ``logpipe demo``.

:class:`RecordingSMTP` runs aiosmtpd's threaded ``Controller`` on a loopback
port, keeps every accepted message, and can be told how to answer the next
messages (``451`` to exercise retries, ``550`` for a permanent refusal).

aiosmtpd is a development dependency only (the ``dev`` extra), so it is imported
lazily, inside :meth:`RecordingSMTP.start`: importing this module costs nothing
in a production install, and a missing aiosmtpd is reported only when a
catcher is actually started.

The server runs in its own thread with its own event loop, so it keeps
answering while the caller's loop is busy (or blocked in a test). Its state is
shared across the two threads under a lock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from logpipe.devservers import free_port

ACCEPT = "250 OK"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message the server accepted: envelope and raw bytes as received."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    def parsed(self) -> EmailMessage:
        """The message parsed back from its bytes, as a mail client would see it."""
        message = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)  # guaranteed by policy.default
        return message


class RecordingSMTP:
    """An SMTP catcher on ``host:port`` (a free port when ``port`` is None).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The port
    is chosen at construction, so a client can be pointed at it before the
    server starts (to see "connection refused" first). :meth:`start` blocks
    until the server answers; from async code, run it with
    ``asyncio.to_thread``.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, ready_timeout: float = 10.0
    ) -> None:
        self.host = host
        self.port = free_port(host) if port is None else port
        self._ready_timeout = ready_timeout
        self._lock = threading.Lock()
        self._replies: deque[str] = deque()
        self._default_reply = ACCEPT
        self._messages: list[ReceivedMessage] = []
        self._attempts = 0
        self._controller: Any = None

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The messages accepted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> int:
        """How many messages reached the DATA stage, accepted or not."""
        with self._lock:
            return self._attempts

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._controller is not None

    def respond_with(self, *replies: str, then: str = ACCEPT) -> None:
        """Answer the next messages with ``replies`` in order, then with ``then``.

        A reply is an SMTP status line such as ``"451 4.3.0 Try later"``; a
        message is recorded only when its reply starts with ``2``.
        """
        with self._lock:
            self._replies = deque(replies)
            self._default_reply = then

    def clear(self) -> None:
        """Forget the messages and attempts seen so far."""
        with self._lock:
            self._messages.clear()
            self._attempts = 0

    def start(self) -> None:
        """Start listening; returns once the server answers."""
        if self._controller is not None:
            raise RuntimeError("RecordingSMTP is already running")
        # Lazy import: aiosmtpd is a dev dependency (see the module docstring).
        from aiosmtpd.controller import Controller

        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ready_timeout=self._ready_timeout,
            # A fixed name: the default is socket.getfqdn(), a DNS lookup that
            # can take seconds in a container.
            server_hostname="logpipe-devserver",
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening and join the server thread; safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> RecordingSMTP:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _receive(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> str:
        """Decide the reply to one message and record it if accepted."""
        with self._lock:
            self._attempts += 1
            reply = self._replies.popleft() if self._replies else self._default_reply
            if reply.startswith("2"):
                self._messages.append(ReceivedMessage(mail_from, tuple(rcpt_tos), data))
            return reply


class _Handler:
    """aiosmtpd handler: hands each message to its :class:`RecordingSMTP`."""

    def __init__(self, server: RecordingSMTP) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # aiosmtpd's hook name; original_content is the bytes as received, before
        # any decoding.
        data = envelope.original_content or b""
        return self._server._receive(envelope.mail_from or "", list(envelope.rcpt_tos), data)
