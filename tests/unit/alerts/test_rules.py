"""AlertRule: which events raise an alert."""

from __future__ import annotations

from typing import Any

import pytest

from logpipe.alerts.rules import AlertRule, first_match


def event(level: Any) -> dict[str, Any]:
    return {"log": {"level": level}, "message": "m"}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("error", True),
        ("critical", True),
        ("ERROR", True),
        ("Critical", True),
        (" error ", True),
        ("warning", False),
        ("info", False),
        ("debug", False),
        ("", False),
        ("errors", False),
        (None, False),
        (40, False),
        (["error"], False),
        ({"name": "error"}, False),
    ],
)
def test_default_rule_matches_error_and_critical_only(level: Any, expected: bool) -> None:
    assert AlertRule().matches(event(level)) is expected


def test_event_without_log_level_never_matches() -> None:
    assert not AlertRule().matches({"message": "no level"})
    assert not AlertRule().matches({"log": "flat string, not an object"})
    assert not AlertRule().matches({})


def test_configured_levels_compare_case_insensitively() -> None:
    rule = AlertRule(frozenset({"WARNING", "Error"}))

    assert rule.levels == frozenset({"warning", "error"})
    assert rule.matches(event("warning"))
    assert rule.matches(event("ERROR"))
    assert not rule.matches(event("critical"))


def test_for_levels_accepts_a_config_list() -> None:
    assert AlertRule.for_levels(["Critical"]).matches(event("critical"))


@pytest.mark.parametrize("levels", [frozenset(), frozenset({""}), frozenset({"  "})])
def test_rejects_empty_level_names(levels: frozenset[str]) -> None:
    with pytest.raises(ValueError):
        AlertRule(levels)


def test_rejects_a_single_string_instead_of_a_list() -> None:
    # for_levels("error") would otherwise mean {"e", "r", "o"}.
    with pytest.raises(TypeError):
        AlertRule.for_levels("error")


# -- conditions ----------------------------------------------------------------------


def access(status: Any, dataset: str = "nginx.access", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "log": {"level": "error", "logger": extra.pop("logger", "nginx")},
        "event": {"dataset": dataset},
        "http": {"response": {"status_code": status}},
        "tags": ["edge", "prod"],
    }
    fields.update(extra)
    return fields


# (id, when, fields, expected)
CONDITIONS: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("glob-hit", {"log.logger": "app.database*"}, access(500, logger="app.database.pool"), True),
    ("glob-miss", {"log.logger": "app.database*"}, access(500, logger="app.api"), False),
    ("glob-is-case-sensitive", {"log.logger": "App.*"}, access(500, logger="app.x"), False),
    ("equality", {"event.dataset": "nginx.access"}, access(500), True),
    ("equality-miss", {"event.dataset": "nginx.access"}, access(500, "nginx.error"), False),
    ("string-vs-number", {"http.response.status_code": "500"}, access(500), True),
    ("number", {"http.response.status_code": 502}, access(502), True),
    ("number-vs-numeric-string", {"http.response.status_code": 502}, access("502"), True),
    ("gte-hit", {"http.response.status_code": {"gte": 500}}, access(503), True),
    ("gte-miss", {"http.response.status_code": {"gte": 500}}, access(404), False),
    ("range", {"http.response.status_code": {"gte": 500, "lt": 504}}, access(504), False),
    ("gt-on-text-never", {"http.response.status_code": {"gt": 1}}, access("n/a"), False),
    ("gt-on-bool-never", {"http.response.status_code": {"gt": 0}}, access(True), False),
    (
        "missing-field",
        {"http.response.status_code": {"gte": 500}},
        {"log": {"level": "error"}},
        False,
    ),
    ("any-of", {"log.logger": ["app.api*", "nginx"]}, access(500), True),
    ("in", {"http.response.status_code": {"in": [502, 503]}}, access(503), True),
    ("not-in", {"http.response.status_code": {"not_in": [502, 503]}}, access(500), True),
    ("ne", {"event.dataset": {"ne": "nginx.access"}}, access(500), False),
    ("ne-on-missing", {"user.id": {"ne": "42"}}, access(500), True),
    ("exists", {"http.response.status_code": {"exists": True}}, access(500), True),
    ("not-exists", {"user.id": {"exists": False}}, access(500), True),
    ("list-field-any", {"tags": "prod"}, access(500), True),
    ("list-field-ne", {"tags": {"ne": "prod"}}, access(500), False),
    ("bool", {"labels.canary": True}, access(500, labels={"canary": True}), True),
    ("bool-vs-one", {"labels.canary": True}, access(500, labels={"canary": 1}), False),
    (
        "all-must-hold",
        {"event.dataset": "nginx.access", "http.response.status_code": {"gte": 500}},
        access(404),
        False,
    ),
]


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [(w, f, e) for _, w, f, e in CONDITIONS],
    ids=[i for i, _, _, _ in CONDITIONS],
)
def test_when_conditions(when: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    assert AlertRule(name="r", when=when).matches(fields) is expected


def test_conditions_apply_only_after_the_level_matches() -> None:
    rule = AlertRule(name="5xx", when={"http.response.status_code": {"gte": 500}})
    info = access(503)
    info["log"]["level"] = "info"

    assert not rule.matches(info)


@pytest.mark.parametrize(
    "when",
    [
        {"x": {"greater": 1}},
        {"x": {}},
        {"x": []},
        {"x": {"gte": "500"}},
        {"x": {"gte": True}},
        {"x": {"in": 5}},
        {"x": {"exists": "yes"}},
        {"x": None},
        {"x": {"a": 1}},
    ],
)
def test_malformed_conditions_are_refused_with_the_field_name(when: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="x"):
        AlertRule(name="r", when=when)


def test_first_matching_rule_wins() -> None:
    database = AlertRule(name="database", when={"log.logger": "app.database*"}, to=("dba@x.test",))
    everything = AlertRule(name="everything")
    rules = [database, everything]

    assert first_match(rules, access(500, logger="app.database")) is database
    assert first_match(rules, access(500, logger="app.api")) is everything
    assert first_match(rules, {"log": {"level": "info"}}) is None


@pytest.mark.parametrize("address", ["a@x.test\r\nBcc: e@vil.test", "a@x.test, b@x.test", "nobody"])
def test_rule_recipients_must_be_one_address_each(address: str) -> None:
    with pytest.raises(ValueError):
        AlertRule(name="r", to=(address,))


def test_rule_recipients_as_one_string_are_refused() -> None:
    with pytest.raises(TypeError):
        AlertRule(name="r", to="ops@x.test")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "база", "x" * 65, "a:b"])
def test_rule_names_are_short_plain_words(name: str) -> None:
    with pytest.raises(ValueError):
        AlertRule(name=name)
