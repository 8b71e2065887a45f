"""Which events deserve an alert.

Pure: a rule looks at an event's ECS fields and answers yes or no. It is the
first stage of the alert path (rule -> throttle -> queue -> sender), so it runs
for every event and must stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from logpipe.event import get_path

DEFAULT_LEVELS: frozenset[str] = frozenset({"error", "critical"})


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Match events whose ``log.level`` is one of ``levels``, case-insensitively.

    Levels are normalised to lower case once, here, so that ``matches`` does one
    ``str.lower`` and one set lookup per event.
    """

    levels: frozenset[str] = DEFAULT_LEVELS

    def __post_init__(self) -> None:
        # frozen dataclass: normalise through object.__setattr__, once.
        object.__setattr__(self, "levels", _normalise(self.levels))

    @classmethod
    def for_levels(cls, levels: Iterable[str]) -> AlertRule:
        """Build a rule from any iterable of level names (e.g. a config list)."""
        if isinstance(levels, str):
            # frozenset("error") would silently become {"e", "r", "o"}.
            raise TypeError("alert levels must be a collection of names, not one string")
        return cls(frozenset(levels))

    def matches(self, fields: dict[str, Any]) -> bool:
        """Return True if the event's ``log.level`` is one of this rule's levels."""
        level = get_path(fields, "log.level")
        # A non-string level (a parser bug or a hostile JSON line) never matches
        # rather than raising: the rule runs on the hot path of every event.
        return isinstance(level, str) and level.strip().lower() in self.levels


def _normalise(levels: Iterable[str]) -> frozenset[str]:
    if isinstance(levels, str):
        raise TypeError("alert levels must be a collection of names, not one string")
    normalised = frozenset(level.strip().lower() for level in levels)
    if not normalised or "" in normalised:
        raise ValueError(f"alert levels must be non-empty names, got {sorted(normalised)!r}")
    return normalised
