"""parse_nginx's fast path gives exactly what the general path gives, on every line."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from logpipe.parsers import Parsed
from logpipe.parsers import nginx as nginx_module
from logpipe.parsers.nginx import parse_nginx, parse_nginx_general
from logpipe.parsers.nginx_fields import is_ip
from tests.unit.parsers.equivalence import bench_workload, differences, mutations

TIME = "27/Nov/2026:17:00:00 +0700"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
USUAL = f'203.0.113.7 - - [{TIME}] "GET /api/orders?page=2 HTTP/1.1" 200 5123 "-" "{CHROME}"'

# The edge cases of test_nginx.py, as whole lines.
EDGE_LINES = [
    f'203.0.113.7 - alice [{TIME}] "GET /api/orders?page=2&size=50 HTTP/1.1" 200 5123 '
    f'"https://erp.example.com/orders" "{CHROME}"',
    f'198.51.100.4 - - [{TIME}] "POST /login HTTP/2.0" 302 0 "-" "-"',
    f'2001:db8::7 - - [{TIME}] "GET / HTTP/1.1" 304 0 "-" "curl/8.5.0"',
    f'::ffff:192.0.2.1 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"',
    f'unix: - - [{TIME}] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"',
    f'erp.example.com 203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"',
    f'erp.example.com:443 203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"',
    f'[2001:db8::1]:8443 2001:db8::7 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET /search?q=a+b&page=1#top HTTP/1.1" 200 1 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET /search? HTTP/1.1" 200 1 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET /old page.html HTTP/1.1" 400 1 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET /" 200 1 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET http://erp.example.com:8080/p?x=1 HTTP/1.1" 200 1',
    f'203.0.113.7 - - [{TIME}] "CONNECT erp.example.com:443 HTTP/1.1" 405 0 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 612',
    '203.0.113.7 - - [27/Nov/2026:10:00:00 -0330] "GET / HTTP/1.1" 200 1 "-" "-"',
    '203.0.113.7 - - [31/Dec/2026:23:30:00 -0100] "GET / HTTP/1.1" 200 1 "-" "-"',
    f'203.0.113.7, 10.0.0.2 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"',
    f'erp.example.com 198.51.100.9,203.0.113.7,10.0.0.2 - - [{TIME}] "GET / HTTP/1.1" 200 1',
    f'unknown, 1.2.3.4:5678, 10.0.0.2 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "-"',
    *(
        f'198.51.100.4 - - [{TIME}] "{request}" 400 157 "-" "-"'
        for request in ("", "-", "hello", "\\x16\\x03\\x01\\x02", "GET", "GET  /x HTTP/1.1")
    ),
    f'203.0.113.7 - - [{TIME}] "GET /q?s=\\"x\\" HTTP/1.1" 200 1 '
    f'"https://ref.example/?a=\\x22b\\x22" "Bot \\"quoted\\" v1" "10.0.0.1"',
    f'203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "C:\\x5CTemp \\\\ share"',
    f'203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "Mozilla \\xD0\\x9F"',
    f'203.0.113.7 - - [{TIME}] "GET /dir\\ HTTP/1.1" 404 1 "-" "agent\\"',
    *(
        f'203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 1 "-" "curl/8"{trailer}'
        for trailer in (' "-"', ' "1.2.3.4, 10.0.0.2"', " 0.005", ' "1.2.3.4" 0.1 "u \\"a\\""', " ")
    ),
    *(
        f'203.0.113.7 - - [{time_local}] "GET / HTTP/1.1" 200 1 "-" "-"'
        for time_local in ("32/Nov/2026:10:00:00 +0000", "27/Foo/2026:10:00:00 +0000", "", "27")
    ),
    "",
    "garbage",
    "2026/11/27 10:00:00 [error] 7#7: *1 open() failed (2: No such file or directory)",
    '{"remote_addr": "1.2.3.4"}',
    f'203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" OK 1 "-" "-"',
    f'203.0.113.7 - - [{TIME}] "GET / HTTP/1.1" 200 12abc',
    '203.0.113.7 - - [27/Nov/2026:10:00:00 +0000 "GET / HTTP/1.1" 200 1',
]

# One field at a time varies in the combinations below; each list starts with
# the usual value. Several are built to sit just inside or just outside the
# fast path's regex (see _USUAL in nginx.py).
ADDRESSES = [
    "203.0.113.7", "2001:db8::7", "::ffff:192.0.2.1", "::", "::1", ":::", "ABCD::ef",
    "fe80::1%eth0", "999.1.1.1", "1.2.3", "1.2.3.4.", "01.2.3.4", "1:2:3:4:5:6:7:8:9", "abc",
    "a" * 50 + ":", "unix:", "-", "unknown", "1.2.3.4:5678", "203.0.113.7, 10.0.0.2",
    "198.51.100.9,203.0.113.7", "erp.example.com 203.0.113.7", "erp.example.com:443 ::1",
    "[2001:db8::1]:8443 2001:db8::7", "- 203.0.113.7", "203.0.113.7 -", "\u00a0203.0.113.7",
]  # fmt: skip
IDENTS_AND_USERS = ["- -", "- alice", "- -x", "- [x", "- x]", '- "q"', "- ü", "x -", "- - -", "-"]
TIMES = [
    TIME, "27/nov/2026:17:00:00 +0700", "31/Dec/2026:23:30:00 -0100", "27/Nov/2026:17:00:00",
    "32/Nov/2026:10:00:00 +0000", "", "[27/Nov/2026:17:00:00 +0700", f"{TIME}] [{TIME}",
    "27/Nov/2026:17:00:00  +0700", "27/Nov/2026:17:00:00\t+0700", "٢٧/Nov/2026:17:00:00 +0700",
]  # fmt: skip
REQUESTS = [
    "GET /api?page=2 HTTP/1.1", "GET / HTTP/1.0", "POST /a?b=c#d HTTP/2.0", "GET /a#b?c HTTP/1.1",
    "GET /search? HTTP/1.1", "GET /x# HTTP/1.1", "GET //x HTTP/1.1", "GET /x HTTP/1",
    "GET /x HTTP/1.1.1", "GET /x HTTP/", "GET /x HTTP/\u0661.\u0661", "GET /x http/1.1",
    "get /x HTTP/1.1",
    "M-1_x /x HTTP/1.1", "1GET /x HTTP/1.1", "GET /old page.html HTTP/1.1",
    "GET /a HTTP/1.1 HTTP/1.1", "GET /a\tb HTTP/1.1", "GET /a\u00a0b HTTP/1.1",
    "GET /ü?é=ß HTTP/1.1", "GET /%22 HTTP/1.1", "GET /", "GET  /x HTTP/1.1", "GET /x  HTTP/1.1",
    "GET http://erp.example.com:8080/p?x=1 HTTP/1.1", "CONNECT erp.example.com:443 HTTP/1.1",
    "GET x HTTP/1.1", "", "-", "hello", "GET", "\\x16\\x03\\x01", 'GET /q?s=\\"x\\" HTTP/1.1',
]  # fmt: skip
STATUS_AND_BYTES = [
    "200 5123", "304 0", "200 -", "- 0", "- -", "999 1", "200 " + "9" * 18, "200 " + "9" * 19,
    "OK 1", "\u0662\u0660\u0660 1", "200 \u0661",  # Arabic-Indic digits
]  # fmt: skip
TAILS = [
    f' "-" "{CHROME}"', ' "-" "-"', ' "https://ref/" "curl/8"', ' "" ""', ' "ü" "ü"', "",
    ' "-"', ' "-" "x" "10.0.0.1"', ' "-" "x" 0.005', ' "-" "x" ', ' "-" "x"\n', ' "-" "x"\t',
    ' "https://ref.example/?a=\\x22b\\x22" "Bot \\"q\\" v1"', ' "a" "C:\\x5CTemp \\\\ share"',
    ' "a" "agent\\"', ' "-" "Mozilla \\xD0\\x9F"', ' "a"b" "c"', ' "-" "x" "y',
]  # fmt: skip
FIELDS = [ADDRESSES, IDENTS_AND_USERS, TIMES, REQUESTS, STATUS_AND_BYTES, TAILS]


def _line(fields: Sequence[str]) -> str:
    address, ident_user, time, request, status, tail = fields
    return f'{address} {ident_user} [{time}] "{request}" {status}{tail}'


def _one_field_varied() -> list[str]:
    usual = [values[0] for values in FIELDS]
    return [
        _line([*usual[:index], value, *usual[index + 1 :]])
        for index, values in enumerate(FIELDS)
        for value in values
    ]


def _random_combinations(count: int) -> list[str]:
    """Each field usual 3 times in 4, so that many lines still take the fast path."""
    rng = random.Random(5)
    return [
        _line([rng.choice(values if rng.random() < 0.25 else values[:1]) for values in FIELDS])
        for _ in range(count)
    ]


def _fallbacks(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> list[str]:
    """The lines parse_nginx hands to the general path."""
    handed: list[str] = []

    def general(text: str) -> Parsed:
        handed.append(text)
        return parse_nginx_general(text)

    monkeypatch.setattr(nginx_module, "parse_nginx_general", general)
    for text in lines:
        parse_nginx(text)
    return handed


def test_fast_path_gives_general_result_on_every_bench_workload_line() -> None:
    lines = bench_workload().access_lines(5000)

    assert differences(parse_nginx, parse_nginx_general, lines) == []


def test_every_bench_workload_line_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = bench_workload().access_lines(5000)

    assert _fallbacks(monkeypatch, lines) == []


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(EDGE_LINES, id="edge-cases-of-test-nginx"),
        pytest.param(_one_field_varied(), id="one-field-varied"),
        pytest.param(_random_combinations(4000), id="random-field-combinations"),
    ],
)
def test_fast_path_gives_general_result_on_tricky_lines(
    lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert differences(parse_nginx, parse_nginx_general, lines) == []
    # Both paths are exercised, so the comparison covers the fast path's edges.
    assert len(lines) / 10 < len(_fallbacks(monkeypatch, lines)) < len(lines) * 9 / 10


def test_fast_path_gives_general_result_on_mutated_lines() -> None:
    seeds = [USUAL, *bench_workload().access_lines(50)]
    alphabet = '"\\[] ,:-#?/.0123456789aAxHTP\t\n\u00a0\u2028\u0661ü'
    lines = mutations(random.Random(3), seeds, alphabet, 5000)

    assert differences(parse_nginx, parse_nginx_general, lines) == []


def test_results_share_no_mutable_state_between_calls() -> None:
    first = parse_nginx(USUAL)
    expected = repr(first)
    first.fields["source"]["ip"] = "changed"
    first.fields["http"]["request"]["method"] = "changed"
    first.tags.append("changed")

    assert repr(parse_nginx(USUAL)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", True),
        ("2001:db8::7", True),
        ("::ffff:192.0.2.1", True),
        ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", True),
        ("fe80::1%eth0", False),
        ("1.2.3.4:5678", False),
        ("unknown", False),
        ("1:" * 30 + "1", False),
    ],
)
def test_ip_check_answers_the_same_from_its_cache(value: str, expected: bool) -> None:
    answers = [is_ip(value) for _ in range(3)]

    assert answers == [expected] * 3
