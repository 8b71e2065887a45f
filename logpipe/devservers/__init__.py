"""Throw-away servers for development, tests and ``logpipe demo``.

Nothing here is used by ``logpipe run``; the servers' libraries are development
dependencies and are imported only when a server is started.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now.

    Another process could take it before it is used; on a test machine that is
    rare enough, and it is the only way to know the port before a server binds.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
