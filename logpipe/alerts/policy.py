"""Grouping and rate limiting: which e-mails to send, and when.

Pure: events and the time (``now``, seconds since the epoch, passed in) go in,
:class:`Outgoing` e-mails to send come out. No I/O, no clock; the service calls
:meth:`AlertPolicy.observe` per alerting event and :meth:`AlertPolicy.tick`
about once a second.

For each group (see :mod:`logpipe.alerts.fingerprint`)::

    first event ──> "first" e-mail at once ──> window of window_seconds opens
    more events ──> counted: count, first/last time, sample ids, one sample
    window ends ──> pending > 0: "digest" e-mail, a new window opens
                └─> pending == 0: the group is forgotten (idle for a window)

A global cap allows ``max_emails_per_period`` e-mails per sliding
``period_seconds``. Over the cap nothing is sent and nothing is lost: a new
group's first event is counted as pending, and every pending count goes out in
the group's next digest once the cap allows (groups never reported go first).

The one invariant the tests hold this to: every event observed is reported in
exactly one e-mail, so over any storm ``sum(o.count for o in outgoing)`` equals
the number of events (a "first" e-mail has ``count == 1``).

Two special groups keep that true under pressure, and are digest-only:
``overflow`` takes events of new groups once ``max_groups`` exist, and
``unqueued`` counts events the service could not queue (:meth:`observe_unqueued`).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from logpipe.alerts.fingerprint import fingerprint, group_title
from logpipe.alerts.outgoing import Outgoing
from logpipe.alerts.render import alert_fields, one_line
from logpipe.alerts.rules import AlertRule
from logpipe.event import get_path

STATE_VERSION = 1
OVERFLOW_KEY = "overflow"
UNQUEUED_KEY = "unqueued"
SAMPLE_TEXT_MAX = 32_768
"""Longest string kept in a group's sample event (tracebacks), to bound memory."""
ID_MAX = 200
"""Longest sample request/user id kept."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The policy knobs, as configured; ``AlertPolicy(**asdict(settings))``."""

    window_seconds: float = 600.0
    max_emails_per_period: int = 20
    period_seconds: float = 3600.0
    max_groups: int = 10_000
    sample_ids: int = 5


@dataclass(slots=True)
class _Group:
    """What the policy remembers about one group."""

    key: str
    title: str
    window_start: float
    rule: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    digest_only: bool = False
    reported: bool = False
    pending: int = 0
    since: float = 0.0
    first_at: float = math.inf
    last_at: float = -math.inf
    sample: dict[str, Any] | None = None
    request_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)


class AlertPolicy:
    """The grouping and rate-limit state machine (see the module docstring).

    ``sample_ids`` bounds the request and user ids listed per digest.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 600.0,
        max_emails_per_period: int = 20,
        period_seconds: float = 3600.0,
        max_groups: int = 10_000,
        sample_ids: int = 5,
    ) -> None:
        if window_seconds <= 0 or period_seconds <= 0:
            raise ValueError("window_seconds and period_seconds must be > 0")
        if max_emails_per_period < 1 or max_groups < 1 or sample_ids < 0:
            raise ValueError("max_emails_per_period and max_groups must be >= 1")
        self.window = float(window_seconds)
        self.max_emails = max_emails_per_period
        self.period = float(period_seconds)
        self.max_groups = max_groups
        self.sample_ids = sample_ids
        self._groups: dict[str, _Group] = {}
        self._sent_at: deque[float] = deque()
        self.version = 0
        """Bumped on every change, so a caller knows when to save the state."""
        self.grouped = 0
        """Events counted into a group's digest instead of an e-mail of their own."""
        self.held_back: Counter[str] = Counter()
        """Events held back from an e-mail of their own, by reason: ``rate_limit``
        (the group's first e-mail waited for the cap), ``overflow`` (beyond
        ``max_groups``). Nothing is dropped: they are counted in digests."""

    # -- the two entry points ------------------------------------------------------

    def observe(
        self, fields: dict[str, Any], now: float, *, rule: AlertRule | None = None
    ) -> list[Outgoing]:
        """Count one alerting event; return the e-mails to send now (0, 1 or 2)."""
        self.version += 1
        key = f"{rule.name}:{fingerprint(fields)}" if rule else fingerprint(fields)
        group = self._groups.get(key)
        out: list[Outgoing] = []
        if group is not None and self._window_over(group, now):
            out += self._end_window(group, now)
            group = self._groups.get(key)
        if group is None:
            if self._ordinary_groups() >= self.max_groups:
                group = self._special(OVERFLOW_KEY, "Errors beyond the group limit", now)
                self.held_back["overflow"] += 1
            else:
                group = self._new_group(key, fields, rule, now)
                if self._allow(now):
                    return [*out, self._first(group, fields, now)]
                self.held_back["rate_limit"] += 1
        self._count(group, fields, _event_time(fields, now), now)
        self.grouped += 1
        return out

    def tick(self, now: float) -> list[Outgoing]:
        """Close ended windows, send what is due, forget idle groups."""
        out: list[Outgoing] = []
        # Groups never reported first (new errors matter most), then by window age.
        unreported = [
            g for g in self._groups.values() if g.pending and not g.reported and not g.digest_only
        ]
        for group in sorted(unreported, key=lambda g: g.window_start):
            if not self._allow(now):
                break
            out.append(self._digest(group, now))
        for group in sorted(self._groups.values(), key=lambda g: g.window_start):
            if self._window_over(group, now):
                out += self._end_window(group, now)
        if out:
            self.version += 1
        return out

    def flush(self, now: float) -> list[Outgoing]:
        """Send every pending count now (for ``--once``), as far as the cap allows."""
        out: list[Outgoing] = []
        for group in sorted(self._groups.values(), key=lambda g: (g.reported, g.window_start)):
            if group.pending:
                if not self._allow(now):
                    break
                out.append(self._digest(group, now))
        if out:
            self.version += 1
        return out

    def observe_unqueued(self, count: int, now: float) -> None:
        """Count ``count`` events the service had no room to queue (no fields known)."""
        if count <= 0:
            return
        self.version += 1
        group = self._special(UNQUEUED_KEY, "Alerts not grouped: the alert queue was full", now)
        group.pending += count
        group.since = group.since or now
        group.first_at = min(group.first_at, now)
        group.last_at = max(group.last_at, now)

    @property
    def pending(self) -> int:
        """Events counted and not yet reported in any e-mail."""
        return sum(group.pending for group in self._groups.values())

    @property
    def groups(self) -> int:
        """Groups currently remembered."""
        return len(self._groups)

    # -- state -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The state as a JSON-ready dict (pending digests, the cap's recent sends)."""
        groups = []
        for group in self._groups.values():
            data = asdict(group)
            for name in ("first_at", "last_at"):
                if math.isinf(data[name]):
                    data[name] = None
            groups.append(data)
        return {"version": STATE_VERSION, "sent_at": list(self._sent_at), "groups": groups}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **knobs: Any) -> AlertPolicy:
        """A policy with ``knobs`` (as for ``__init__``) and the state from :meth:`to_dict`.

        Raises ValueError on an unknown version or malformed state.
        """
        policy = cls(**knobs)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("unknown alert policy state version")
        try:
            policy._sent_at = deque(sorted(float(t) for t in data["sent_at"]))
            for raw in data["groups"]:
                group = _Group(**raw)
                group.first_at = math.inf if raw["first_at"] is None else float(raw["first_at"])
                group.last_at = -math.inf if raw["last_at"] is None else float(raw["last_at"])
                group.to, group.cc = tuple(group.to), tuple(group.cc)
                policy._groups[group.key] = group
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed alert policy state: {exc}") from None
        return policy

    # -- internals ---------------------------------------------------------------

    def _allow(self, now: float) -> bool:
        """Take one e-mail from the global cap if there is room."""
        sent = self._sent_at
        while sent and (sent[0] <= now - self.period or sent[0] > now + self.period):
            sent.popleft()  # expired, or from a clock that has since gone back
        if len(sent) >= self.max_emails:
            return False
        sent.append(now)
        return True

    def _window_over(self, group: _Group, now: float) -> bool:
        if now < group.window_start:
            group.window_start = now  # the clock went back: restart the window
        return now - group.window_start >= self.window

    def _end_window(self, group: _Group, now: float) -> list[Outgoing]:
        if not group.pending:
            del self._groups[group.key]  # idle for a whole window: forget it
            return []
        if not self._allow(now):
            return []  # over the cap: keep counting, retried on the next tick
        return [self._digest(group, now)]

    def _ordinary_groups(self) -> int:
        return len(self._groups) - sum(
            1 for key in (OVERFLOW_KEY, UNQUEUED_KEY) if key in self._groups
        )

    def _new_group(
        self, key: str, fields: dict[str, Any], rule: AlertRule | None, now: float
    ) -> _Group:
        group = _Group(key=key, title=group_title(fields), window_start=now)
        if rule is not None:
            group.rule, group.to, group.cc = rule.name, rule.to, rule.cc
        self._groups[key] = group
        return group

    def _special(self, key: str, title: str, now: float) -> _Group:
        group = self._groups.get(key)
        if group is None:
            group = _Group(key=key, title=title, window_start=now, digest_only=True)
            self._groups[key] = group
        return group

    def _count(self, group: _Group, fields: dict[str, Any], event_at: float, now: float) -> None:
        if not group.pending:
            group.since = now
            group.sample = _bounded(alert_fields(fields))
        group.pending += 1
        group.first_at = min(group.first_at, event_at)
        group.last_at = max(group.last_at, event_at)
        _add_id(group.request_ids, get_path(fields, "http.request.id"), self.sample_ids)
        _add_id(group.user_ids, get_path(fields, "user.id"), self.sample_ids)

    def _first(self, group: _Group, fields: dict[str, Any], now: float) -> Outgoing:
        group.reported = True
        event_at = _event_time(fields, now)
        request_ids: list[str] = []
        user_ids: list[str] = []
        _add_id(request_ids, get_path(fields, "http.request.id"), self.sample_ids)
        _add_id(user_ids, get_path(fields, "user.id"), self.sample_ids)
        return Outgoing(
            kind="first",
            key=group.key,
            title=group.title,
            count=1,
            first_at=event_at,
            last_at=event_at,
            since=now,
            at=now,
            sample=_bounded(alert_fields(fields)),
            request_ids=tuple(request_ids),
            user_ids=tuple(user_ids),
            to=group.to,
            cc=group.cc,
            rule=group.rule,
        )

    def _digest(self, group: _Group, now: float) -> Outgoing:
        """Report the group's pending count, reset it, and open a new window."""
        outgoing = Outgoing(
            kind="digest",
            key=group.key,
            title=group.title,
            count=group.pending,
            first_at=group.first_at,
            last_at=group.last_at,
            since=group.since,
            at=now,
            sample=group.sample or {},
            request_ids=tuple(group.request_ids),
            user_ids=tuple(group.user_ids),
            to=group.to,
            cc=group.cc,
            rule=group.rule,
            continued=group.reported,
        )
        group.reported = True
        group.pending = 0
        group.first_at, group.last_at = math.inf, -math.inf
        group.sample = None
        group.request_ids, group.user_ids = [], []
        group.window_start = now
        return outgoing


def _event_time(fields: dict[str, Any], now: float) -> float:
    """The event's own time from ``@timestamp``, or ``now`` when it has none."""
    value = fields.get("@timestamp")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return now
        # The pipeline writes UTC with a "Z"; a naive value is UTC too, never local.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return now


def _add_id(ids: list[str], value: Any, limit: int) -> None:
    if len(ids) >= limit or not isinstance(value, str | int) or isinstance(value, bool):
        return
    text = one_line(str(value), ID_MAX)
    if text and text not in ids:
        ids.append(text)


def _bounded(value: Any) -> Any:
    """A copy of a sample event with every string cut to :data:`SAMPLE_TEXT_MAX`."""
    if isinstance(value, str):
        return value[:SAMPLE_TEXT_MAX]
    if isinstance(value, dict):
        return {key: _bounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_bounded(item) for item in value]
    return value
