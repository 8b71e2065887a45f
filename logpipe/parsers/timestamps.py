"""Timestamp helpers shared by the parsers: source text in, aware UTC datetime out.

Every helper returns ``(instant, text)`` or ``None``: ``instant`` is an aware UTC
:class:`~datetime.datetime` (what :attr:`Parsed.timestamp` holds) and ``text`` the
same instant as ISO-8601 ending in ``Z`` (what ``@timestamp`` holds). The text
keeps the sub-second digits exactly as the source wrote them, so nanosecond
precision survives even though :class:`~datetime.datetime` stops at microseconds,
and a source without a fraction gets none.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

_FRACTION = re.compile(r"[.,](\d+)", re.ASCII)
_TIME_LOCAL = re.compile(
    r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\Z", re.ASCII
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}

Stamp = tuple[datetime, str]
"""An aware UTC instant and its ``@timestamp`` text."""


def format_utc(instant: datetime, fraction: str = "") -> str:
    """Render an aware UTC datetime as ``YYYY-MM-DDTHH:MM:SS<fraction>Z``.

    ``fraction`` is the sub-second part including its dot (``".123"``), or empty.
    """
    # isoformat, not strftime: %Y does not zero-pad years below 1000 on glibc.
    return instant.replace(tzinfo=None).isoformat(timespec="seconds") + fraction + "Z"


def parse_iso8601(value: str) -> Stamp | None:
    """Parse ISO-8601 text; naive values are taken as UTC, aware ones converted to UTC."""
    # Fast path for what the app's formatter writes (naive, extended format):
    # appending the offset lets the C parser build the aware datetime directly,
    # and the text needs no re-rendering. Anything else falls through.
    if (
        len(value) >= 19
        and value[4] == value[7] == "-"
        and value[10] == "T"
        and (len(value) == 19 or value[19] == ".")
    ):
        try:
            return datetime.fromisoformat(value + "+00:00"), value + "Z"
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(value)
        instant = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return instant, format_utc(instant, _source_fraction(value, instant))


def _source_fraction(value: str, instant: datetime) -> str:
    """The source's own sub-second digits, when they still describe ``instant``.

    Offsets are whole seconds in practice, so converting to UTC leaves the digits
    unchanged and they can be copied verbatim. The check against the parsed
    microseconds guards the exotic cases (a fractional offset, a fraction found
    in the offset rather than the time) where copying would lie.
    """
    match = _FRACTION.search(value)
    if match is not None:
        digits = match[1]
        if int(digits[:6].ljust(6, "0")) == instant.microsecond:
            return "." + digits
    return f".{instant.microsecond:06d}" if instant.microsecond else ""


@lru_cache(maxsize=1024)
def parse_time_local(value: str) -> Stamp | None:
    """Parse nginx ``$time_local`` (``27/Nov/2026:10:00:00 +0700``) to UTC.

    Cached: an access log repeats the same second on many consecutive lines, and
    the result is immutable.
    """
    match = _TIME_LOCAL.match(value)
    if match is None:
        return None
    month = _MONTHS.get(match[2].title())
    if month is None:
        return None
    minutes = int(match[8]) * 60 + int(match[9])
    try:
        offset = timezone(timedelta(minutes=-minutes if match[7] == "-" else minutes))
        local = datetime(
            int(match[3]),
            month,
            int(match[1]),
            int(match[4]),
            int(match[5]),
            int(match[6]),
            tzinfo=offset,
        )
        instant = local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return instant, format_utc(instant)


def parse_epoch_seconds(value: str) -> Stamp | None:
    """Parse seconds since the epoch with an optional fraction (nginx ``$msec``)."""
    seconds, _, digits = value.partition(".")
    if not (value.isascii() and seconds.isdigit() and (digits.isdigit() or not digits)):
        return None
    try:
        instant = datetime.fromtimestamp(int(seconds), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    if digits:
        instant = instant.replace(microsecond=int(digits[:6].ljust(6, "0")))
    return instant, format_utc(instant, "." + digits if digits else "")
