"""The usual-line encoder writes, byte for byte, what orjson writes for the parser's fields.

The encoder (``make_usual_encoder``) takes the raw bytes of a line as the
application's formatter writes it and skips the parser and the dict; every
line it declines goes to the parser. So on every line it takes, its bytes must
be ``orjson.dumps(parse(text).fields)`` and its time the parser's.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event
from logpipe.parsers.app_json import make_app_json_parser, make_usual_encoder
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import IndexNamer
from tests.unit.parsers.equivalence import bench_workload, encoder_mismatches, mutations

NAMESPACES = ["app", "labels.app"]
ABSENT = object()
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/erp/db.py", line 41, in connect\n'
    "    return engine.connect()\n"
    "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not connect\n"
    '\tIs the server running on host "db"?\n'
)
CHAINED = (
    "Traceback (most recent call last):\n"
    '  File "/app/erp/orders.py", line 12, in load\n'
    "KeyError: 'order-991'\n\n"
    "During handling of the above exception, another exception occurred:\n\n"
    "Traceback (most recent call last):\n"
    '  File "/app/erp/orders.py", line 15, in load\n'
    "LookupError: order-991\n"
)
USUAL: dict[str, Any] = {
    "timestamp": "2026-11-27T10:00:00.123456",
    "level": "INFO",
    "logger": "erp.api",
    "message": "GET /orders 200",
    "module": "views",
    "function": "list_orders",
    "line": 88,
    "exception": ABSENT,  # ABSENT leaves a key out of the line
    "request_id": "req-7f3a",
    "user_id": 42,
    "order_id": 991,
}
# Values each key takes below; the first of each is the usual one, None is JSON null.
VALUES: dict[str, list[Any]] = {
    "timestamp": [
        "2026-11-27T10:00:00.123456", "2026-11-27T10:00:00", "2026-11-27T10:00:00.123456789",
        "2026-11-27T10:00:00.5Z", "2026-11-27T17:00:00+07:00", "2026-11-27 10:00:00,250",
        "2026-11-27T10:00:00.123+07:00", "0999-01-01T00:00:00", "2026-13-01T00:00:00",
        "2026-11-27", "yesterday", "", 1764237600, True, {}, None, ABSENT,
    ],
    "level": ["INFO", "WARNING", "Level 5", "İNFO", "", 20, ["ERROR"], {"name": "ERROR"}, None,
              ABSENT],
    "logger": ["erp.api", "", "ünïcode", ["erp"], 3, None, ABSENT],
    "message": ["GET /orders 200", "", "line\nbreak \"quoted\" \\", "ü \u2028", 42, 4.5, True,
                {"a": 1}, [1, "x"], None, ABSENT],
    "module": ["views", 7, None, ABSENT],
    "function": ["list_orders", "<module>", "", 3, None, ABSENT],
    "line": [88, 0, -1, 2**63 - 1, "88", "٨٨", "n/a", 4.5, True, False, None, ABSENT],
    "exception": [ABSENT, TRACEBACK, CHAINED, "ValueError: bad literal\n", "disk full", "",
                  "KeyboardInterrupt", ["Traceback", "ValueError: x"], 1, None],
    "request_id": ["req-7f3a", "", 17, 0, -5, True, 1.5, {"id": 1}, None, ABSENT],
    "user_id": [42, 0, "u-42", "", True, False, 4.2, [1], None, ABSENT],
    "order_id": [991, ABSENT, None, "x", {"nested": {"deep": [1, {"k": None}]}}, float("nan")],
}  # fmt: skip
KEY_ORDERS = [
    list(USUAL),
    list(reversed(USUAL)),
    ["module", "order_id", *[key for key in USUAL if key not in ("module", "order_id")]],
]

# Lines whose JSON text itself is unusual: the encoder must decline them all.
ODD_TEXTS = [
    "", "   ", "hello world", "null", "true", "42", '"just a string"', "[1, 2]", "{}",
    "{'level': 'INFO'}", '{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "cut',
    '{"timestamp": "2026-11-27T10:00:00", "ratio": NaN, "big": 123456789012345678901234}',
    '{"timestamp": "2026-11-27T10:00:00", "x": Infinity, "y": -Infinity}',
    '{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "level": 5}',
    '{"timestamp": "2026-11-27T10:00:00", "line": 99999999999999999999}',
    '{"timestamp": "2026-11-27T10:00:00", "line": 1e3, "user_id": -0}',
    '{"a": "\\ud800"}',
]  # fmt: skip


def _line(record: dict[str, Any], order: list[str]) -> str:
    return json.dumps({key: record[key] for key in order if record[key] is not ABSENT})


def _one_key_varied() -> list[str]:
    return [
        _line({**USUAL, key: value}, order)
        for key, values in VALUES.items()
        for value in values
        for order in KEY_ORDERS
    ]


def _random_records(count: int) -> list[str]:
    """Each key usual 3 times in 4, so that many lines are still encoded."""
    rng = random.Random(9)
    return [
        _line(
            {
                key: rng.choice(values if rng.random() < 0.25 else values[:1])
                for key, values in VALUES.items()
            },
            rng.choice(KEY_ORDERS),
        )
        for _ in range(count)
    ]


def mismatches(
    lines: list[str], namespace: str = "app", alert_levels: frozenset[str] = frozenset()
) -> tuple[list[str], int]:
    """(lines encoded differently from the parser's fields, number of lines encoded)."""
    encode, parse = make_usual_encoder(namespace, alert_levels), make_app_json_parser(namespace)
    return encoder_mismatches(encode, parse, lines)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_bench_workload_line_is_encoded_as_its_parsed_fields(namespace: str) -> None:
    lines = bench_workload().app_lines(5000)

    found, taken = mismatches(lines, namespace)

    assert found == []
    assert taken == len(lines)


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(_one_key_varied(), id="one-key-varied"),
        pytest.param(_random_records(4000), id="random-records"),
    ],
)
def test_tricky_lines_are_encoded_as_their_parsed_fields_or_declined(
    namespace: str, lines: list[str]
) -> None:
    found, taken = mismatches(lines, namespace)

    assert found == []
    # Both outcomes occur, so the comparison covers the encoder's edges.
    assert len(lines) / 10 < taken < len(lines) * 9 / 10


def test_lines_with_unusual_json_text_are_declined() -> None:
    lines = ["\ufeff" + _line(USUAL, list(USUAL)), *ODD_TEXTS]

    assert mismatches(lines) == ([], 0)


def test_invalid_utf8_is_declined_for_the_parser_to_replace_and_tag() -> None:
    raw = _line({**USUAL, "message": "caf\u00e9"}, list(USUAL)).encode().replace(b"caf", b"\xff")

    assert make_usual_encoder()(raw) is None


def test_mutated_lines_are_encoded_as_their_parsed_fields_or_declined() -> None:
    seeds = [_line(USUAL, list(USUAL)), *bench_workload().app_lines(50)]
    alphabet = '{}[]":,\\ 0a1.-TZ+ntfeu\u00e9\ufffd\n'
    lines = mutations(random.Random(4), seeds, alphabet, 5000)

    found, taken = mismatches(lines)

    assert found == []
    assert taken > 500


def test_lines_at_an_alert_level_are_left_to_the_parser_and_the_rest_encoded() -> None:
    lines = bench_workload().app_lines(2000)
    errors = [text for text in lines if '"level": "ERROR"' in text]

    found, taken = mismatches(lines, alert_levels=frozenset({"error"}))

    assert found == []
    assert errors
    assert taken == len(lines) - len(errors)


NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, UTC)


def _events(processor: LineProcessor, lines: list[str]) -> list[tuple[object, ...]]:
    batch, offset = [], 0
    for text in lines:
        raw = text.encode()
        batch.append(
            Event("1:2:ab", 0, "/var/log/erp/app.log", offset, offset + len(raw) + 1, raw, "app")
        )
        offset += len(raw) + 1
    return [
        (e.entry, e.doc_id, e.index, e.event_time, e.alert) for e in processor.process(batch, NOW)
    ]


@pytest.mark.parametrize("alert_levels", [frozenset(), frozenset({"error", "critical"})])
def test_processor_writes_the_same_events_with_and_without_the_encoder(
    alert_levels: frozenset[str],
) -> None:
    config = InputConfig(paths=["/x"], parser="app_json", dataset="erp.application")
    enricher = Enricher({"host": {"name": "pod-1"}, "tags": ["sidecar"]})
    lines = [*bench_workload().app_lines(500), *_one_key_varied(), *_random_records(500)]
    with_encoder = LineProcessor(
        config, enricher, IndexNamer("erp-logs"), alert_levels=alert_levels
    )
    without = LineProcessor(config, enricher, IndexNamer("erp-logs"), alert_levels=alert_levels)
    without._usual = without._usual._replace(encode=None)

    assert with_encoder._usual.encode is not None
    assert _events(with_encoder, lines) == _events(without, lines)


@pytest.mark.parametrize(
    ("static", "namespace"),
    [
        pytest.param({"log": {"type": "json"}}, "app", id="static-log-section"),
        pytest.param({"app": {"team": "erp"}}, "app", id="static-section-is-the-namespace"),
        pytest.param({}, "event", id="namespace-is-event"),
    ],
)
def test_a_top_level_key_shared_with_the_document_turns_the_encoder_off(
    static: dict[str, Any], namespace: str
) -> None:
    config = InputConfig(
        paths=["/x"], parser="app_json", dataset="erp.application", extra_namespace=namespace
    )
    processor = LineProcessor(config, Enricher(static), IndexNamer("erp-logs"))

    ((entry, *_),) = _events(processor, [_line(USUAL, list(USUAL))])

    assert processor._usual.encode is None
    source = entry.split(b"\n")[1]
    doc = orjson.loads(source)  # orjson keeps the last of duplicate keys: count them too
    for key in (*static, namespace, "log", "event"):
        assert source.count(b'"%b":' % key.encode()) == 1
    assert doc["event"]["dataset"] == "erp.application"
    assert doc["log"]["file"]["path"] == "/var/log/erp/app.log"


def test_results_share_no_mutable_state_between_calls() -> None:
    parse = make_app_json_parser()
    text = _line(USUAL, list(USUAL))
    first = parse(text)
    expected = repr(first)
    first.fields["log"]["level"] = "changed"
    first.fields["app"]["module"] = "changed"
    first.tags.append("changed")

    assert repr(parse(text)) == expected
