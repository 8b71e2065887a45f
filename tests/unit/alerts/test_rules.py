"""AlertRule: which events raise an alert."""

from __future__ import annotations

from typing import Any

import pytest

from logpipe.alerts.rules import AlertRule


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
