"""encode_usual writes, byte for byte, what orjson writes for parse_nginx's fields."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event
from logpipe.parsers.nginx import parse_nginx
from logpipe.parsers.nginx_encode import encode_usual
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import IndexNamer
from tests.unit.parsers.equivalence import bench_workload, encoder_mismatches, mutations
from tests.unit.parsers.test_nginx_fast_path import (
    EDGE_LINES,
    TIME,
    USUAL,
    _one_field_varied,
    _random_combinations,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, UTC)


def mismatches(lines: list[str]) -> tuple[list[str], int]:
    """(lines encoded differently from the parser's fields, number of lines encoded)."""
    return encoder_mismatches(encode_usual, parse_nginx, lines)


def test_every_bench_workload_line_is_encoded_as_its_parsed_fields() -> None:
    lines = bench_workload().access_lines(5000)

    found, taken = mismatches(lines)

    assert found == []
    assert taken == len(lines)


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(EDGE_LINES, id="edge-cases-of-test-nginx"),
        pytest.param(_one_field_varied(), id="one-field-varied"),
        pytest.param(_random_combinations(4000), id="random-field-combinations"),
    ],
)
def test_tricky_lines_are_encoded_as_their_parsed_fields_or_declined(lines: list[str]) -> None:
    found, taken = mismatches(lines)

    assert found == []
    # Both outcomes occur, so the comparison covers the encoder's edges.
    assert len(lines) / 10 < taken < len(lines) * 9 / 10


def test_mutated_lines_with_quotes_controls_and_non_ascii_are_encoded_or_declined() -> None:
    seeds = [USUAL, *bench_workload().access_lines(50)]
    alphabet = '"\\[] ,:-#?/.0123456789aAxHTP\t\n\x00\x1f\x7f\u00a0\u2028ü'
    lines = mutations(random.Random(7), seeds, alphabet, 5000)

    found, taken = mismatches(lines)

    assert found == []
    assert taken > 500


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        # Leading zeros: the parser's int() drops them, so must the encoder.
        (f'1.2.3.4 - - [{TIME}] "GET / HTTP/1.1" 099 0012 "-" "-"', True),
        (f'1.2.3.4 - - [{TIME}] "GET / HTTP/1.1" 000 000 "-" "-"', True),
        # A quote in the remote user would need escaping: left to the parser.
        (f'1.2.3.4 - a"b [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"', False),
        # Control characters and non-ASCII text: left to the parser (and orjson).
        (f'1.2.3.4 - - [{TIME}] "GET /\x01 HTTP/1.1" 200 1 "-" "-"', False),
        (f'1.2.3.4 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "Bot\x7f"', False),
        (f'1.2.3.4 - - [{TIME}] "GET /ü HTTP/1.1" 200 1 "-" "-"', False),
        # Quotes in the message only (the whole line): escaped.
        (f'1.2.3.4 - - [{TIME}] "GET /?q=x HTTP/1.1" 200 1 "https://r/#a" "UA \'x\'"', True),
    ],
)
def test_numbers_quotes_and_controls(text: str, taken: bool) -> None:
    found, count = mismatches([text])

    assert found == []
    assert count == (1 if taken else 0)


def _events(processor: LineProcessor, lines: list[str]) -> list[tuple[object, ...]]:
    offsets = [0]
    for text in lines:
        offsets.append(offsets[-1] + len(text.encode()) + 1)
    batch = [
        Event("1:2:ab", 0, "/var/log/nginx/access.log", start, end, text.encode(), "access")
        for text, start, end in zip(lines, offsets, offsets[1:], strict=False)
    ]
    return [
        (e.source, e.doc_id, e.index, e.event_time, e.alert) for e in processor.process(batch, NOW)
    ]


def test_processor_writes_the_same_events_with_and_without_the_encoder() -> None:
    config = InputConfig(paths=["/x"], parser="nginx", dataset="nginx.access")
    enricher = Enricher({"host": {"name": "pod-1"}, "tags": ["sidecar"]})
    lines = [*bench_workload().access_lines(300), *EDGE_LINES, *_random_combinations(300)]
    with_encoder = LineProcessor(config, enricher, IndexNamer("erp-logs"))
    without = LineProcessor(config, enricher, IndexNamer("erp-logs"))
    without._usual = without._usual._replace(encode=None)

    assert with_encoder._usual.encode is not None
    assert _events(with_encoder, lines) == _events(without, lines)


def test_static_section_sharing_a_top_level_key_turns_the_encoder_off() -> None:
    config = InputConfig(paths=["/x"], parser="nginx", dataset="nginx.access")
    enricher = Enricher({"http": {"edge": "cdn-1"}})
    processor = LineProcessor(config, enricher, IndexNamer("erp-logs"))

    (source, *_), *_ = _events(processor, [USUAL])

    assert processor._usual.encode is None
    pairs = orjson.loads(source)  # orjson keeps the last of duplicate keys: count them too
    assert source.count(b'"http":') == 1
    assert pairs["http"]["edge"] == "cdn-1"
    assert pairs["http"]["response"]["status_code"] == 200
