"""The nginx access log parsers, on lines as real nginx configurations write them."""

from __future__ import annotations

import ipaddress
import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from logpipe.event import get_path
from logpipe.parsers import Parsed
from logpipe.parsers.nginx import parse_nginx, parse_nginx_json

ABSENT = object()
TIME = "[27/Nov/2026:17:00:00 +0700]"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def assert_paths(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    for path, value in expected.items():
        if value is ABSENT:
            assert get_path(fields, path) is None, path
        else:
            assert get_path(fields, path) == value, path


def test_combined_line_maps_every_field_to_ecs() -> None:
    text = (
        f'203.0.113.7 - alice {TIME} "GET /api/orders?page=2&size=50 HTTP/1.1" 200 5123 '
        f'"https://erp.example.com/orders" "{CHROME}"'
    )

    parsed = parse_nginx(text)

    assert parsed.tags == []
    assert parsed.timestamp == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert parsed.fields == {
        "message": text,
        "@timestamp": "2026-11-27T10:00:00Z",
        "source": {"address": "203.0.113.7", "ip": "203.0.113.7"},
        "user": {"name": "alice"},
        "url": {
            "original": "/api/orders?page=2&size=50",
            "path": "/api/orders",
            "query": "page=2&size=50",
        },
        "http": {
            "request": {"method": "GET", "referrer": "https://erp.example.com/orders"},
            "version": "1.1",
            "response": {"status_code": 200, "body": {"bytes": 5123}},
        },
        "user_agent": {"original": CHROME},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f'198.51.100.4 - - {TIME} "POST /login HTTP/2.0" 302 0 "-" "-"',
            {
                "user.name": ABSENT,
                "http.request.referrer": ABSENT,
                "user_agent.original": ABSENT,
                "http.version": "2.0",
                "http.request.method": "POST",
                "http.response.body.bytes": 0,
            },
            id="dashes-mean-absent",
        ),
        pytest.param(
            f'2001:db8::7 - - {TIME} "GET / HTTP/1.1" 304 0 "-" "curl/8.5.0"',
            {"source.address": "2001:db8::7", "source.ip": "2001:db8::7"},
            id="ipv6-client",
        ),
        pytest.param(
            f'::ffff:192.0.2.1 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "-"',
            {"source.ip": "::ffff:192.0.2.1"},
            id="ipv4-mapped-ipv6-client",
        ),
        pytest.param(
            f'unix: - - {TIME} "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"',
            {"source.address": "unix:", "source.ip": ABSENT, "url.path": "/healthz"},
            id="unix-socket-client",
        ),
        pytest.param(
            f'erp.example.com 203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "-"',
            {"url.domain": "erp.example.com", "url.port": ABSENT, "source.ip": "203.0.113.7"},
            id="leading-virtual-host",
        ),
        pytest.param(
            f'erp.example.com:443 203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "-"',
            {"url.domain": "erp.example.com", "url.port": 443, "source.ip": "203.0.113.7"},
            id="leading-virtual-host-with-port",
        ),
        pytest.param(
            f'[2001:db8::1]:8443 2001:db8::7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "-"',
            {"url.domain": "2001:db8::1", "url.port": 8443, "source.ip": "2001:db8::7"},
            id="bracketed-ipv6-virtual-host",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "GET /search?q=a+b&page=1#top HTTP/1.1" 200 1 "-" "-"',
            {"url.path": "/search", "url.query": "q=a+b&page=1", "url.fragment": "top"},
            id="query-and-fragment",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "GET /search? HTTP/1.1" 200 1 "-" "-"',
            {"url.path": "/search", "url.query": ABSENT, "url.original": "/search?"},
            id="empty-query",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "GET /old page.html HTTP/1.1" 400 1 "-" "-"',
            {"url.original": "/old page.html", "http.version": "1.1"},
            id="space-in-target",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "GET /" 200 1 "-" "-"',
            {"http.request.method": "GET", "url.path": "/", "http.version": ABSENT},
            id="http-0.9-request-without-version",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "GET http://erp.example.com:8080/p?x=1 HTTP/1.1" 200 1',
            {
                "url.scheme": "http",
                "url.domain": "erp.example.com",
                "url.path": "/p",
                "url.query": "x=1",
            },
            id="absolute-form-target-to-proxy",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "CONNECT erp.example.com:443 HTTP/1.1" 405 0 "-" "-"',
            {"url.original": "erp.example.com:443", "url.path": ABSENT},
            id="connect-authority-target",
        ),
        pytest.param(
            f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 612',
            {"http.response.body.bytes": 612, "user_agent.original": ABSENT},
            id="common-format-without-referrer-and-agent",
        ),
        pytest.param(
            '203.0.113.7 - - [27/Nov/2026:10:00:00 -0330] "GET / HTTP/1.1" 200 1 "-" "-"',
            {"@timestamp": "2026-11-27T13:30:00Z"},
            id="negative-half-hour-offset",
        ),
        pytest.param(
            '203.0.113.7 - - [31/Dec/2026:23:30:00 -0100] "GET / HTTP/1.1" 200 1 "-" "-"',
            {"@timestamp": "2027-01-01T00:30:00Z"},
            id="offset-crosses-new-year",
        ),
    ],
)
def test_combined_variants_written_by_real_nginx(text: str, expected: dict[str, Any]) -> None:
    parsed = parse_nginx(text)

    assert parsed.tags == []
    assert parsed.fields["message"] == text
    assert_paths(parsed.fields, expected)


def test_xff_list_before_client_takes_leftmost_as_source_ip() -> None:
    text = f'203.0.113.7, 10.0.0.2 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "-"'

    fields = parse_nginx(text).fields

    assert fields["source"] == {"address": "203.0.113.7", "ip": "203.0.113.7"}
    assert fields["network"] == {"forwarded_ip": ["203.0.113.7", "10.0.0.2"]}
    assert fields["nginx"]["access"]["remote_ip_list"] == ["203.0.113.7", "10.0.0.2"]


def test_xff_list_without_spaces_and_with_vhost_is_split() -> None:
    text = f'erp.example.com 198.51.100.9,203.0.113.7,10.0.0.2 - - {TIME} "GET / HTTP/1.1" 200 1'

    fields = parse_nginx(text).fields

    assert fields["url"]["domain"] == "erp.example.com"
    assert fields["source"]["ip"] == "198.51.100.9"
    assert fields["network"]["forwarded_ip"] == ["198.51.100.9", "203.0.113.7", "10.0.0.2"]


def test_invalid_entries_in_xff_list_stay_out_of_ip_fields() -> None:
    text = f'unknown, 1.2.3.4:5678, 10.0.0.2 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "-"'

    fields = parse_nginx(text).fields

    assert fields["source"] == {"address": "unknown"}
    assert fields["network"] == {"forwarded_ip": ["10.0.0.2"]}
    assert fields["nginx"]["access"]["remote_ip_list"] == ["unknown", "1.2.3.4:5678", "10.0.0.2"]


@pytest.mark.parametrize(
    ("request_text", "expected_original"),
    [
        ("", ABSENT),
        ("-", ABSENT),
        ("hello", "hello"),
        # TLS handshake sent to the HTTP port: kept escaped, as nginx wrote it.
        (
            "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03",
            "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03",
        ),
        ("GET", "GET"),
        ("GET  /double-space HTTP/1.1", "GET  /double-space HTTP/1.1"),
    ],
)
def test_bad_request_line_is_tagged_but_rest_of_line_is_parsed(
    request_text: str, expected_original: Any
) -> None:
    text = f'198.51.100.4 - - {TIME} "{request_text}" 400 157 "-" "-"'

    parsed = parse_nginx(text)

    assert parsed.tags == ["_nginx_bad_request_line"]
    assert get_path(parsed.fields, "http.request.method") is None
    assert parsed.fields["http"]["response"] == {"status_code": 400, "body": {"bytes": 157}}
    assert parsed.fields["source"]["ip"] == "198.51.100.4"
    assert parsed.fields["@timestamp"] == "2026-11-27T10:00:00Z"
    assert_paths(parsed.fields, {"url.original": expected_original})


@pytest.mark.parametrize(
    ("quoted_agent", "expected_agent"),
    [
        ('Bot \\"quoted\\" v1', 'Bot "quoted" v1'),
        ("Bot \\x22quoted\\x22 v1", 'Bot "quoted" v1'),
        ("C:\\x5CTemp \\\\ share", "C:\\Temp \\ share"),
        ("Mozilla \\xD0\\x9F", "Mozilla \\xD0\\x9F"),
    ],
)
def test_escaped_quotes_inside_quoted_fields_do_not_break_parsing(
    quoted_agent: str, expected_agent: str
) -> None:
    text = (
        f'203.0.113.7 - - {TIME} "GET /q?s=\\"x\\" HTTP/1.1" 200 1 '
        f'"https://ref.example/?a=\\x22b\\x22" "{quoted_agent}" "10.0.0.1"'
    )

    parsed = parse_nginx(text)

    assert parsed.tags == []
    assert parsed.fields["user_agent"]["original"] == expected_agent
    assert parsed.fields["url"]["query"] == 's="x"'
    assert parsed.fields["http"]["request"]["referrer"] == 'https://ref.example/?a="b"'
    assert parsed.fields["nginx"]["access"]["extra"] == ["10.0.0.1"]


def test_lone_backslash_at_end_of_field_falls_back_to_plain_quotes() -> None:
    text = f'203.0.113.7 - - {TIME} "GET /dir\\ HTTP/1.1" 404 1 "-" "agent\\"'

    parsed = parse_nginx(text)

    assert parsed.tags == []
    assert parsed.fields["http"]["response"]["status_code"] == 404
    assert parsed.fields["user_agent"]["original"] == "agent\\"


@pytest.mark.parametrize(
    ("trailer", "extra"),
    [
        (' "-"', ["-"]),
        (' "203.0.113.7, 10.0.0.2"', ["203.0.113.7, 10.0.0.2"]),
        (" 0.005", ["0.005"]),
        (' "1.2.3.4" 0.123 "upstream \\"a\\""', ["1.2.3.4", "0.123", 'upstream "a"']),
        (" ", ABSENT),
    ],
)
def test_trailing_extra_fields_are_kept_as_strings(trailer: str, extra: Any) -> None:
    text = f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "curl/8"{trailer}'

    parsed = parse_nginx(text)

    assert parsed.tags == []
    assert parsed.fields["user_agent"]["original"] == "curl/8"
    assert_paths(parsed.fields, {"nginx.access.extra": extra})


@pytest.mark.parametrize(
    "time_local",
    ["32/Nov/2026:10:00:00 +0000", "27/Foo/2026:10:00:00 +0000", "27/Nov/2026:10:00:00", ""],
)
def test_bad_time_is_tagged_and_kept(time_local: str) -> None:
    parsed = parse_nginx(f'203.0.113.7 - - [{time_local}] "GET / HTTP/1.1" 200 1 "-" "-"')

    assert parsed.tags == ["_timestampparsefailure"]
    assert parsed.timestamp is None
    assert "@timestamp" not in parsed.fields
    assert parsed.fields["nginx"]["access"]["time_local"] == time_local
    assert parsed.fields["http"]["response"]["status_code"] == 200


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2026/11/27 10:00:00 [error] 7#7: *1 open() failed (2: No such file or directory)",
        '{"remote_addr": "1.2.3.4"}',
        f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" OK 1 "-" "-"',
        f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 12abc',
        '203.0.113.7 - - [27/Nov/2026:10:00:00 +0000 "GET / HTTP/1.1" 200 1',
    ],
)
def test_line_that_does_not_match_is_shipped_whole_with_nginxparsefailure(text: str) -> None:
    parsed = parse_nginx(text)

    assert parsed == Parsed({"message": text}, ["_nginxparsefailure"], None)


def test_json_access_line_maps_to_same_fields_as_combined() -> None:
    record = {
        "time_local": "27/Nov/2026:17:00:00 +0700",
        "remote_addr": "203.0.113.7",
        "remote_user": "alice",
        "request": "GET /api/orders?page=2 HTTP/1.1",
        "status": "200",
        "body_bytes_sent": "5123",
        "http_referer": "https://erp.example.com/orders",
        "http_user_agent": CHROME,
    }
    text = json.dumps(record)
    combined = (
        f'203.0.113.7 - alice {TIME} "GET /api/orders?page=2 HTTP/1.1" 200 5123 '
        f'"https://erp.example.com/orders" "{CHROME}"'
    )

    from_json, from_combined = parse_nginx_json(text), parse_nginx(combined)

    assert from_json.tags == from_combined.tags == []
    assert from_json.timestamp == from_combined.timestamp
    assert {**from_json.fields, "message": ""} == {**from_combined.fields, "message": ""}
    assert from_json.fields["message"] == text


def test_json_access_line_with_forwarded_for_request_time_and_unknown_keys() -> None:
    record = {
        "time_iso8601": "2026-11-27T17:00:00+07:00",
        "remote_addr": "10.0.0.2",
        "http_x_forwarded_for": "203.0.113.7, 10.0.0.1",
        "remote_user": "-",
        "request": "POST /api/orders HTTP/2.0",
        "status": 201,
        "body_bytes_sent": 48,
        "http_referer": "",
        "http_user_agent": "-",
        "request_time": "0.123",
        "upstream_response_time": "0.120",
        "upstream": {"addr": "10.1.1.1:8000"},
    }

    parsed = parse_nginx_json(json.dumps(record))

    assert parsed.tags == []
    assert parsed.timestamp == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert_paths(
        parsed.fields,
        {
            "@timestamp": "2026-11-27T10:00:00Z",
            "source.address": "203.0.113.7",
            "source.ip": "203.0.113.7",
            "network.forwarded_ip": ["203.0.113.7", "10.0.0.1", "10.0.0.2"],
            "user.name": ABSENT,
            "http.request.referrer": ABSENT,
            "user_agent.original": ABSENT,
            "http.response.status_code": 201,
            "http.response.body.bytes": 48,
            "event.duration": 123_000_000,
            "nginx.access.upstream_response_time": "0.120",
            "nginx.access.upstream": {"addr": "10.1.1.1:8000"},
        },
    )


@pytest.mark.parametrize(
    ("time_fields", "expected"),
    [
        ({"time_iso8601": "2026-11-27T10:00:00+00:00"}, "2026-11-27T10:00:00Z"),
        ({"msec": "1795773600.123"}, "2026-11-27T10:00:00.123Z"),
        ({"msec": 1795773600.5}, "2026-11-27T10:00:00.5Z"),
        ({"time_local": "27/Nov/2026:10:00:00 +0000"}, "2026-11-27T10:00:00Z"),
        (
            {"time_iso8601": "not a time", "time_local": "27/Nov/2026:10:00:00 +0000"},
            "2026-11-27T10:00:00Z",
        ),
    ],
)
def test_json_access_time_from_any_nginx_time_variable(
    time_fields: dict[str, Any], expected: str
) -> None:
    parsed = parse_nginx_json(json.dumps({"remote_addr": "1.2.3.4", **time_fields}))

    assert parsed.fields["@timestamp"] == expected
    assert "_timestampparsefailure" not in parsed.tags


@pytest.mark.parametrize("time_fields", [{}, {"time_local": "yesterday"}, {"msec": "-1"}])
def test_json_access_without_usable_time_is_tagged_and_keeps_value(
    time_fields: dict[str, Any],
) -> None:
    parsed = parse_nginx_json(json.dumps({"remote_addr": "1.2.3.4", **time_fields}))

    assert parsed.tags == ["_timestampparsefailure"]
    assert parsed.timestamp is None
    for key, value in time_fields.items():
        assert parsed.fields["nginx"]["access"][key] == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("status", "OK"),
        ("status", -1),
        ("body_bytes_sent", "1e3"),
        ("body_bytes_sent", "9" * 30),
        ("request_time", "fast"),
        ("request_time", "inf"),
        ("remote_addr", ["1.2.3.4"]),
    ],
)
def test_json_access_unparseable_known_value_is_kept_unchanged(key: str, value: Any) -> None:
    parsed = parse_nginx_json(json.dumps({"time_iso8601": "2026-11-27T10:00:00Z", key: value}))

    assert parsed.fields["nginx"]["access"][key] == value
    orjson.dumps(parsed.fields)


@pytest.mark.parametrize("text", ["", "garbage", "[1, 2]", '"str"', "42", '{"status": "200"'])
def test_json_access_line_that_is_not_an_object_gets_jsonparsefailure(text: str) -> None:
    parsed = parse_nginx_json(text)

    assert parsed.tags == ["_jsonparsefailure"]
    assert parsed.fields["message"] == text
    assert parsed.fields["error"]["message"]


def test_json_access_bad_request_line_is_tagged() -> None:
    parsed = parse_nginx_json('{"time_iso8601": "2026-11-27T10:00:00Z", "request": ""}')

    assert parsed.tags == ["_nginx_bad_request_line"]


SEEDS = [
    f'erp.example.com:443 203.0.113.7, 10.0.0.2 - bob {TIME} "GET /a?b=c HTTP/1.1" 200 5 '
    f'"https://ref/\\x22" "{CHROME}" "-" 0.004',
    f'2001:db8::7 - - {TIME} "\\x16\\x03\\x01" 400 0 "-" "-"',
]


def _random_text(rng: random.Random) -> str:
    length = rng.randrange(0, 300)
    return bytes(rng.randrange(256) for _ in range(length)).decode("utf-8", errors="replace")


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randrange(1, 6)):
        position = rng.randrange(len(chars) + 1)
        if rng.random() < 0.5 and position < len(chars):
            del chars[position]
        else:
            chars.insert(position, rng.choice('"\\[] ,:-0x9/\ufffd'))
    return "".join(chars)


def _assert_indexable(fields: dict[str, Any]) -> None:
    orjson.dumps(fields)
    source_ip = get_path(fields, "source.ip")
    if source_ip is not None:
        ipaddress.ip_address(source_ip)
    for forwarded in get_path(fields, "network.forwarded_ip") or []:
        ipaddress.ip_address(forwarded)
    status = get_path(fields, "http.response.status_code")
    assert status is None or 0 <= status <= 999


def test_never_raises_on_random_bytes() -> None:
    rng = random.Random(20261127)
    for _ in range(500):
        text = _random_text(rng)
        for parser in (parse_nginx, parse_nginx_json):
            parsed = parser(text)
            assert parsed.fields["message"] == text
            _assert_indexable(parsed.fields)


def test_never_raises_on_mutated_real_lines_and_stays_indexable() -> None:
    rng = random.Random(11)
    for _ in range(1000):
        text = _mutate(rng, rng.choice(SEEDS))
        parsed = parse_nginx(text)
        assert parsed.fields["message"] == text
        _assert_indexable(parsed.fields)
        json_parsed = parse_nginx_json(
            json.dumps({"remote_addr": text[:40], "request": text, "time_local": text[-26:]})
        )
        _assert_indexable(json_parsed.fields)


@pytest.mark.parametrize(("value", "expected"), [("f3a9c2", "f3a9c2"), ("-", ABSENT), ("", ABSENT)])
def test_json_access_request_id_is_the_ecs_request_id_the_app_logs(
    value: str, expected: Any
) -> None:
    record = {
        "time_iso8601": "2026-11-27T10:00:00+00:00",
        "request": "GET /api/orders HTTP/1.1",
        "status": 200,
        "request_id": value,
    }
    parsed = parse_nginx_json(json.dumps(record))
    assert_paths(
        parsed.fields,
        {
            "http.request.id": expected,
            "http.request.method": "GET",
            "nginx.access.request_id": ABSENT,
        },
    )
