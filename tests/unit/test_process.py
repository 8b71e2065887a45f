"""The per-line step: decoding, tags, source fields."""

from __future__ import annotations

import json
import random
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event
from logpipe.process import LineProcessor, ResumeTime
from logpipe.sinks.elasticsearch.encode import IndexNamer, document_id, legacy_document_id

NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, UTC)


def make_processor(parser: str = "app_json", resume: ResumeTime | None = None) -> LineProcessor:
    config = InputConfig(paths=["/x"], parser=parser, dataset="erp.application")
    enricher = Enricher({"host": {"name": "pod-1"}})
    return LineProcessor(config, enricher, IndexNamer("erp-logs"), resume)


def make_line(raw: bytes, offset: int = 4096, truncated: bool = False, gen: int = 0) -> Event:
    return Event(
        "1:2:ab",
        gen,
        "/var/log/erp/application.log",
        offset,
        offset + len(raw) + 1,
        raw,
        "application",
        truncated,
    )


def process(raw: bytes, parser: str = "app_json", truncated: bool = False) -> Event:
    return make_processor(parser)(make_line(raw, truncated=truncated), NOW)


def fields(event: Event) -> dict[str, Any]:
    return event.document()


def tags(event: Event) -> list[str]:
    found: list[str] = event.document().get("tags", [])
    return found


def test_every_event_carries_file_offset_dataset_ingested_and_host() -> None:
    event = process(b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "hi"}')
    assert fields(event)["log"]["file"]["path"] == "/var/log/erp/application.log"
    assert fields(event)["log"]["offset"] == 4096
    assert fields(event)["log"]["level"] == "info"
    assert fields(event)["event"] == {
        "dataset": "erp.application",
        "ingested": "2026-11-27T12:00:00.123Z",
    }
    assert fields(event)["host"] == {"name": "pod-1"}
    assert event.event_time == datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp()
    assert tags(event) == []


def test_invalid_utf8_is_replaced_and_tagged_not_fatal() -> None:
    event = process(
        b'{"level": "INFO", "message": "caf\xe9 \xff", "timestamp": "2026-11-27T10:00:00"}'
    )
    assert "_invalid_utf8" in tags(event)
    assert fields(event)["message"] == "caf\ufffd \ufffd"


def test_truncated_line_is_tagged_and_still_shipped_whole_as_far_as_kept() -> None:
    event = process(b'{"level": "INFO", "mess', truncated=True)
    assert tags(event) == ["_line_truncated", "_jsonparsefailure", "_timestamp_inferred"]
    assert fields(event)["message"] == '{"level": "INFO", "mess'


def test_nul_bytes_and_binary_garbage_do_not_crash() -> None:
    event = process(b"\x00\x01\x02\xfe\xfd binary \x00", parser="nginx")
    assert "_nginxparsefailure" in tags(event) and "_invalid_utf8" in tags(event)
    assert fields(event)["message"].startswith("\x00\x01\x02")


DATED = b'{"timestamp": "2026-11-26T23:59:59", "level": "INFO", "message": "dated"}'
UNDATED = b"Traceback printed to the log by accident"


def test_undated_line_takes_the_time_of_the_line_before_it_in_the_same_file() -> None:
    processor = make_processor()
    processor(make_line(DATED, offset=0), NOW)
    event = processor(make_line(UNDATED, offset=100), NOW)
    assert event.event_time == datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC).timestamp()
    assert fields(event)["@timestamp"] == "2026-11-26T23:59:59.000000Z"
    assert "_timestamp_inferred" in tags(event)


def test_undated_line_reread_after_restart_gets_the_same_time_from_the_checkpoint() -> None:
    # After a restart, the first line read is undated: its time comes from the checkpoint
    # (the time of the last acknowledged line), as it did on the first read.
    acked = datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    processor = make_processor(resume=lambda file_id, gen: acked if gen == 0 else None)
    assert processor(make_line(UNDATED, offset=100), after_midnight).event_time == acked.timestamp()
    # A truncated file (new generation) has no earlier line: the time of reading.
    assert (
        processor(make_line(UNDATED, offset=0, gen=1), after_midnight).event_time
        == after_midnight.timestamp()
    )


def test_event_is_encoded_with_its_daily_index_and_deterministic_id() -> None:
    line = make_line(DATED, offset=10)
    event = make_processor()(line, NOW)
    assert event.index == "erp-logs-2026.11.26"
    assert event.doc_id == document_id(line)
    # The same line read again (a restart) gets the same id; another offset another.
    assert make_processor()(make_line(DATED, offset=10), NOW).doc_id == event.doc_id
    assert make_processor()(make_line(DATED, offset=11), NOW).doc_id != event.doc_id


USUAL_APP = (
    b'{"timestamp": "2026-11-27T10:00:00.123456", "level": "INFO", "logger": "erp.api",'
    b' "message": "GET /orders 200", "module": "views", "function": "list_orders", "line": 88}'
)
USUAL_NGINX = b'203.0.113.7 - - [27/Nov/2026:17:00:00 +0700] "GET /a?b=1 HTTP/1.1" 200 5 "-" "c/8"'


@pytest.mark.parametrize(
    ("parser", "raw"),
    [
        pytest.param("app_json", USUAL_APP, id="usual-app-line"),
        pytest.param("nginx", USUAL_NGINX, id="usual-nginx-line"),
        pytest.param("app_json", DATED, id="parsed-fields-line"),
    ],
)
@pytest.mark.parametrize("offset", [0, 4096, 16**10 - 1, 16**10, 2**50])
def test_id_written_into_the_bulk_entry_is_the_specified_id_at_any_offset(
    parser: str, raw: bytes, offset: int
) -> None:
    # The per-line step formats the id straight into the entry, from one number
    # (offset << 32 | crc); it must still be scheme 2's <prefix><%010x offset><%08x crc>.
    line = make_line(raw, offset=offset)
    event = make_processor(parser)(line, NOW)
    action = json.loads(event.entry.split(b"\n")[0])

    assert action["create"]["_id"] == document_id(line) == event.doc_id
    assert event.doc_id[12:] == f"{offset:010x}{zlib.crc32(raw):08x}"
    assert action["create"]["_index"] == event.index


@pytest.mark.parametrize("raw", [USUAL_APP, USUAL_NGINX, DATED])
def test_file_that_keeps_the_ids_of_an_older_logpipe_gets_them_on_every_path(raw: bytes) -> None:
    config = InputConfig(
        paths=["/x"], parser="nginx" if raw is USUAL_NGINX else "app_json", dataset="d"
    )
    processor = LineProcessor(
        config,
        Enricher({"host": {"name": "pod-1"}}),
        IndexNamer("erp-logs"),
        legacy_ids=lambda file_id, generation: generation == 0,
    )
    old, new = make_line(raw, offset=7), make_line(raw, offset=7, gen=1)

    assert processor.process([old, new], NOW)[0].doc_id == legacy_document_id(old)
    assert processor.process([old, new], NOW)[1].doc_id == document_id(new)


@pytest.mark.parametrize(("parser", "raw"), [("app_json", USUAL_APP), ("nginx", USUAL_NGINX)])
def test_percent_signs_in_the_path_and_static_fields_are_written_as_they_are(
    parser: str, raw: bytes
) -> None:
    # The usual line's bulk item is a %-format with these filled in once per file:
    # a "%" in any of them must come out as itself, not as a conversion.
    config = InputConfig(paths=["/x"], parser=parser, dataset="erp.application")
    static = {"service": {"name": "50%d off %%"}, "labels": {"x": "%b%018x"}}
    processor = LineProcessor(config, Enricher(static), IndexNamer("erp-logs"))
    path = "/var/log/100%x/a%%b.log"
    line = Event("1:2:ab", 0, path, 4096, 4096 + len(raw) + 1, raw, "in")
    assert processor._usual.encode is not None and processor._usual.encode(raw) is not None

    event = processor(line, NOW)
    action, document, end = event.entry.split(b"\n")

    assert json.loads(action)["create"]["_id"] == document_id(line) and end == b""
    doc = json.loads(document)
    assert doc["log"]["file"]["path"] == path and doc["log"]["offset"] == 4096
    assert doc["event"]["dataset"] == "erp.application"
    assert doc["service"] == {"name": "50%d off %%"} and doc["labels"] == {"x": "%b%018x"}


def chunk() -> list[Event]:
    return [make_line(DATED, offset=0), make_line(UNDATED, offset=80), make_line(b"{", offset=99)]


def test_a_chunk_processed_at_once_equals_its_lines_processed_one_by_one() -> None:
    # Two reads of the same lines: the per-line step encodes each event in place.
    together = make_processor().process(chunk(), NOW)
    one_by_one = make_processor()
    separately = [one_by_one(line, NOW) for line in chunk()]

    assert together == separately
    assert not set(map(id, together)) & set(map(id, separately))
    assert [event.entry.count(b"\n") for event in together] == [2, 2, 2]


def test_line_encoded_in_place_is_the_event_and_a_second_encoding_overwrites_it() -> None:
    line = make_line(DATED, offset=10)
    assert line.entry == b"" and line.event_time is None and line.size == 0

    (event,) = make_processor().process([line], NOW)
    first = event.entry

    assert event is line and first.endswith(b"}\n") and event.size == len(first) + 400
    later = datetime(2026, 11, 28, tzinfo=UTC)  # an emit cancelled, then run again
    assert make_processor()(line, later).entry != first
    assert b"2026-11-28T00:00:00.000Z" in line.entry and line.entry.count(b"\n") == 2


def test_static_fields_spliced_as_bytes_equal_the_merged_document() -> None:
    static = {"host": {"name": "pod-1"}, "service": {"environment": "prod"}}
    config = InputConfig(paths=["/x"], parser="app_json", dataset="erp.application")
    spliced = LineProcessor(config, Enricher(static), IndexNamer("erp-logs"))
    # A document without any of the static sections gets them spliced in as bytes.
    own = b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "m"}'
    assert fields(spliced(make_line(own), NOW))["service"] == {"environment": "prod"}
    assert fields(spliced(make_line(own), NOW))["host"] == {"name": "pod-1"}
    enricher = Enricher(static)
    doc = {"message": "m", "service": {"name": "erp"}}
    enricher(doc)
    assert doc["service"] == {"name": "erp", "environment": "prod"}
    assert Enricher(static).encode({"message": "m", "service": {"name": "erp"}}) == (
        b'{"message":"m","service":{"name":"erp","environment":"prod"},"host":{"name":"pod-1"}}'
    )
    assert (
        Enricher(static).encode({}) == b'{"host":{"name":"pod-1"},"service":{"environment":"prod"}}'
    )


def test_only_events_at_an_alert_level_keep_their_fields_for_the_alert_rules() -> None:
    config = InputConfig(paths=["/x"], parser="app_json", dataset="erp.application")
    enricher = Enricher({"host": {"name": "pod-1"}})
    processor = LineProcessor(
        config, enricher, IndexNamer("erp-logs"), alert_levels=frozenset({"error"})
    )
    error = b'{"timestamp": "2026-11-27T10:00:00", "level": "ERROR", "message": "boom"}'
    info = b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "fine"}'
    alerting, quiet = processor.process([make_line(error), make_line(info, offset=90)], NOW)
    assert quiet.alert is None
    assert alerting.alert is not None
    assert alerting.alert["message"] == "boom"
    assert alerting.alert["host"] == {"name": "pod-1"}  # enriched, as the e-mail shows it
    assert alerting.document() == alerting.alert


def test_static_tags_are_kept_when_an_event_has_tags_of_its_own() -> None:
    config = InputConfig(paths=["/x"], parser="app_json", dataset="erp.application")
    processor = LineProcessor(config, Enricher({"tags": ["erp"]}), IndexNamer("erp-logs"))
    assert tags(processor(make_line(b"not json"), NOW)) == [
        "erp",
        "_jsonparsefailure",
        "_timestamp_inferred",
    ]
    assert tags(processor(make_line(DATED), NOW)) == ["erp"]


# Valid JSON that orjson reads but cannot write back (regression: either one used to
# raise out of the per-line step and stop the pipeline, on every restart again).
TOO_DEEP = b'{"timestamp": "2026-11-27T10:00:00", "level": "ERROR", "message": "m", "x": %b%b}' % (
    b"[" * 300,
    b"]" * 300,
)
# NaN sends the line to Python's json module, which, unlike orjson, takes a lone surrogate.
LONE_SURROGATE = b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "x": NaN, "y": "\\ud800"}'


def test_line_nested_deeper_than_orjson_writes_is_shipped_whole_and_tagged() -> None:
    event = process(TOO_DEEP)

    assert tags(event) == ["_jsonencodefailure"]
    doc = fields(event)
    assert doc["message"] == TOO_DEEP.decode()
    assert doc["@timestamp"] == "2026-11-27T10:00:00Z"
    assert doc["log"] == {"file": {"path": "/var/log/erp/application.log"}, "offset": 4096} | {
        "level": "error"
    }
    assert doc["event"]["dataset"] == "erp.application"
    assert doc["host"] == {"name": "pod-1"}
    assert "Recursion limit" in doc["error"]["message"]
    assert event.index == "erp-logs-2026.11.27"


def test_lone_surrogate_from_the_lenient_json_reader_is_shipped_whole_and_tagged() -> None:
    event = process(LONE_SURROGATE)

    assert tags(event) == ["_jsonencodefailure"]
    assert fields(event)["message"] == LONE_SURROGATE.decode()
    assert "surrogates" in fields(event)["error"]["message"]


def test_unwritable_error_line_still_reaches_the_alert_rules_with_the_static_tags() -> None:
    config = InputConfig(paths=["/x"], parser="app_json", dataset="erp.application")
    enricher = Enricher({"host": {"name": "pod-1"}, "tags": ["erp"]})
    processor = LineProcessor(
        config, enricher, IndexNamer("erp-logs"), alert_levels=frozenset({"error"})
    )

    event = processor(make_line(TOO_DEEP), NOW)

    assert event.alert is not None
    assert event.alert["log"]["level"] == "error"
    assert event.document() == event.alert
    assert tags(event) == ["erp", "_jsonencodefailure"]


def test_go_zero_time_with_an_index_timezone_west_of_utc_is_indexed_not_fatal() -> None:
    # Regression: 0001-01-01T00:00:00 (Go's zero time) has no New York day; the
    # OverflowError stopped the pipeline on such a line, on every restart.
    config = InputConfig(paths=["/x"], parser="app_json", dataset="erp.application")
    namer = IndexNamer("erp-logs", "America/New_York")
    processor = LineProcessor(config, Enricher({}), namer)
    zero = b'{"timestamp": "0001-01-01T00:00:00", "level": "INFO", "message": "m"}'

    first, after = processor.process([make_line(zero), make_line(DATED, offset=90)], NOW)

    assert first.index == "erp-logs-0001.01.01"
    assert fields(first)["@timestamp"] == "0001-01-01T00:00:00Z"
    assert after.index == "erp-logs-2026.11.26"  # 23:59 UTC is 18:59 in New York


_ODD_VALUES: list[Any] = [
    None, True, 1, -1, 2**63, 1.5, float("nan"), "", "x", "ERROR", " error ", "\u2028",
    "0001-01-01T00:00:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00+01:00",
    "2026-11-27T10:00:00Z", "27/Nov/2026:10:00:00 +0700", "1764237600.123",
    [], {}, {"a": [1, {"b": None}]}, "\ud800", [[[[[]]]]], json.loads("[" * 300 + "]" * 300),
]  # fmt: skip
_ODD_KEYS = [
    "timestamp", "level", "logger", "message", "function", "line", "module", "exception",
    "request_id", "user_id", "remote_addr", "time_local", "request", "status", "msec", "x",
]  # fmt: skip


def _odd_line(rng: random.Random) -> bytes:
    """Binary garbage, an nginx line with odd parts, or JSON with odd keys and values."""
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
    if kind < 0.4:
        path = bytes(rng.randrange(32, 127) for _ in range(5))
        size = rng.randrange(-5, 10**20)
        return b'1.2.3.4 - - [27/Nov/2026:10:00:00 +0700] "GET /%b HTTP/1.1" 200 %d "-" "ua"' % (
            path,
            size,
        )
    record = {rng.choice(_ODD_KEYS): rng.choice(_ODD_VALUES) for _ in range(rng.randrange(10))}
    text = json.dumps(record)
    return text[: rng.randrange(len(text) + 1)].encode() if rng.random() < 0.2 else text.encode()


@pytest.mark.parametrize("parser", ["app_json", "nginx", "nginx_json", "plain"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Jakarta"])
def test_random_odd_lines_never_stop_the_per_line_step(parser: str, tz: str) -> None:
    # Each line gives one event whose document decodes, whatever the parser,
    # the index time zone, the alert levels or truncation (two crashes found so
    # far were of this kind: see the tests above).
    rng = random.Random(f"{parser}-{tz}")
    config = InputConfig(paths=["/x"], parser=parser, dataset="d")  # type: ignore[arg-type]
    enricher = Enricher({"host": {"name": "pod-1"}, "tags": ["erp"]})
    processor = LineProcessor(
        config, enricher, IndexNamer("erp-logs", tz), alert_levels=frozenset({"error"})
    )
    lines = [make_line(_odd_line(rng), 100 * i, rng.random() < 0.05) for i in range(600)]

    events = processor.process(lines, NOW)

    assert len(events) == len(lines)
    for event in events:
        assert isinstance(event.document(), dict)
