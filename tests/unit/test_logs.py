"""logpipe's log output: secrets registered from the config never reach it."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from logpipe import logs
from logpipe.config.alerts import SmtpConfig
from logpipe.config.models import ElasticsearchConfig, OutputConfig

API_KEY = "aWQtMTIzOmtleS00NTY="
ES_PASSWORD = "es-pw-0123"
SMTP_PASSWORD = 'smtp "quoted" \\ pw'


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(autouse=True)
def no_secrets_registered() -> Iterator[None]:
    saved = list(logs._secrets)
    logs._secrets.clear()
    yield
    logs._secrets[:] = saved


def emit(formatter: logging.Formatter, message: str, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("logpipe.test_logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.debug(message, *args, extra=extra)
    return stream.getvalue()


def register_all() -> None:
    logs.hide_secrets(
        OutputConfig(
            elasticsearch=ElasticsearchConfig(hosts=["https://es:9200"], api_key=SecretStr(API_KEY))
        )
    )
    logs.hide_secrets(
        ElasticsearchConfig(
            hosts=["https://es:9200"], username="writer", password=SecretStr(ES_PASSWORD)
        )
    )
    logs.hide_secrets(
        SmtpConfig(host="mail", username="ops@example.com", password=SecretStr(SMTP_PASSWORD))
    )


LEAKS = [
    API_KEY,
    b64(API_KEY),
    ES_PASSWORD,
    b64(f"writer:{ES_PASSWORD}"),  # Authorization: Basic
    SMTP_PASSWORD,
    b64(f"\0ops@example.com\0{SMTP_PASSWORD}"),  # SMTP AUTH PLAIN
    b64(SMTP_PASSWORD),  # SMTP AUTH LOGIN
]


@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()])
def test_registered_secrets_are_redacted_in_message_and_extras(
    formatter: logging.Formatter, leak: str
) -> None:
    register_all()
    line = emit(formatter, "> Authorization: %s", leak, header=leak, nested={"v": [leak]})
    assert leak not in line
    assert json.dumps(leak)[1:-1] not in line  # nor JSON-escaped
    assert line.count(logs.REDACTED) == 3


def test_without_registration_nothing_is_touched() -> None:
    line = emit(logs.JsonFormatter(), "value %s", ES_PASSWORD)
    assert ES_PASSWORD in line


def test_unset_and_tiny_secrets_do_not_redact_everything() -> None:
    logs.hide_secrets(SmtpConfig(host="mail", username="u", password=SecretStr("x")))
    line = emit(logs.TextFormatter(), "bulk_settled", items=3)
    assert logs.REDACTED not in line
    assert "items=3" in line


def test_secret_in_a_traceback_is_redacted() -> None:
    register_all()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("logpipe.test_logs.tb")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        raise ValueError(f"bad header Basic {b64(f'writer:{ES_PASSWORD}')}")
    except ValueError:
        logger.exception("request_failed")
    doc = json.loads(stream.getvalue())
    assert "Basic [redacted]" in doc["error.stack_trace"]
