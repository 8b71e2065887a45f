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

Failure modes for tests: ``stop()`` refuses connections; ``respond_with("451
...")`` or ``"550 ..."`` answers a message with an error; ``respond_with(STALL)``
takes a message's DATA and never answers it; ``stall()`` keeps the port open
but never says a word, not even the greeting (a hung server or a black-holing
firewall), until ``start()`` or ``stop()``.
"""

from __future__ import annotations

import asyncio
import socket
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
STALL = "stall"
"""A reply for :meth:`RecordingSMTP.respond_with`: take the DATA, never answer."""


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
        self._staller: _Staller | None = None

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
        """Whether the server is listening and answering."""
        return self._controller is not None

    @property
    def stalled(self) -> bool:
        """Whether the port is held open by :meth:`stall`."""
        return self._staller is not None

    @property
    def held_connections(self) -> int:
        """Connections accepted (and never answered) since :meth:`stall`."""
        return self._staller.accepted if self._staller is not None else 0

    def stall(self) -> None:
        """Accept connections and never answer them, until :meth:`start` or :meth:`stop`.

        Stops the SMTP server if it runs; the held connections are closed when
        the stall ends.
        """
        self._stop_smtp()
        if self._staller is None:
            self._staller = _Staller(self.host, self.port)

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
        """Start listening (ending a stall); returns once the server answers."""
        if self._controller is not None:
            raise RuntimeError("RecordingSMTP is already running")
        self._stop_staller()
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
        """Stop listening (and any stall) and join the server thread; safe to call twice."""
        self._stop_staller()
        self._stop_smtp()

    def _stop_smtp(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _stop_staller(self) -> None:
        staller, self._staller = self._staller, None
        if staller is not None:
            staller.close()

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
        reply = self._server._receive(envelope.mail_from or "", list(envelope.rcpt_tos), data)
        if reply == STALL:
            # Never answer; stop() cancels this along with the server's tasks.
            await asyncio.Event().wait()
        return reply


class _Staller:
    """A listening socket that accepts connections and never sends a byte."""

    def __init__(self, host: str, port: int) -> None:
        # create_server sets SO_REUSEADDR: the port was just used by the SMTP server.
        self._socket = socket.create_server((host, port))
        self._socket.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="smtp-staller", daemon=True)
        self._thread.start()

    @property
    def accepted(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self._socket.close()
        for connection in self._held:
            connection.close()
