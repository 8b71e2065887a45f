"""Fingerprints: the same fault with different ids is one group, different faults are not."""

from __future__ import annotations

from typing import Any

import pytest

from logpipe.alerts.fingerprint import MASK_INPUT_MAX, fingerprint, group_title, mask_message

# (id, message, masked)
MASKED: list[tuple[str, str, str]] = [
    ("number", "user 42 not found", "user <n> not found"),
    ("negative-and-decimal", "value -12 and 3.14159 rejected", "value <n> and <n> rejected"),
    (
        "spk",
        "Database error recording daily input for SPK 4711",
        "Database error recording daily input for SPK <n>",
    ),
    ("id-with-digits", "order ORD7f3a9 and req-abc123 failed", "order <id> and req-<id> failed"),
    ("uuid", "job 123e4567-e89b-12d3-a456-426614174000 stuck", "job <uuid> stuck"),
    ("request-id-hex", "request d869e4da8cb359c8cdf8712180234c70 failed", "request <uuid> failed"),
    ("long-hex", "commit deadbeefcafebabe1234 broke", "commit <hex> broke"),
    ("0x-hex", "bad pointer 0x7ffde3a0", "bad pointer <hex>"),
    (
        "single-quoted",
        "unknown column 'spk_qty' in field list",
        "unknown column '<q>' in field list",
    ),
    ("double-quoted", 'key "daily input" missing', 'key "<q>" missing'),
    ("apostrophes-stay", "can't find user's record", "can't find user's record"),
    ("email", "mail to bob.smith+ops@example.co.id bounced", "mail to <email> bounced"),
    ("ipv4-port", "connect to 10.0.0.12:5432 refused", "connect to <ip> refused"),
    ("ipv6", "peer fe80::1ff:fe23:4567:890a reset", "peer <ip> reset"),
    ("iso-timestamp", "expired at 2026-11-27T10:00:00.123Z", "expired at <ts>"),
    ("log-timestamp", "since 2026-11-27 10:00:00,123 +07:00", "since <ts>"),
    ("date-only", "report for 2026-11-27 missing", "report for <ts> missing"),
    ("time-only", "lock held since 10:00:07", "lock held since <ts>"),
    ("whitespace", "  too\tmany \n spaces ", "too many spaces"),
    ("no-variable-part", "Database unreachable; exiting", "Database unreachable; exiting"),
]


@pytest.mark.parametrize(
    ("message", "masked"), [(m, x) for _, m, x in MASKED], ids=[i for i, _, _ in MASKED]
)
def test_mask_message_masks_the_parts_that_vary(message: str, masked: str) -> None:
    assert mask_message(message) == masked


def event(
    message: str, logger: str = "app.api.production", error_type: str | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"log": {"level": "error", "logger": logger}, "message": message}
    if error_type:
        fields["error"] = {"type": error_type}
    return fields


# (id, a, b): pairs that are the same fault.
SAME: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "spk-number",
        event("Database error recording daily input for SPK 4711"),
        event("Database error recording daily input for SPK 4712"),
    ),
    ("user-id", event("user 42 not found"), event("user 43 not found")),
    (
        "uuid-and-time",
        event("job 123e4567-e89b-12d3-a456-426614174000 failed at 2026-11-27T10:00:00Z"),
        event("job 00000000-0000-4000-8000-000000000000 failed at 2026-11-28T23:59:59Z"),
    ),
    ("quoted", event("unknown user 'alice'"), event("unknown user 'bob'")),
    ("ip", event("peer 10.0.0.1 reset"), event("peer 192.168.1.200 reset")),
    ("email", event("bounce from a@x.test"), event("bounce from b@y.test")),
    (
        "tail-beyond-the-mask-limit",
        event("x" * MASK_INPUT_MAX + " tail one"),
        event("x" * MASK_INPUT_MAX + " tail two"),
    ),
]

# (id, a, b): pairs that are different faults.
DIFFERENT: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("logger", event("user 42 not found", "app.api"), event("user 42 not found", "app.database")),
    (
        "exception-type",
        event("query failed", error_type="OperationalError"),
        event("query failed", error_type="IntegrityError"),
    ),
    ("message", event("user 42 not found"), event("user 42 locked")),
    (
        "dataset",
        {**event("upstream timed out"), "event": {"dataset": "nginx.error"}},
        {**event("upstream timed out"), "event": {"dataset": "erp.application"}},
    ),
]


@pytest.mark.parametrize(("a", "b"), [(a, b) for _, a, b in SAME], ids=[i for i, _, _ in SAME])
def test_same_fault_with_different_ids_has_one_fingerprint(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize(
    ("a", "b"), [(a, b) for _, a, b in DIFFERENT], ids=[i for i, _, _ in DIFFERENT]
)
def test_different_faults_have_different_fingerprints(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert fingerprint(a) != fingerprint(b)


@pytest.mark.parametrize(
    "fields",
    [{}, {"message": 42}, {"log": "flat"}, {"log": {"logger": ["a"]}}, {"message": None}],
)
def test_odd_field_types_still_fingerprint(fields: dict[str, Any]) -> None:
    assert len(fingerprint(fields)) == 20


def test_huge_message_costs_only_its_prefix() -> None:
    assert mask_message("word " * 1_000_000) == mask_message("word " * (MASK_INPUT_MAX // 5))


@pytest.mark.parametrize(
    ("fields", "title"),
    [
        (
            event("Database error recording daily input for SPK 4711"),
            "Database error recording daily input for SPK 4711",
        ),
        (event("first line\nsecond\x00line"), "first line second line"),
        ({"error": {"type": "ZeroDivisionError"}}, "ZeroDivisionError"),
        ({"log": {"logger": "app.database"}}, "app.database"),
        ({}, "(no message)"),
    ],
)
def test_group_title_is_the_first_message_on_one_line(fields: dict[str, Any], title: str) -> None:
    assert group_title(fields) == title


def test_group_title_is_bounded() -> None:
    assert len(group_title(event("x" * 10_000))) <= 120


def access(
    status: int = 502,
    path: str = "/api/spk/4711",
    client: str = "10.0.0.7",
    agent: str = "Mozilla/5.0",
    method: str = "GET",
) -> dict[str, Any]:
    return {
        "log": {"level": "error"},
        "event": {"dataset": "nginx.access"},
        "message": f'{client} - - [27/Nov/2026:10:00:00 +0000] "{method} {path} HTTP/1.1" '
        f'{status} 157 "-" "{agent}"',
        "http": {"request": {"method": method}, "response": {"status_code": status}},
        "url": {"path": path},
    }


def test_access_events_group_by_method_masked_path_and_status() -> None:
    a = access(client="10.0.0.7", agent="Mozilla/5.0 (X11; Linux)", path="/api/spk/4711")
    b = access(client="172.16.3.9", agent="curl/8.4.0", path="/api/spk/4712")

    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(access(status=504))
    assert fingerprint(a) != fingerprint(access(method="POST"))
    assert fingerprint(a) != fingerprint(access(path="/api/orders/1"))


def test_access_event_title_names_status_and_request() -> None:
    assert group_title(access()) == "HTTP 502 on GET /api/spk/4711"
