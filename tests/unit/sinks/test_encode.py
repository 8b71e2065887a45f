"""Index naming, document ids and the bulk body: pure, no server."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import (
    IdMaker,
    IndexNamer,
    bulk_body,
    document_id,
    index_template,
    legacy_document_id,
    retry_delay,
)


def line(
    raw: bytes = b"x", *, file_id: str = "1:2:ab", generation: int = 0, offset: int = 0
) -> Event:
    return Event(
        file_id,
        generation,
        "/var/log/erp/application.log",
        offset,
        offset + len(raw) + 1,
        raw,
        "application",
    )


@pytest.mark.parametrize(
    ("tz", "when", "expected"),
    [
        ("America/New_York", datetime(1, 1, 1, tzinfo=UTC), "erp-logs-0001.01.01"),
        ("Asia/Jakarta", datetime(9999, 12, 31, 20, tzinfo=UTC), "erp-logs-9999.12.31"),
    ],
)
def test_time_at_the_edge_of_the_calendar_gets_its_utc_day_instead_of_crashing(
    tz: str, when: datetime, expected: str
) -> None:
    # Regression: the local day is past datetime's range, and the OverflowError
    # stopped the pipeline on such a line (Go's zero time), on every restart.
    assert IndexNamer("erp-logs", tz).name(when) == expected


@pytest.mark.parametrize(
    ("when", "tz", "expected"),
    [
        (datetime(2026, 11, 26, 23, 59, 59, 999999, UTC), "UTC", "erp-logs-2026.11.26"),
        (datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC), "UTC", "erp-logs-2026.11.27"),
        # 17:00 UTC is already the next day in Jakarta (UTC+7).
        (datetime(2026, 11, 26, 17, 0, tzinfo=UTC), "Asia/Jakarta", "erp-logs-2026.11.27"),
        (datetime(2026, 11, 26, 16, 59, tzinfo=UTC), "Asia/Jakarta", "erp-logs-2026.11.26"),
        # An aware time in another offset is judged in the index time zone.
        (
            datetime(2026, 11, 27, 6, 59, tzinfo=timezone(timedelta(hours=7))),
            "UTC",
            "erp-logs-2026.11.26",
        ),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "UTC", "erp-logs-2026.12.31"),
        (datetime(2027, 1, 1, 0, 30, tzinfo=UTC), "America/New_York", "erp-logs-2026.12.31"),
    ],
)
def test_daily_index_is_named_from_event_time_in_index_timezone(
    when: datetime, tz: str, expected: str
) -> None:
    assert IndexNamer("erp-logs", tz).name(when) == expected


@pytest.mark.parametrize("make", [document_id, legacy_document_id])
def test_same_line_reread_gets_same_id(make: Callable[[Event], str]) -> None:
    assert make(line(b"hello", offset=10)) == make(line(b"hello", offset=10))


@pytest.mark.parametrize("make", [document_id, legacy_document_id])
@pytest.mark.parametrize(
    "other",
    [
        line(b"hello!", offset=10),  # different content at the same offset
        line(b"hellp", offset=10),  # one bit flipped
        line(b"hello", offset=11),  # same content elsewhere in the file
        line(b"hello", offset=10, generation=1),  # same offset after a truncation
        line(b"hello", offset=10, file_id="1:3:ab"),  # another file
    ],
)
def test_different_line_never_reuses_an_id(make: Callable[[Event], str], other: Event) -> None:
    assert make(other) != make(line(b"hello", offset=10))


def test_bulk_body_is_ndjson_with_create_and_own_ids() -> None:
    events = [
        Event.of(line(b"a", offset=0), "erp-logs-2026.11.27", "id-a", b'{"message":"a"}'),
        Event.of(line(b"b", offset=2), "erp-logs-2026.11.28", "id-b", b'{"message":"b"}'),
    ]
    lines = bulk_body(events).split(b"\n")
    assert lines[-1] == b""
    action, doc, action2, doc2 = (orjson.loads(x) for x in lines[:-1])
    assert action == {"create": {"_index": "erp-logs-2026.11.27", "_id": "id-a"}}
    assert doc == {"message": "a"}
    assert action2 == {"create": {"_index": "erp-logs-2026.11.28", "_id": "id-b"}}
    assert doc2 == {"message": "b"}


def test_event_source_reads_and_replaces_the_document_inside_its_bulk_entry() -> None:
    event = Event.of(line(b"a"), "erp-logs-2026.11.27", "id-a", b'{"message":"a"}', 1.0)
    size = event.size

    assert event.source == b'{"message":"a"}'
    event.source = b'{"message":"repaired","a":{"b":"c\\nd"}}'  # as a repair re-encodes it

    assert event.source == b'{"message":"repaired","a":{"b":"c\\nd"}}'
    assert bulk_body([event]) == (
        b'{"create":{"_index":"erp-logs-2026.11.27","_id":"id-a"}}\n'
        b'{"message":"repaired","a":{"b":"c\\nd"}}\n'
    )
    assert event.size == size  # the budget counted at creation stays


def test_processed_events_carry_the_same_bulk_entry_as_built_from_their_source() -> None:
    processor = LineProcessor(
        InputConfig(paths=["/x"], parser="nginx", dataset="nginx.access"),
        Enricher({"host": {"name": "pod-1"}}),
        IndexNamer("erp-logs"),
    )
    raw = b'203.0.113.7 - - [27/Nov/2026:17:00:00 +0700] "GET /a?b=1 HTTP/1.1" 200 5 "-" "c/8"'
    (event,) = processor.process([line(raw)])

    rebuilt = Event.of(event, event.index, event.doc_id, event.source)

    assert event.entry == rebuilt.entry
    assert bulk_body([event]).count(b"\n") == 2


def spec_id(line: Event) -> str:
    """Scheme 2 as specified: a changed formula would re-index every re-read line."""
    key = f"{line.file_id}\0{line.generation}".encode()
    prefix = base64.urlsafe_b64encode(hashlib.blake2b(key, digest_size=9).digest()).decode()
    return prefix + format(line.offset, "010x") + format(zlib.crc32(line.raw), "08x")


def spec_legacy_id(line: Event) -> str:
    """Scheme 1, as every logpipe before scheme 2 computed it (still in indices it filled)."""
    key = f"{line.file_id}\0{line.generation}\0{line.offset}\0".encode() + line.raw
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


LINES = [
    line(b"hello", offset=10),
    line(b"world", offset=16),
    line(b"hello", offset=10, generation=1),
    line(b"hello", offset=10, file_id="1:3:ab"),
    line(b"hello", offset=10),
]


def test_ids_keep_their_specified_value_line_after_line_and_file_after_file() -> None:
    maker = IdMaker()
    ids = [maker.make(x) for x in LINES]
    assert ids == [spec_id(x) for x in LINES] == [document_id(x) for x in LINES]
    assert len(set(ids)) == 4
    assert document_id(line(b"hello", offset=10)) == "P1Rgl0YmHntt000000000a3610a686"


@pytest.mark.parametrize(
    ("offset", "hex_digits"), [(0, 10), (10, 10), (16**10 - 1, 10), (16**10, 11), (2**50, 13)]
)
def test_id_is_a_file_prefix_a_padded_offset_and_a_crc(offset: int, hex_digits: int) -> None:
    one = line(b'{"level":"INFO"}', offset=offset)
    doc_id = document_id(one)
    assert len(doc_id) == 12 + hex_digits + 8
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}[0-9a-f]+", doc_id)
    assert int(doc_id[12:-8], 16) == offset
    assert doc_id == document_id(line(b'{"level":"INFO"}', offset=offset))  # deterministic


def test_ids_of_one_file_share_its_prefix_and_sort_by_offset() -> None:
    maker = IdMaker()
    offsets = [0, 9, 15, 16, 255, 256, 4095, 70_000, 1_000_000, 16**10 - 1]
    ids = [maker.make(line(b"x" * (n % 7), offset=n)) for n in offsets]
    assert sorted(ids) == ids
    assert {x[:12] for x in ids} == {ids[0][:12]}
    other_generation = maker.make(line(b"x", offset=0, generation=1))
    assert other_generation[:12] != ids[0][:12]


def test_legacy_ids_are_the_blake2b_ids_of_earlier_versions() -> None:
    maker = IdMaker(lambda file_id, generation: True)
    ids = [maker.make(x) for x in LINES]
    assert ids == [spec_legacy_id(x) for x in LINES] == [legacy_document_id(x) for x in LINES]
    assert len(set(ids)) == 4 and {len(x) for x in ids} == {22}
    assert legacy_document_id(line(b"hello", offset=10)) == "4-o_VDRDWgWnLC7-tmEdqg"


def test_legacy_and_new_files_switch_scheme_line_after_line() -> None:
    asked: list[tuple[str, int]] = []

    def legacy(file_id: str, generation: int) -> bool:
        asked.append((file_id, generation))
        return (file_id, generation) == ("1:2:ab", 0)

    maker = IdMaker(legacy)
    lines = [
        line(b"old a", offset=0),
        line(b"old b", offset=6),
        line(b"new a", offset=0, file_id="1:3:ab"),
        line(b"old c", offset=12),
        line(b"next generation", offset=0, generation=1),
        line(b"old d", offset=18),
    ]
    expected = [spec_legacy_id, spec_legacy_id, spec_id, spec_legacy_id, spec_id, spec_legacy_id]
    assert [maker.make(x) for x in lines] == [f(x) for f, x in zip(expected, lines, strict=True)]
    # Asked once per run of lines of one file generation, not once per line.
    assert asked == [("1:2:ab", 0), ("1:3:ab", 0), ("1:2:ab", 0), ("1:2:ab", 1), ("1:2:ab", 0)]


def test_template_covers_the_prefix_and_maps_kibana_fields() -> None:
    template = index_template("acme-logs")
    assert template["index_patterns"] == ["acme-logs-*"]
    props = template["template"]["mappings"]["properties"]
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert props["http"]["properties"]["response"]["properties"]["status_code"]["type"] == "long"


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(a, 0.1, 5.0, 1.0) for a in range(10)]
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(0.1) and delays[-1] == pytest.approx(5.0)
    assert retry_delay(3, 0.1, 5.0, 0.0) == pytest.approx(0.4)


def test_deploy_copy_of_index_template_matches_the_one_logpipe_installs() -> None:
    deploy = Path(__file__).resolve().parents[3] / "deploy" / "index-template.json"
    assert json.loads(deploy.read_text()) == index_template("erp-logs")
