"""Bulk-response classification, item by item."""

from __future__ import annotations

from typing import Any

import pytest

from logpipe.sinks.elasticsearch.classify import Outcome, classify_response, classify_status


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (201, Outcome.CREATED),
        (200, Outcome.CREATED),
        (409, Outcome.DUPLICATE),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.REJECT),
        (404, Outcome.REJECT),
        (403, Outcome.REJECT),
    ],
)
def test_item_status_table(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


def item(status: int, error: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"_index": "i", "_id": "x", "status": status}
    if error:
        body["error"] = error
    return {"create": body}


def test_partial_failure_keeps_request_order_and_reasons() -> None:
    response = {
        "errors": True,
        "items": [
            item(201),
            item(409, {"type": "version_conflict_engine_exception", "reason": "exists"}),
            item(429, {"type": "es_rejected_execution_exception", "reason": "queue full"}),
            item(
                400,
                {
                    "type": "document_parsing_exception",
                    "reason": "failed to parse [x]",
                    "caused_by": {"type": "illegal_argument_exception", "reason": "bad"},
                },
            ),
        ],
    }
    result = classify_response(response, 4)
    assert result.outcomes == [Outcome.CREATED, Outcome.DUPLICATE, Outcome.RETRY, Outcome.REJECT]
    assert result.reasons[0] is None
    reject = result.reasons[3]
    assert reject is not None
    assert reject.startswith("400 document_parsing_exception") and "illegal_argument" in reject


@pytest.mark.parametrize(
    "response",
    [
        {},
        {"items": None},
        {"items": [item(201)]},
        {"items": [item(201), {}]},
        {"items": [item(201), {"create": {"_id": "x"}}]},
    ],
)
def test_items_missing_from_a_response_are_retried_never_assumed_done(
    response: dict[str, Any],
) -> None:
    result = classify_response(response, 2)
    assert len(result.outcomes) == 2
    assert result.outcomes[1] is Outcome.RETRY
