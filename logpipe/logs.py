"""logpipe's own log output: JSON lines (ECS-shaped) by default, plain text on a TTY.

Messages are event names (``file_rotated``, ``bulk_retry_scheduled``) and the
context rides in ``extra``; configuration values are never logged. At debug the
HTTP and SMTP clients' own loggers are on too, and they are not ours: so every
line is also scrubbed of the configured secrets and of the forms they travel in
(base64 in an ``Authorization`` header or an SMTP ``AUTH``), once
:func:`hide_secrets` has been told about them.
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

REDACTED = "[redacted]"
_secrets: list[str] = []  # longest first, so no secret is half-replaced by a shorter one
_MIN_SECRET = 4  # an empty or one-letter "password" would redact every line to noise


def hide_secrets(config: Any) -> None:
    """Redact every secret in ``config`` (a pydantic model tree) from all log output.

    Each ``SecretStr`` is hidden as written, base64-encoded (an API key as the
    client sends it), and JSON-escaped; a model with ``username`` and
    ``password`` also hides the pair as HTTP basic auth and SMTP ``AUTH PLAIN``
    send it.
    """
    forms = set(_secret_forms(config))
    # As JSON strings and Python reprs (a dict in the text format's extras) show them.
    forms.update(orjson.dumps(form).decode()[1:-1] for form in list(forms))
    forms.update(repr(form)[1:-1] for form in list(forms))
    _secrets[:] = sorted(
        {f for f in forms if len(f) >= _MIN_SECRET} | set(_secrets), key=len, reverse=True
    )


def _secret_forms(node: Any) -> Iterator[str]:
    from pydantic import BaseModel, SecretStr

    if isinstance(node, SecretStr):
        value = node.get_secret_value()
        yield value
        yield _b64(value)
    elif isinstance(node, BaseModel):
        username, password = getattr(node, "username", None), getattr(node, "password", None)
        if isinstance(username, str) and isinstance(password, SecretStr):
            secret = password.get_secret_value()
            yield _b64(f"{username}:{secret}")  # HTTP basic auth
            yield _b64(f"\0{username}\0{secret}")  # SMTP AUTH PLAIN
        for name in type(node).model_fields:
            yield from _secret_forms(getattr(node, name))
    elif isinstance(node, dict):
        for value in node.values():
            yield from _secret_forms(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _secret_forms(value)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One ECS-shaped JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
        }
        extras = _extras(record)
        if extras:
            doc["logpipe"] = extras
        if record.exc_info:
            doc["error.stack_trace"] = self.formatException(record.exc_info)
        return redact(orjson.dumps(doc, default=str).decode())


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        text = f"{when} {record.levelname.lower():7} {record.name} {record.getMessage()} {extras}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text.rstrip())


def setup_logging(level: str = "info", json_output: bool | None = None) -> None:
    """Send logpipe's logs to stderr, JSON unless stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = not sys.stderr.isatty() if json_output is None else json_output
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    # At debug, the HTTP and SMTP clients' own logs help too (one line per request,
    # node failures). Not "elastic_transport.node", which does not propagate: it
    # would print every bulk body in full. All of it goes through redact().
    names = ["logpipe", *(["elastic_transport", "aiosmtplib"] if level == "debug" else [])]
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
