"""Which events deserve an alert, and who gets it.

Pure: a rule looks at an event's ECS fields and answers yes or no. It is the
first stage of the alert path (rule -> policy -> spool -> sender), so it runs
for every event and must stay cheap: the level is checked first (one
``str.lower`` and a set lookup), and the ``when`` conditions are compiled once,
when the rule is built.

Conditions, one per dotted field name, all of which must hold::

    "log.logger": "app.database*"          glob (fnmatch, case-sensitive); without
                                           * ? [ it is plain equality
    "event.dataset": "nginx.access"        equality (numbers compare as text: "500")
    "http.response.status_code": 503       equality with a number (or true/false)
    "log.logger": ["app.api*", "app.db"]   any of
    "http.response.status_code": {"gte": 500, "lt": 600}
                                           operators: eq ne gt gte lt lte in not_in exists

A field holding a list matches when any element does (``ne``/``not_in``: when
none does). A missing field matches only ``exists: false``, ``ne`` and ``not_in``.

Several rules: :func:`first_match` returns the first rule, in configuration
order, that matches; an event is grouped and e-mailed under that rule only.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from logpipe.alerts.render import check_address
from logpipe.event import get_path

DEFAULT_LEVELS: frozenset[str] = frozenset({"error", "critical"})

Predicate = Callable[[Any], bool]
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
OPERATORS = frozenset({"eq", "ne", "in", "not_in", "exists", *_COMPARE})
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Match events whose ``log.level`` is one of ``levels`` and ``when`` holds.

    ``levels`` compare case-insensitively; they are normalised to lower case
    once, here. ``to``/``cc`` are this rule's recipients (empty ``to``: the
    alert service's default recipients). Raises ValueError or TypeError on a
    malformed rule, so that configuration checking can report it.
    """

    levels: frozenset[str] = DEFAULT_LEVELS
    name: str = "default"
    when: Mapping[str, Any] = field(default_factory=dict, hash=False)
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    _checks: tuple[tuple[str, Predicate], ...] = field(
        init=False, repr=False, compare=False, hash=False, default=()
    )

    def __post_init__(self) -> None:
        # frozen dataclass: normalise through object.__setattr__, once.
        object.__setattr__(self, "levels", _normalise(self.levels))
        # The name becomes part of the group key, shown in an X-Logpipe-Group header.
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"alert rule names are 1-64 of A-Z a-z 0-9 _ . -, got {self.name!r}")
        checks = tuple((path, compile_condition(spec, path)) for path, spec in self.when.items())
        object.__setattr__(self, "_checks", checks)
        for role in ("to", "cc"):
            addresses = getattr(self, role)
            if isinstance(addresses, str):
                raise TypeError(f"alert rule {role} must be a list of addresses, not one string")
            object.__setattr__(self, role, tuple(addresses))
            for address in addresses:
                check_address(address, "recipient")

    @classmethod
    def for_levels(cls, levels: Iterable[str]) -> AlertRule:
        """Build a rule from any iterable of level names (e.g. a config list)."""
        if isinstance(levels, str):
            # frozenset("error") would silently become {"e", "r", "o"}.
            raise TypeError("alert levels must be a collection of names, not one string")
        return cls(frozenset(levels))

    def matches(self, fields: dict[str, Any]) -> bool:
        """Return True if the event's level is one of this rule's and every condition holds."""
        level = get_path(fields, "log.level")
        # A non-string level (a parser bug or a hostile JSON line) never matches
        # rather than raising: the rule runs on the hot path of every event.
        if not (isinstance(level, str) and level.strip().lower() in self.levels):
            return False
        return all(check(get_path(fields, path)) for path, check in self._checks)


def first_match(rules: Sequence[AlertRule], fields: dict[str, Any]) -> AlertRule | None:
    """The first rule in ``rules`` that matches the event, or None."""
    for rule in rules:
        if rule.matches(fields):
            return rule
    return None


def compile_condition(spec: Any, path: str = "field") -> Predicate:
    """Compile one ``when`` condition (see the module docstring) into a predicate.

    Raises ValueError naming ``path`` when the condition is malformed.
    """
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError(f"{path}: empty condition")
        unknown = set(spec) - OPERATORS
        if unknown:
            raise ValueError(
                f"{path}: unknown operator(s) {sorted(unknown)}, use {sorted(OPERATORS)}"
            )
        checks = [_operator(op, arg, path) for op, arg in spec.items()]
        return lambda value: all(check(value) for check in checks)
    if isinstance(spec, list | tuple):
        if not spec:
            raise ValueError(f"{path}: empty list of values")
        options = [_scalar(item, path) for item in spec]
        return _any_element(lambda v: any(option(v) for option in options))
    return _any_element(_scalar(spec, path))


def _operator(op: str, arg: Any, path: str) -> Predicate:
    if op == "exists":
        if not isinstance(arg, bool):
            raise ValueError(f"{path}: exists takes true or false")
        return lambda value: (value is not None) is arg
    if op in ("eq", "ne"):
        check = _any_element(_scalar(arg, path))
        return check if op == "eq" else _negate(check)
    if op in ("in", "not_in"):
        if not isinstance(arg, list | tuple) or not arg:
            raise ValueError(f"{path}: {op} takes a non-empty list")
        check = compile_condition(list(arg), path)
        return check if op == "in" else _negate(check)
    if isinstance(arg, bool) or not isinstance(arg, int | float):
        raise ValueError(f"{path}: {op} takes a number")
    compare, bound = _COMPARE[op], float(arg)
    return _any_element(lambda v: (n := _number(v)) is not None and compare(n, bound))


def _scalar(spec: Any, path: str) -> Predicate:
    """Equality with a bool, a number or a string; a string with * ? [ is a glob."""
    if isinstance(spec, bool):
        return lambda value: value is spec
    if isinstance(spec, int | float):
        target = float(spec)
        return lambda value: _number(value) == target
    if isinstance(spec, str):
        if any(c in spec for c in "*?["):
            match = re.compile(fnmatch.translate(spec)).match

            def glob(value: Any) -> bool:
                text = _text(value)
                return text is not None and match(text) is not None

            return glob
        return lambda value: _text(value) == spec
    raise ValueError(f"{path}: a condition value must be a string, number, true/false, list or map")


def _any_element(check: Predicate) -> Predicate:
    def matches(value: Any) -> bool:
        if isinstance(value, list):
            return any(check(item) for item in value)
        return value is not None and check(value)

    return matches


def _negate(check: Predicate) -> Predicate:
    return lambda value: not check(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _normalise(levels: Iterable[str]) -> frozenset[str]:
    if isinstance(levels, str):
        raise TypeError("alert levels must be a collection of names, not one string")
    normalised = frozenset(level.strip().lower() for level in levels)
    if not normalised or "" in normalised:
        raise ValueError(f"alert levels must be non-empty names, got {sorted(normalised)!r}")
    return normalised
