"""Which alerts are "the same error": a fingerprint per event, and a title per group.

Pure: fields in, strings out.

Two events are the same error when they come from the same logger (and
dataset), carry the same exception type and say the same thing once the parts
that vary per occurrence are masked: numbers, ids, UUIDs, hex, quoted values,
e-mail addresses, IP addresses and timestamps. "Database error recording daily
input for SPK 4711" and "... SPK 4712" are one group; "user 42 not found" and
"user 43 not found" too.

The order of the masks matters: the specific shapes (timestamps, UUIDs,
addresses) go first, because the generic "any word with a digit in it" mask
would otherwise chop them into several tokens and make, say, an IPv6 address
with and without a leading zero two different groups.

Only the first :data:`MASK_INPUT_MAX` characters are looked at, so a
megabyte-long message costs the same as a short one.

HTTP access events (those with ``http.response.status_code``) are grouped by
method, masked path and status instead of their message: an access log line
also holds the client address, the time, the referrer and the user agent, and
one failing endpoint must be one group whoever calls it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from logpipe.alerts.render import one_line
from logpipe.event import get_path

MASK_INPUT_MAX = 1_000
"""Characters of the message that take part in the fingerprint."""
TITLE_MAX = 120
"""Longest group title, in characters."""

# (pattern, replacement), applied in order.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO-8601 and log-style timestamps: 2026-11-27T10:00:00.123Z,
    # 2026-11-27 10:00:00,123 +07:00, and bare dates and times.
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|\s?[+-]\d{2}:?\d{2})?)?"
        ),
        "<ts>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    # IPv6: at least three groups, so "10:00" or "a:b" stays as it is.
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])"), "<ip>"),
    # Quoted values. A quote only opens after a non-word character and only
    # closes before one, so the apostrophes of "can't find user's" stay text.
    (re.compile(r"(?<!\w)'[^'\n]{0,200}'(?!\w)"), "'<q>'"),
    (re.compile(r'(?<!\w)"[^"\n]{0,200}"(?!\w)'), '"<q>"'),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-fA-F]{16,}\b"), "<hex>"),
    # Numbers alone, then any other word with a digit in it (ids like
    # "req7f3a", "SPK4711", "v2"): one token each, whatever their length.
    (re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*(?![\w>])"), "<n>"),
    (re.compile(r"\b(?=[A-Za-z_]*\d)[A-Za-z0-9_]+\b"), "<id>"),
)


def mask_message(text: str) -> str:
    """Mask the parts of ``text`` that vary between occurrences of one error.

    Returns one line with single spaces; see the module docstring for what is
    masked.
    """
    text = one_line(text[:MASK_INPUT_MAX], limit=None)
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def fingerprint(fields: dict[str, Any]) -> str:
    """A short stable hash naming the group an event belongs to.

    Built from the logger, the dataset, the exception type and the masked
    message. Non-string values are ignored rather than failing: the
    fingerprint runs for every alerting event.
    """
    status = _status(fields)
    if status:
        method = _text(get_path(fields, "http.request.method"))
        what = f"{method} {mask_message(_text(get_path(fields, 'url.path')))} {status}"
    else:
        what = mask_message(_text(get_path(fields, "message")))
    parts = [
        _text(get_path(fields, "log.logger")),
        _text(get_path(fields, "event.dataset")),
        _text(get_path(fields, "error.type")),
        what,
    ]
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "replace"))
    return digest.hexdigest()[:20]


def group_title(fields: dict[str, Any]) -> str:
    """A short human title for the group: the event's message on one line.

    An HTTP access event is titled by its status and request ("HTTP 502 on
    GET /api/spk/4711"). Falls back to the exception type, then the logger,
    when there is no message.
    """
    status = _status(fields)
    if status:
        method = _text(get_path(fields, "http.request.method"))
        request = " ".join(p for p in (method, _text(get_path(fields, "url.path"))) if p)
        return one_line(f"HTTP {status} on {request}" if request else f"HTTP {status}", TITLE_MAX)
    for path in ("message", "error.type", "log.logger"):
        title = one_line(_text(get_path(fields, path)), TITLE_MAX)
        if title:
            return title
    return "(no message)"


def _status(fields: dict[str, Any]) -> str:
    value = get_path(fields, "http.response.status_code")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return ""
    return one_line(str(value), 10)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
