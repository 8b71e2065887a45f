"""The per-line step: decoding, tags, source fields."""

from __future__ import annotations

from datetime import UTC, datetime

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Line
from logpipe.process import LineProcessor

NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, UTC)


def process(raw: bytes, parser: str = "app_json", truncated: bool = False):  # type: ignore[no-untyped-def]
    config = InputConfig(paths=["/x"], parser=parser, dataset="erp.application")
    line = Line(
        "1:2:ab",
        0,
        "/var/log/erp/application.log",
        4096,
        4096 + len(raw) + 1,
        raw,
        "application",
        truncated,
    )
    return LineProcessor(config, Enricher({"host": {"name": "pod-1"}}))(line, NOW)


def test_every_event_carries_file_offset_dataset_ingested_and_host() -> None:
    event = process(b'{"timestamp": "2026-11-27T10:00:00", "level": "INFO", "message": "hi"}')
    assert event.fields["log"]["file"]["path"] == "/var/log/erp/application.log"
    assert event.fields["log"]["offset"] == 4096
    assert event.fields["log"]["level"] == "info"
    assert event.fields["event"] == {
        "dataset": "erp.application",
        "ingested": "2026-11-27T12:00:00.123Z",
    }
    assert event.fields["host"] == {"name": "pod-1"}
    assert event.timestamp == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert event.tags == []


def test_invalid_utf8_is_replaced_and_tagged_not_fatal() -> None:
    event = process(
        b'{"level": "INFO", "message": "caf\xe9 \xff", "timestamp": "2026-11-27T10:00:00"}'
    )
    assert "_invalid_utf8" in event.tags
    assert event.fields["message"] == "caf\ufffd \ufffd"


def test_truncated_line_is_tagged_and_still_shipped_whole_as_far_as_kept() -> None:
    event = process(b'{"level": "INFO", "mess', truncated=True)
    assert event.tags == ["_line_truncated", "_jsonparsefailure"]
    assert event.fields["message"] == '{"level": "INFO", "mess'


def test_nul_bytes_and_binary_garbage_do_not_crash() -> None:
    event = process(b"\x00\x01\x02\xfe\xfd binary \x00", parser="nginx")
    assert "_nginxparsefailure" in event.tags and "_invalid_utf8" in event.tags
    assert event.fields["message"].startswith("\x00\x01\x02")
