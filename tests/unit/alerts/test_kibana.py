"""Kibana Discover links: correct state, and no request id can break out of its string.

Each URL is parsed back the way Kibana does: split the fragment, percent-decode
``_g``/``_a``, parse the rison, then read the KQL string. A tiny rison parser
lives here so that the check does not trust the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from logpipe.alerts.kibana import discover_url, event_link, group_link, kql_string, rison_string

BASE = "https://kibana.example.com/base"
T0 = datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC).timestamp()


# -- a minimal rison parser (objects, strings, bare words) --------------------------


class _Rison:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def parse(self) -> Any:
        value = self.value()
        assert self.pos == len(self.text), f"trailing text at {self.pos}: {self.text[self.pos :]!r}"
        return value

    def value(self) -> Any:
        char = self.text[self.pos]
        if char == "(":
            return self.object()
        if char == "'":
            return self.string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "(),:'!":
            self.pos += 1
        assert self.pos > start, f"empty word at {start}"
        return self.text[start : self.pos]

    def object(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        while self.text[self.pos] != ")":
            key = self.value()
            assert self.text[self.pos] == ":", f"expected ':' at {self.pos}"
            self.pos += 1
            result[key] = self.value()
            if self.text[self.pos] == ",":
                self.pos += 1
        self.pos += 1
        return result

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            char = self.text[self.pos]
            if char == "'":
                self.pos += 1
                return "".join(out)
            if char == "!":
                escaped = self.text[self.pos + 1]
                assert escaped in "!'", f"bad rison escape !{escaped}"
                out.append(escaped)
                self.pos += 2
            else:
                out.append(char)
                self.pos += 1


def rison(text: str) -> Any:
    return _Rison(text).parse()


def kql_unquote(text: str) -> str:
    """Read one quoted KQL string that must span the whole text."""
    assert text.startswith('"') and text.endswith('"') and len(text) >= 2
    out, i = [], 1
    while i < len(text) - 1:
        if text[i] == "\\":
            out.append(text[i + 1])
            i += 2
        else:
            assert text[i] != '"', "unescaped quote ends the string early"
            out.append(text[i])
            i += 1
    assert i == len(text) - 1, "the closing quote was escaped"
    return "".join(out)


def state(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (_g, _a) rison objects of a Discover URL."""
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.path == "/base/app/discover"
    route, _, query = parts.fragment.partition("?")
    assert route == "/"
    params = parse_qs(query, strict_parsing=True)
    assert set(params) == {"_g", "_a"}
    (g,), (a,) = params["_g"], params["_a"]
    return rison(g), rison(a)


# -- tests --------------------------------------------------------------------------


def test_event_with_request_id_links_to_its_request() -> None:
    fields = {"@timestamp": "2026-11-27T10:00:00.123Z", "http": {"request": {"id": "req-1"}}}

    g, a = state(event_link(BASE, fields, fallback=0))

    assert a == {
        "dataSource": {"dataViewId": "erp-logs", "type": "dataViewId"},
        "query": {"language": "kuery", "query": 'http.request.id:"req-1"'},
    }
    assert g == {"time": {"from": "2026-11-27T09:45:00.123Z", "to": "2026-11-27T10:15:00.123Z"}}


def test_event_without_request_id_links_to_one_minute_either_side() -> None:
    fields = {"@timestamp": "2026-11-27T10:00:00.123Z"}

    g, a = state(event_link(BASE, fields, fallback=0))

    assert g["time"] == {"from": "2026-11-27T09:59:00.123Z", "to": "2026-11-27T10:01:00.123Z"}
    assert a["query"] == {"language": "kuery", "query": ""}


def test_event_without_timestamp_uses_the_fallback_time() -> None:
    g, _ = state(event_link(BASE, {"@timestamp": "garbage"}, fallback=T0))

    assert g["time"]["from"] == "2026-11-27T09:59:00.123Z"


def test_naive_and_offset_timestamps_are_shown_in_utc() -> None:
    naive, _ = state(event_link(BASE, {"@timestamp": "2026-11-27T10:00:00"}, fallback=0))
    offset, _ = state(event_link(BASE, {"@timestamp": "2026-11-27T17:00:00+07:00"}, fallback=0))

    assert naive["time"]["from"] == offset["time"]["from"] == "2026-11-27T09:59:00.000Z"


NASTY_IDS = [
    "req-1",
    'x" or log.level:"info',
    "x\\",
    'x\\" or *',
    "it's",
    "bang!",
    "!'",
    "')&_a=(evil:1)",
    "&_g=(time:(from:now-1y))#frag",
    "a+b c%20d",
    "(),:!'*",
    "ünïcödé 💥",
    "tab\there",
    "new\nline",
]


@pytest.mark.parametrize("request_id", NASTY_IDS)
def test_request_id_cannot_break_out_of_the_query_string(request_id: str) -> None:
    fields = {"@timestamp": "2026-11-27T10:00:00Z", "http": {"request": {"id": request_id}}}

    url = event_link(BASE, fields, fallback=0)
    _, a = state(url)

    assert url.isascii() and " " not in url and "#" not in url.split("#", 1)[1]
    assert set(a) == {"dataSource", "query"}
    assert a["dataSource"] == {"dataViewId": "erp-logs", "type": "dataViewId"}
    field, _, quoted = a["query"]["query"].partition(":")
    assert field == "http.request.id"
    expected = " ".join(request_id.replace("\t", " ").split())  # controls become spaces
    assert kql_unquote(quoted) == expected


@pytest.mark.parametrize("text", ["plain", "it's", "!", "!!'", "'!'"])
def test_rison_string_round_trips(text: str) -> None:
    assert rison(rison_string(text)) == text


@pytest.mark.parametrize("text", ["plain", 'a"b', "a\\b", '\\"'])
def test_kql_string_round_trips(text: str) -> None:
    assert kql_unquote(kql_string(text)) == text


def test_group_link_covers_the_period_and_filters_on_logger_and_level() -> None:
    sample = {"log": {"logger": "app.database", "level": "error"}}

    g, a = state(group_link(BASE, sample, first_at=T0, last_at=T0 + 600))

    assert g["time"] == {"from": "2026-11-27T09:59:00.123Z", "to": "2026-11-27T10:11:00.123Z"}
    assert a["query"]["query"] == 'log.logger:"app.database" and log.level:"error"'


def test_custom_data_view_and_trailing_slash() -> None:
    url = discover_url(
        BASE + "/",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 2, tzinfo=UTC),
        data_view="other-view",
    )

    _, a = state(url)
    assert a["dataSource"]["dataViewId"] == "other-view"
    assert "/base/app/discover#" in url


@pytest.mark.parametrize("base", ["javascript:alert(1)", "ftp://kibana", "kibana.example.com"])
def test_only_http_bases_are_accepted(base: str) -> None:
    with pytest.raises(ValueError):
        event_link(base, {}, fallback=0)
