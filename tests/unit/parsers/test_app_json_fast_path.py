"""The app_json parser's fast path gives exactly what the general path gives, on every line."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from logpipe.parsers import Parsed
from logpipe.parsers import app_json as app_json_module
from logpipe.parsers.app_json import make_app_json_parser, make_general_app_json_parser
from tests.unit.parsers.equivalence import bench_workload, differences, mutations

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

# Lines whose JSON text itself is unusual: the fast path must hand them all over.
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
    """Each key usual 3 times in 4, so that many lines still take the fast path."""
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


def _both_parsers(namespace: str) -> tuple[Any, Any]:
    return make_app_json_parser(namespace), make_general_app_json_parser(namespace)


def _fallbacks(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> list[str]:
    """The lines the fast path hands to the general path."""
    general = app_json_module._parse_general
    handed: list[str] = []

    def spy(text: str, parts: list[str]) -> Parsed:
        handed.append(text)
        return general(text, parts)

    monkeypatch.setattr(app_json_module, "_parse_general", spy)
    parse = make_app_json_parser()
    for text in lines:
        parse(text)
    return handed


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_fast_path_gives_general_result_on_every_bench_workload_line(namespace: str) -> None:
    lines = bench_workload().app_lines(5000)

    assert differences(*_both_parsers(namespace), lines) == []


def test_every_bench_workload_line_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = bench_workload().app_lines(5000)

    assert _fallbacks(monkeypatch, lines) == []


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(_one_key_varied(), id="one-key-varied"),
        pytest.param(_random_records(4000), id="random-records"),
        pytest.param([("\ufeff" + _line(USUAL, list(USUAL))), *ODD_TEXTS], id="odd-json-text"),
    ],
)
def test_fast_path_gives_general_result_on_tricky_lines(namespace: str, lines: list[str]) -> None:
    assert differences(*_both_parsers(namespace), lines) == []


@pytest.mark.parametrize("lines", [_one_key_varied(), _random_records(4000)])
def test_tricky_lines_exercise_both_paths(
    lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fallbacks = len(_fallbacks(monkeypatch, lines))

    assert len(lines) / 10 < fallbacks < len(lines) * 9 / 10


def test_fast_path_gives_general_result_on_mutated_lines() -> None:
    seeds = [_line(USUAL, list(USUAL)), *bench_workload().app_lines(50)]
    alphabet = '{}[]":,\\ 0a1.-TZ+ntfeu\u00e9\ufffd\n'
    lines = mutations(random.Random(4), seeds, alphabet, 5000)

    assert differences(*_both_parsers("app"), lines) == []


def test_results_share_no_mutable_state_between_calls() -> None:
    parse = make_app_json_parser()
    text = _line(USUAL, list(USUAL))
    first = parse(text)
    expected = repr(first)
    first.fields["log"]["level"] = "changed"
    first.fields["app"]["module"] = "changed"
    first.tags.append("changed")

    assert repr(parse(text)) == expected
