"""The application JSON parser, on lines as the backend's JSONFormatter writes them."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from logpipe.event import get_path
from logpipe.parsers.app_json import make_app_json_parser

parse = make_app_json_parser()

ABSENT = object()

SQLALCHEMY_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/erp/db.py", line 41, in connect\n'
    "    return engine.connect()\n"
    "           ^^^^^^^^^^^^^^^^\n"
    "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not connect to server\n"
    '\tIs the server running on host "db" and accepting TCP/IP connections on port 5432?\n'
    "(Background on this error at: https://sqlalche.me/e/14/e3q8)\n"
)
CHAINED_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/erp/orders.py", line 12, in load\n'
    "    return cache[key]\n"
    "KeyError: 'order-991'\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "/app/erp/orders.py", line 15, in load\n'
    "    raise LookupError(key)\n"
    "LookupError: order-991\n"
)


class JSONFormatter(logging.Formatter):
    """The backend's formatter, as described in the spec."""

    def format(self, record: logging.LogRecord) -> str:
        log_data: dict[str, Any] = {
            "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        if record.exc_info:
            log_data["exception"] = self.formatException(record.exc_info)
        for key in ("request_id", "user_id", "order_id"):
            if hasattr(record, key):
                log_data[key] = getattr(record, key)
        return json.dumps(log_data)


def line(**fields: Any) -> str:
    base: dict[str, Any] = {
        "timestamp": "2026-11-27T10:00:00.123456",
        "level": "INFO",
        "logger": "erp.api",
        "message": "GET /orders 200",
        "module": "views",
        "function": "list_orders",
        "line": 88,
    }
    base.update(fields)
    return json.dumps({key: value for key, value in base.items() if value is not ABSENT})


def assert_paths(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    for path, value in expected.items():
        if value is ABSENT:
            assert get_path(fields, path) is None, path
        else:
            assert get_path(fields, path) == value, path


def test_formatter_line_maps_every_field_to_ecs() -> None:
    text = line(request_id="req-7f3a", user_id=42, order_id=991)

    parsed = parse(text)

    assert parsed.tags == []
    assert parsed.timestamp == datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
    assert parsed.fields == {
        "@timestamp": "2026-11-27T10:00:00.123456Z",
        "log": {
            "level": "info",
            "logger": "erp.api",
            "origin": {"function": "list_orders", "file": {"line": 88}},
        },
        "message": "GET /orders 200",
        "http": {"request": {"id": "req-7f3a"}},
        "user": {"id": "42"},
        "app": {"module": "views", "order_id": 991},
    }


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_real_formatter_output_with_exception_round_trips() -> None:
    capture = _Capture()
    capture.setFormatter(JSONFormatter())
    logger = logging.getLogger("erp.db")
    logger.addHandler(capture)
    logger.propagate = False
    try:
        try:
            raise ConnectionError("db unreachable")
        except ConnectionError:
            logger.exception("connect failed", extra={"request_id": "req-1"})
    finally:
        logger.removeHandler(capture)
        logger.propagate = True
    (text,) = capture.lines

    parsed = parse(text)

    assert parsed.tags == []
    assert parsed.timestamp is not None
    assert abs(parsed.timestamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert_paths(
        parsed.fields,
        {
            "log.level": "error",
            "log.logger": "erp.db",
            "message": "connect failed",
            "error.type": "ConnectionError",
            "error.message": "db unreachable",
            "http.request.id": "req-1",
            "log.origin.function": "test_real_formatter_output_with_exception_round_trips",
            "app.module": "test_app_json",
        },
    )
    assert parsed.fields["error"]["stack_trace"].startswith("Traceback (most recent call last):")


@pytest.mark.parametrize(
    ("written", "expected_text", "expected_instant"),
    [
        (
            "2026-11-27T10:00:00.123456",
            "2026-11-27T10:00:00.123456Z",
            datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
        ),
        # isoformat() drops the fraction when microsecond == 0
        ("2026-11-27T10:00:00", "2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        (
            "2026-11-27T10:00:00.123",
            "2026-11-27T10:00:00.123Z",
            datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC),
        ),
        (
            "2026-11-27T10:00:00.5Z",
            "2026-11-27T10:00:00.5Z",
            datetime(2026, 11, 27, 10, 0, 0, 500000, tzinfo=UTC),
        ),
        (
            "2026-11-27T10:00:00.123456+07:00",
            "2026-11-27T03:00:00.123456Z",
            datetime(2026, 11, 27, 3, 0, 0, 123456, tzinfo=UTC),
        ),
        (
            "2026-11-27T00:30:00-02:30",
            "2026-11-27T03:00:00Z",
            datetime(2026, 11, 27, 3, tzinfo=UTC),
        ),
        (
            "2026-11-27T10:00:00.123456789",
            "2026-11-27T10:00:00.123456789Z",
            datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
        ),
        (
            "2026-11-27 10:00:00,250",
            "2026-11-27T10:00:00.250Z",
            datetime(2026, 11, 27, 10, 0, 0, 250000, tzinfo=UTC),
        ),
        (
            "2026-12-31T23:59:59.999999-01:00",
            "2027-01-01T00:59:59.999999Z",
            datetime(2027, 1, 1, 0, 59, 59, 999999, tzinfo=UTC),
        ),
    ],
)
def test_timestamp_is_utc_with_source_precision_and_z(
    written: str, expected_text: str, expected_instant: datetime
) -> None:
    parsed = parse(line(timestamp=written))

    assert parsed.tags == []
    assert parsed.fields["@timestamp"] == expected_text
    assert parsed.timestamp == expected_instant
    assert parsed.timestamp is not None and parsed.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    ["yesterday", "", "2026-13-01T00:00:00", "27/Nov/2026:10:00:00 +0000", 1764237600, True, {}],
)
def test_unparseable_timestamp_keeps_line_and_original_value(value: Any) -> None:
    parsed = parse(line(timestamp=value))

    assert parsed.tags == ["_timestampparsefailure"]
    assert parsed.timestamp is None
    assert "@timestamp" not in parsed.fields
    assert parsed.fields["app"]["timestamp"] == value
    assert parsed.fields["message"] == "GET /orders 200"


def test_missing_timestamp_is_tagged_but_shipped() -> None:
    parsed = parse(line(timestamp=ABSENT))

    assert parsed.tags == ["_timestampparsefailure"]
    assert parsed.timestamp is None
    assert "timestamp" not in parsed.fields["app"]
    assert parsed.fields["log"]["level"] == "info"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("ERROR", "error"),
        ("WARNING", "warning"),
        ("WARN", "warn"),
        ("CRITICAL", "critical"),
        ("INFO", "info"),
        ("DEBUG", "debug"),
        ("Level 5", "level 5"),
    ],
)
def test_level_is_lower_cased_as_written(written: str, expected: str) -> None:
    assert parse(line(level=written)).fields["log"]["level"] == expected


@pytest.mark.parametrize(
    ("stack", "expected_type", "expected_message"),
    [
        (
            SQLALCHEMY_TRACEBACK,
            "sqlalchemy.exc.OperationalError",
            "(psycopg2.OperationalError) could not connect to server\n"
            '\tIs the server running on host "db" and accepting TCP/IP connections on port 5432?\n'
            "(Background on this error at: https://sqlalche.me/e/14/e3q8)",
        ),
        (CHAINED_TRACEBACK, "LookupError", "order-991"),
        (
            'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
            "KeyboardInterrupt\n",
            "KeyboardInterrupt",
            ABSENT,
        ),
        ("ValueError: bad literal\n", "ValueError", "bad literal"),
        ("something went wrong: disk full", ABSENT, ABSENT),
        ("", ABSENT, ABSENT),
    ],
)
def test_exception_becomes_stack_trace_with_final_type_and_message(
    stack: str, expected_type: Any, expected_message: Any
) -> None:
    parsed = parse(line(level="ERROR", exception=stack))

    assert parsed.fields["error"]["stack_trace"] == stack
    assert_paths(parsed.fields, {"error.type": expected_type, "error.message": expected_message})


@pytest.mark.parametrize(
    ("user_id", "expected"), [(42, "42"), ("u-42", "u-42"), ("0", "0"), (0, "0")]
)
def test_user_id_is_indexed_as_string(user_id: Any, expected: str) -> None:
    assert parse(line(user_id=user_id)).fields["user"] == {"id": expected}


def test_unknown_keys_go_under_namespace_unchanged() -> None:
    extras = {
        "order_id": 991,
        "amount": 12.5,
        "paid": False,
        "items": [{"sku": "A-1", "qty": 2}],
        "db": {"duration_ms": 4.2, "statement": None},
        "http.route": "/orders/{id}",
    }

    parsed = parse(line(**extras))

    assert parsed.fields["app"] == {"module": "views", **extras}


@pytest.mark.parametrize(
    ("namespace", "path"), [("erp", ("erp",)), ("labels.app", ("labels", "app"))]
)
def test_custom_namespace_holds_the_extras(namespace: str, path: tuple[str, ...]) -> None:
    fields = make_app_json_parser(namespace)(line(order_id=1)).fields

    node: Any = fields
    for part in path:
        node = node[part]
    assert node == {"module": "views", "order_id": 1}
    assert "app" not in fields


@pytest.mark.parametrize("namespace", ["", "log", "error.extra", "app..x", "http"])
def test_namespace_colliding_with_mapped_fields_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="extra_namespace"):
        make_app_json_parser(namespace)


@pytest.mark.parametrize(
    ("message", "expected"),
    [(42, "42"), (True, "true"), ({"a": 1}, '{"a":1}'), ([1, "x"], '[1,"x"]'), (None, ABSENT)],
)
def test_non_string_message_is_rendered_as_json_text(message: Any, expected: Any) -> None:
    assert_paths(parse(line(message=message)).fields, {"message": expected})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("line", "n/a"),
        ("line", 4.5),
        ("line", True),
        ("level", {"name": "ERROR"}),
        ("logger", ["erp"]),
        ("function", 3),
        ("exception", ["Traceback", "ValueError: x"]),
        ("request_id", {"id": 1}),
        ("user_id", True),
    ],
)
def test_wrongly_typed_known_key_moves_to_namespace_unchanged(key: str, value: Any) -> None:
    parsed = parse(line(**{key: value}))

    assert parsed.fields["app"][key] == value
    assert parsed.tags == []


def test_line_number_written_as_digit_string_becomes_int() -> None:
    assert parse(line(line="88")).fields["log"]["origin"]["file"]["line"] == 88


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "Traceback (most recent call last):",
        '  File "/app/erp/db.py", line 41, in connect',
        '{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "cut',
        "",
        "   ",
        "[1, 2]",
        '"just a string"',
        "42",
        "null",
        "true",
        "{'level': 'INFO'}",
    ],
)
def test_non_object_line_is_shipped_whole_with_jsonparsefailure(text: str) -> None:
    parsed = parse(text)

    assert parsed.tags == ["_jsonparsefailure"]
    assert parsed.fields["message"] == text
    assert parsed.fields["error"]["message"]
    assert set(parsed.fields) == {"message", "error"}
    assert parsed.timestamp is None


def test_nan_written_by_python_json_dumps_is_still_parsed() -> None:
    text = json.dumps({"timestamp": "2026-11-27T10:00:00", "ratio": float("nan"), "big": 2**70})

    parsed = parse(text)

    assert parsed.tags == []
    assert parsed.fields["@timestamp"] == "2026-11-27T10:00:00Z"
    orjson.dumps(parsed.fields)  # the sink must be able to encode it


def test_byte_order_mark_before_object_is_ignored() -> None:
    parsed = parse("\ufeff" + line())

    assert parsed.tags == []
    assert parsed.fields["message"] == "GET /orders 200"


def test_aware_timestamp_in_other_zone_is_converted() -> None:
    written = datetime(2026, 11, 27, 17, 0, tzinfo=timezone(timedelta(hours=7))).isoformat()

    assert parse(line(timestamp=written)).fields["@timestamp"] == "2026-11-27T10:00:00Z"


def _random_text(rng: random.Random) -> str:
    length = rng.randrange(0, 200)
    return bytes(rng.randrange(256) for _ in range(length)).decode("utf-8", errors="replace")


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randrange(1, 6)):
        position = rng.randrange(len(chars) + 1)
        if rng.random() < 0.5 and position < len(chars):
            del chars[position]
        else:
            chars.insert(position, rng.choice('{}[]":,\\ 0a\u00e9\ufffd\n'))
    return "".join(chars)


def test_never_raises_on_random_bytes_and_output_is_encodable() -> None:
    rng = random.Random(20261127)
    for _ in range(500):
        parsed = parse(_random_text(rng))
        assert parsed.tags == ["_jsonparsefailure"] or "_jsonparsefailure" not in parsed.tags
        orjson.dumps(parsed.fields)


def test_never_raises_on_mutated_formatter_lines() -> None:
    rng = random.Random(7)
    seeds = [line(request_id="r", user_id=1, exception=SQLALCHEMY_TRACEBACK), line()]
    for _ in range(1000):
        text = _mutate(rng, rng.choice(seeds))
        parsed = parse(text)
        orjson.dumps(parsed.fields)
        if "_jsonparsefailure" in parsed.tags:
            assert parsed.fields["message"] == text
        assert (parsed.timestamp is None) == ("_timestampparsefailure" in parsed.tags) or (
            "_jsonparsefailure" in parsed.tags
        )
