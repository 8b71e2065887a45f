"""logpipe's own log output: JSON lines (ECS-shaped) by default, plain text on a TTY.

Messages are event names (``file_rotated``, ``bulk_retry_scheduled``) and the
context rides in ``extra``; configuration values are never logged, so secrets
cannot leak through here.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


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
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        text = f"{when} {record.levelname.lower():7} {record.name} {record.getMessage()} {extras}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text.rstrip()


def setup_logging(level: str = "info", json_output: bool | None = None) -> None:
    """Send logpipe's logs to stderr, JSON unless stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = not sys.stderr.isatty() if json_output is None else json_output
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    # At debug, the HTTP and SMTP clients' own logs help too (requests, responses).
    names = ["logpipe", *(["elastic_transport", "aiosmtplib"] if level == "debug" else [])]
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
