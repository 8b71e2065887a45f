"""No credential ever appears in logpipe's output, not even at debug.

``logpipe run --once --log-level debug`` ships an ERROR line (so an alert
e-mail goes out too) with every credential set: an Elasticsearch API key or
username and password, and an SMTP login. Each credential must really be used
(the proxy sees the ``Authorization`` header, the SMTP server the ``AUTH``),
and none may appear in stdout or stderr: neither as written, nor base64-encoded
as the clients send them, nor JSON-escaped.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from logpipe.devservers import free_port
from tests.integration.helpers import EsTarget, app_line, write_pipeline
from tests.integration.proxies import TcpProxy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOGPIPE = [sys.executable, "-m", "logpipe", "run"]
SMTP_USER = "alerts@qutykarunia.com"
SMTP_PASSWORD = 'smtp-Pa55"word\\x/y'  # a quote and a backslash: JSON escapes them
API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="  # base64(id:key)
ES_USER = "logpipe_writer"
ES_PASSWORD = "es-Pa55word+with/slashes"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class AuthSMTP:
    """aiosmtpd with AUTH (PLAIN/LOGIN, no TLS on loopback), recording logins and messages."""

    port: int = field(default_factory=free_port)
    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        login, password = data.login.decode(), data.password.decode()
        with self._lock:
            self.logins.append((login, password))
        return AuthResult(success=(login, password) == (SMTP_USER, SMTP_PASSWORD))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self._lock:
            self.messages.append(envelope.original_content or b"")
        return "250 OK"


@pytest.fixture
def auth_smtp() -> Iterator[AuthSMTP]:
    from aiosmtpd.controller import Controller

    server = AuthSMTP()
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        server_hostname="logpipe-test",
        authenticator=server.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def recording_proxy(es_server: EsTarget) -> Iterator[TcpProxy]:
    if not es_server.url.startswith("http://"):
        pytest.skip("the recording proxy forwards plain HTTP; LOGPIPE_TEST_ES_URL is not http://")
    with TcpProxy(int(es_server.url.rsplit(":", 1)[1].rstrip("/")), record=True) as proxy:
        yield proxy


def run_debug(
    tmp_path: Path, log_dir: Path, prefix: str, smtp: AuthSMTP, env: dict[str, str]
) -> str:
    """All output of ``logpipe run --once --log-level debug`` (exit 0 asserted)."""
    (log_dir / "app.log").write_text(
        app_line("2026-11-27T08:00:00", "INFO", "Daily input received")
        + app_line("2026-11-27T08:00:01", "ERROR", "Database error recording daily input")
    )
    path = write_pipeline(tmp_path, log_dir, prefix, smtp_port=smtp.port)
    path.write_text(
        path.read_text().replace(
            "      port: ",
            "      username: ${SMTP_USERNAME}\n      password: ${SMTP_PASSWORD}\n      port: ",
        )
    )
    result = subprocess.run(
        [*LOGPIPE, "--once", "--timeout", "60", "--log-level", "debug", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
        env={**os.environ, "SMTP_USERNAME": SMTP_USER, "SMTP_PASSWORD": SMTP_PASSWORD, **env},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def forms(secret: str) -> set[str]:
    """How a secret could show up: as is, base64, JSON-escaped."""
    return {secret, b64(secret), json.dumps(secret)[1:-1]}


def assert_absent(output: str, secrets: set[str]) -> None:
    found = sorted(s for s in secrets if s in output)
    assert found == [], f"secrets in the output: {found}"


def test_api_key_and_smtp_password_never_appear_at_debug(
    tmp_path: Path,
    log_dir: Path,
    index_prefix: str,
    recording_proxy: TcpProxy,
    auth_smtp: AuthSMTP,
) -> None:
    env = {"ES_URL": recording_proxy.url, "ES_API_KEY": API_KEY}
    output = run_debug(tmp_path, log_dir, index_prefix, auth_smtp, env)

    # The credentials were used: the header on the wire, the login at the server.
    assert f"ApiKey {API_KEY}\r\n".encode() in recording_proxy.sent
    assert auth_smtp.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert len(auth_smtp.messages) == 1
    # Debug output really is on (the HTTP client's own lines are there).
    assert '"log.logger":"elastic_transport.transport"' in output
    assert_absent(
        output,
        forms(API_KEY)
        | forms(SMTP_PASSWORD)
        | {b64(f"\0{SMTP_USER}\0{SMTP_PASSWORD}"), b64(SMTP_PASSWORD)},
    )


def test_basic_auth_password_never_appears_at_debug(
    tmp_path: Path,
    log_dir: Path,
    index_prefix: str,
    recording_proxy: TcpProxy,
    auth_smtp: AuthSMTP,
) -> None:
    env = {"ES_URL": recording_proxy.url, "ES_USERNAME": ES_USER, "ES_PASSWORD": ES_PASSWORD}
    output = run_debug(tmp_path, log_dir, index_prefix, auth_smtp, env)

    basic = b64(f"{ES_USER}:{ES_PASSWORD}")
    assert f"Basic {basic}\r\n".encode() in recording_proxy.sent
    assert auth_smtp.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert_absent(output, forms(ES_PASSWORD) | {basic} | forms(SMTP_PASSWORD))
