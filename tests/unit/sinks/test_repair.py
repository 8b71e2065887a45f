"""Pure repairs of documents refused for mapping conflicts."""

from __future__ import annotations

import orjson
import pytest

from logpipe.sinks.elasticsearch.repair import (
    conflicting_field,
    is_mapping_conflict,
    move_conflicting_field,
    safe_core,
)

# Reasons as classify.py renders them: "<status> <type>: <reason> (caused by ...)".
NUMBER_NOW_STRING = (
    "400 document_parsing_exception: [1:40] failed to parse field [app.quantity] of type "
    "[long] in document with id 'x'. Preview of field's value: 'twelve' (caused by "
    'illegal_argument_exception: For input string: "twelve")'
)
OBJECT_FOR_KEYWORD = (
    "400 document_parsing_exception: [1:23] failed to parse field [log.level] of type "
    "[keyword] in document with id 'b1'. Preview of field's value: '{a=1}'"
)
VALUE_FOR_OBJECT = (
    "400 document_parsing_exception: [1:8] object mapping for [app.order] tried to parse "
    "field [order] as object, but found a concrete value"
)
STRICT = (
    "400 strict_dynamic_mapping_exception: [1:24] mapping set to strict, dynamic "
    "introduction of [other] within [app] is not allowed"
)


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        (NUMBER_NOW_STRING, "app.quantity"),
        (OBJECT_FOR_KEYWORD, "log.level"),
        (VALUE_FOR_OBJECT, "app.order"),
        (STRICT, "app.other"),
        ("400 mapper_parsing_exception: something without a name", None),
    ],
)
def test_field_named_by_rejection_reason(reason: str, field: str | None) -> None:
    assert conflicting_field(reason) == field


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (NUMBER_NOW_STRING, True),
        (STRICT, True),
        ("400 action_request_validation_exception: id is too long", False),
        ("404 index_not_found_exception: no such index", False),
        ("403 cluster_block_exception: index read-only", False),
    ],
)
def test_only_mapping_conflicts_are_repaired(reason: str, expected: bool) -> None:
    assert is_mapping_conflict(reason) is expected


def test_conflicting_value_moves_to_logpipe_conflicts_as_json_text_and_is_tagged() -> None:
    doc = {"message": "m", "app": {"quantity": "twelve", "spk_id": "S1"}, "tags": ["x"]}
    assert move_conflicting_field(doc, NUMBER_NOW_STRING)
    assert doc["app"] == {"spk_id": "S1"}
    (conflict,) = doc["logpipe"]["conflicts"]
    assert conflict["field"] == "app.quantity"
    assert conflict["value"] == '"twelve"'
    assert conflict["reason"].startswith("400 document_parsing_exception")
    assert doc["tags"] == ["x", "_mapping_conflict"]


def test_second_conflict_appends_and_tags_once() -> None:
    doc = {"app": {"quantity": "twelve", "order": 5}}
    assert move_conflicting_field(doc, NUMBER_NOW_STRING)
    assert move_conflicting_field(doc, VALUE_FOR_OBJECT)
    assert [c["field"] for c in doc["logpipe"]["conflicts"]] == ["app.quantity", "app.order"]
    assert doc["tags"] == ["_mapping_conflict"]


def test_reason_naming_a_missing_field_or_logpipe_itself_is_not_a_repair() -> None:
    assert not move_conflicting_field({"message": "m"}, NUMBER_NOW_STRING)
    doc = {"logpipe": {"conflicts": []}}
    reason = "400 document_parsing_exception: failed to parse field [logpipe.conflicts]"
    assert not move_conflicting_field(doc, reason)


def test_safe_core_keeps_logpipe_fields_and_the_whole_original_as_text() -> None:
    doc = {
        "@timestamp": "2026-11-27T10:00:00Z",
        "message": "Daily input recorded",
        "log": {"level": {"weird": True}, "file": {"path": "/var/log/erp/app.log"}, "offset": 7},
        "event": {"dataset": "erp.application", "ingested": "2026-11-27T10:00:01Z"},
        "host": {"name": "pod-1"},
        "app": {"anything": [1, {"deep": None}]},
        "tags": ["_timestampparsefailure"],
    }
    core = safe_core(doc, "400 mapper_parsing_exception: no field named")
    assert core["@timestamp"] == "2026-11-27T10:00:00Z"
    assert core["message"] == "Daily input recorded"
    assert core["log"] == {"file": {"path": "/var/log/erp/app.log"}, "offset": 7}
    assert "app" not in core and "level" not in core["log"]
    assert core["tags"] == ["_timestampparsefailure", "_mapping_conflict"]
    (conflict,) = core["logpipe"]["conflicts"]
    assert conflict["field"] == "*"
    original = orjson.loads(conflict["value"])
    assert original["app"] == {"anything": [1, {"deep": None}]}
    assert original["log"]["level"] == {"weird": True}
