"""The decision the policy hands on: one e-mail to send, not yet rendered.

Pure data. :class:`Outgoing` is what the policy returns, what the spool writes
to disk (``to_dict``/``from_dict``) and what :mod:`logpipe.alerts.compose`
renders; :func:`summarise` and :func:`merge` fold several of them into one
summary, keeping the counts exact, when the spool is full.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

SUMMARY_KEY = "spool-summary"
BREAKDOWN_MAX = 50
"""Most titles listed in a summary's breakdown; the rest are added up as "other"."""

Kind = Literal["first", "digest"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One e-mail to send, as decided by the policy (rendered later).

    ``count`` is how many events this e-mail reports (1 for a "first");
    ``first_at``/``last_at`` are the times of the first and last of them, and
    ``since``/``at`` the period the e-mail covers. ``continued`` says an
    earlier e-mail reported this group already ("4,213 *more* times").
    ``to``/``cc`` are the matching rule's recipients (empty: the service's
    defaults). ``breakdown`` lists (title, count) for a merged summary.
    """

    kind: Kind
    key: str
    title: str
    count: int
    first_at: float
    last_at: float
    since: float
    at: float
    sample: dict[str, Any]
    request_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    rule: str = ""
    continued: bool = False
    breakdown: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["breakdown"] = [list(pair) for pair in self.breakdown]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outgoing:
        """Rebuild an Outgoing from :meth:`to_dict`; ValueError if malformed."""
        try:
            kind = data["kind"]
            if kind not in ("first", "digest"):
                raise ValueError(f"unknown kind {kind!r}")
            return cls(
                kind=kind,
                key=str(data["key"]),
                title=str(data["title"]),
                count=int(data["count"]),
                first_at=float(data["first_at"]),
                last_at=float(data["last_at"]),
                since=float(data["since"]),
                at=float(data["at"]),
                sample=dict(data["sample"]),
                request_ids=tuple(str(i) for i in data.get("request_ids", ())),
                user_ids=tuple(str(i) for i in data.get("user_ids", ())),
                to=tuple(str(a) for a in data.get("to", ())),
                cc=tuple(str(a) for a in data.get("cc", ())),
                rule=str(data.get("rule", "")),
                continued=bool(data.get("continued", False)),
                breakdown=tuple((str(t), int(c)) for t, c in data.get("breakdown", ())),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed alert: {exc}") from None


def summarise(outgoing: Outgoing) -> Outgoing:
    """Turn one e-mail into a summary that others can be merged into."""
    return replace(
        outgoing,
        kind="digest",
        key=SUMMARY_KEY,
        title="Alerts merged while e-mail delivery was backed up",
        continued=True,
        breakdown=outgoing.breakdown or ((outgoing.title, outgoing.count),),
    )


def merge(summary: Outgoing, other: Outgoing, sample_ids: int = 5) -> Outgoing:
    """Add ``other`` into ``summary`` (see :func:`summarise`); counts add up."""
    counts = dict(summary.breakdown)
    for title, count in other.breakdown or ((other.title, other.count),):
        counts[title] = counts.get(title, 0) + count
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    if len(ranked) > BREAKDOWN_MAX:
        rest = sum(count for _, count in ranked[BREAKDOWN_MAX - 1 :])
        ranked = [*ranked[: BREAKDOWN_MAX - 1], ("other alerts", rest)]
    return replace(
        summary,
        count=summary.count + other.count,
        first_at=min(summary.first_at, other.first_at),
        last_at=max(summary.last_at, other.last_at),
        since=min(summary.since, other.since),
        at=max(summary.at, other.at),
        request_ids=_union(summary.request_ids, other.request_ids, sample_ids),
        user_ids=_union(summary.user_ids, other.user_ids, sample_ids),
        to=_union(summary.to, other.to, None),
        cc=_union(summary.cc, other.cc, None),
        breakdown=tuple(ranked),
    )


def _union(a: tuple[str, ...], b: tuple[str, ...], limit: int | None) -> tuple[str, ...]:
    merged = tuple(dict.fromkeys((*a, *b)))
    return merged if limit is None else merged[:limit]
