"""The per-line step: decoding, tags, source fields."""

from __future__ import annotations

from datetime import UTC, datetime

from logpipe.config import InputConfig
from logpipe.enrich.static import Enricher
from logpipe.event import Event, Line
from logpipe.process import LineProcessor, ResumeTime

NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, UTC)


def make_processor(parser: str = "app_json", resume: ResumeTime | None = None) -> LineProcessor:
    config = InputConfig(paths=["/x"], parser=parser, dataset="erp.application")
    return LineProcessor(config, Enricher({"host": {"name": "pod-1"}}), resume)


def make_line(raw: bytes, offset: int = 4096, truncated: bool = False, gen: int = 0) -> Line:
    return Line(
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
    assert event.tags == ["_line_truncated", "_jsonparsefailure", "_timestamp_inferred"]
    assert event.fields["message"] == '{"level": "INFO", "mess'


def test_nul_bytes_and_binary_garbage_do_not_crash() -> None:
    event = process(b"\x00\x01\x02\xfe\xfd binary \x00", parser="nginx")
    assert "_nginxparsefailure" in event.tags and "_invalid_utf8" in event.tags
    assert event.fields["message"].startswith("\x00\x01\x02")


DATED = b'{"timestamp": "2026-11-26T23:59:59", "level": "INFO", "message": "dated"}'
UNDATED = b"Traceback printed to the log by accident"


def test_undated_line_takes_the_time_of_the_line_before_it_in_the_same_file() -> None:
    processor = make_processor()
    processor(make_line(DATED, offset=0), NOW)
    event = processor(make_line(UNDATED, offset=100), NOW)
    assert event.timestamp == datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC)
    assert event.fields["@timestamp"] == "2026-11-26T23:59:59.000000Z"
    assert "_timestamp_inferred" in event.tags


def test_undated_line_reread_after_restart_gets_the_same_time_from_the_checkpoint() -> None:
    # After a restart, the first line read is undated: its time comes from the checkpoint
    # (the time of the last acknowledged line), as it did on the first read.
    acked = datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    processor = make_processor(resume=lambda file_id, gen: acked if gen == 0 else None)
    assert processor(make_line(UNDATED, offset=100), after_midnight).timestamp == acked
    # A truncated file (new generation) has no earlier line: the time of reading.
    assert (
        processor(make_line(UNDATED, offset=0, gen=1), after_midnight).timestamp == after_midnight
    )
