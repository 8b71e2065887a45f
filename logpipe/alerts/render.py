"""Turn an event into an alert e-mail, with nothing from the log line able to escape.

Pure: values in, an :class:`email.message.EmailMessage` out; no sockets, and the
clock only when the caller does not pass ``date``.

The threat is a log line written by someone who controls its content (a user
name, a URL, an exception message). Whatever it holds, it may change the text of
its own alert and nothing else: no extra header, no extra recipient, no extra
MIME part, no markup in the HTML part. The defences, in order:

* Only the Subject carries log content in a header, and it goes through
  :func:`safe_subject`: control characters (CR, LF, NUL, NEL, ...), line and
  paragraph separators and bidi controls become spaces, whitespace collapses,
  the length is bounded.
* ``=?`` becomes ``= ?`` in the Subject. CPython's header parser *decodes*
  RFC 2047 encoded-words in a value assigned to a header (``msg["Subject"] =
  "=?UTF-8?Q?=0D=0ABcc:_x@y?="`` stores a real CRLF) and the generator then
  writes the decoded CRLF out verbatim: a header injection that survives any
  sanitising done before the assignment. Breaking every ``=?`` means no
  encoded-word can start, neither when we set the header nor when a mail client
  reads it.
* Envelope sender and recipients come from configuration, never from headers
  (see :mod:`logpipe.alerts.smtp`), and they are checked here too.
* Both body parts are quoted-printable, so the message is 7-bit clean, every
  line stays under the SMTP limit whatever the log line's length, and the
  generator picks a MIME boundary that does not occur in the text.
* Every value in the HTML part is ``html.escape``-d, links included (which
  are built by :mod:`logpipe.alerts.kibana`, percent-encoded, http(s) only).
* Our own ``X-Logpipe-*`` headers and the Message-ID carry only values we
  made (counts, kinds, hex ids), and are checked to be short printable ASCII.
"""

from __future__ import annotations

import copy
import email.policy
import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import Any

from logpipe.event import get_path, set_path

SUBJECT_MAX = 200
"""Longest Subject, in characters, ellipsis included."""
VALUE_MAX = 1_000
"""Longest one-line value in the details table."""
MESSAGE_MAX = 20_000
"""Longest full message shown under the table."""
TRACE_MAX = 100_000
"""Longest traceback kept; a runaway one is cut rather than bloating every e-mail."""

ELLIPSIS = "…"

# Placeholders a subject template may use, and the ECS field each one reads.
# A fixed table instead of str.format: a template cannot reach attributes or
# indexes ("{message.__class__}"), and a value is never re-scanned as a template.
PLACEHOLDERS: dict[str, str] = {
    "message": "message",
    "level": "log.level",
    "logger": "log.logger",
    "environment": "service.environment",
}
EXTRA_PLACEHOLDERS = ("count",)
"""Placeholders the caller fills (``{count}``: events a digest reports)."""
_PLACEHOLDER = re.compile(r"\{(" + "|".join([*PLACEHOLDERS, *EXTRA_PLACEHOLDERS]) + r")\}")
_OWN_HEADER = re.compile(r"X-Logpipe-[A-Za-z-]{1,40}")
_OWN_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")
_MSGID_LOCAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# Rows of the details table: label and ECS field, in the order ops read them.
DETAILS: tuple[tuple[str, str], ...] = (
    ("Time", "@timestamp"),
    ("Level", "log.level"),
    ("Logger", "log.logger"),
    ("Message", "message"),
    ("Request id", "http.request.id"),
    ("User id", "user.id"),
    ("Environment", "service.environment"),
    ("Region", "cloud.region"),
    ("Host", "host.name"),
    ("Pod", "kubernetes.pod.name"),
    ("Namespace", "kubernetes.namespace"),
    ("File", "log.file.path"),
    ("Error type", "error.type"),
    ("Error message", "error.message"),
    ("Status", "http.response.status_code"),
    ("Method", "http.request.method"),
    ("Path", "url.path"),
)

_ORIGIN = ("log.origin.function", "log.origin.file.name", "log.origin.file.line")
ALERT_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *PLACEHOLDERS.values(),
            *(path for _, path in DETAILS),
            *_ORIGIN,
            "error.stack_trace",
            "event.dataset",  # grouping (fingerprint) and alert rules read it too
        ]
    )
)
"""Every ECS field an alert reads; :func:`alert_fields` keeps just these."""

# C0/C1 controls (Unicode category Cc: CR, LF, TAB, NUL, ESC, NEL, ...), line and
# paragraph separators, and bidi embedding/override/isolate controls and marks:
# each becomes a space so that words on either side stay apart.
_BREAKING = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
# Invisible characters that only serve to hide or spoof text: removed. ZWJ and
# ZWNJ are kept, emoji sequences and Persian/Indic text need them.
_INVISIBLE = re.compile("[\u180e\u200b\u2060-\u2064\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]")
# Lone surrogates (json.loads accepts "\ud800") cannot be encoded as UTF-8: the
# e-mail would fail to serialise at send time. Replace them up front.
_SURROGATE = re.compile("[\ud800-\udfff]")
# For multi-line text: every line break flavour becomes "\n"; other controls
# except TAB become spaces, as above.
_LINE_BREAK = re.compile("\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_BREAKING_EXCEPT_NL_TAB = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def safe_subject(
    template: str, fields: dict[str, Any], values: Mapping[str, str] | None = None
) -> str:
    """Fill ``template`` from the event and return a one-line, bounded Subject.

    ``{message}``, ``{level}``, ``{logger}`` and ``{environment}`` are replaced
    by the event's values (empty when missing), ``{count}`` from ``values``;
    any other brace text is left as written. The result has no control,
    separator or bidi characters, no encoded-word opener, single spaces, and at
    most :data:`SUBJECT_MAX` characters (ending in "…" when cut). When it is
    too long the message is cut first, so that a suffix such as
    "(+4,213 more)" stays visible.
    """
    given = values or {}
    filled = {
        # Cut before cleaning: a multi-megabyte message must not cost
        # megabytes of regex work for a 200-character Subject.
        name: one_line(_as_text(get_path(fields, path))[: SUBJECT_MAX * 8], limit=None)
        for name, path in PLACEHOLDERS.items()
    }
    filled.update((name, one_line(given.get(name, ""), limit=None)) for name in EXTRA_PLACEHOLDERS)

    def fill(match: re.Match[str]) -> str:
        return filled[match.group(1)]

    subject = one_line(_PLACEHOLDER.sub(fill, template), limit=None)
    excess = len(subject) - SUBJECT_MAX
    if excess > 0 and filled["message"] and "{message}" in template:
        keep = max(len(filled["message"]) - excess - len(ELLIPSIS), SUBJECT_MAX // 4)
        filled["message"] = _bound(filled["message"], keep + len(ELLIPSIS))
        subject = one_line(_PLACEHOLDER.sub(fill, template), limit=None)
    subject = subject.replace("=?", "= ?")
    return _bound(subject, SUBJECT_MAX) or "logpipe alert"


def alert_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A small nested copy of the fields an alert reads (:data:`ALERT_FIELDS`).

    Cheap (a few dict lookups), so a caller on a hot path can snapshot an event
    now and leave the costly rendering for later, without holding on to, or
    seeing later changes to, the whole document.
    """
    snapshot: dict[str, Any] = {}
    for path in ALERT_FIELDS:
        value = get_path(fields, path)
        if value is not None:
            set_path(
                snapshot, path, copy.deepcopy(value) if isinstance(value, dict | list) else value
            )
    return snapshot


def render_email(
    fields: dict[str, Any],
    *,
    sender: str,
    to: list[str],
    subject_template: str,
    date: datetime | None = None,
    cc: Sequence[str] = (),
    message_id: str | None = None,
    subject_values: Mapping[str, str] | None = None,
    summary: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """Render one event as a multipart/alternative e-mail (plain text + HTML).

    ``sender``, ``to`` and ``cc`` are trusted configuration and are validated
    (one line, one address each); ``date`` defaults to now, pass it for
    reproducible output. ``message_id`` is the left-hand part of a
    deterministic Message-ID (``<message_id@sender-domain>``; random when
    None). ``summary`` lines (a digest's counts) open the body; ``links`` are
    (label, http(s) URL) pairs shown after the details; ``headers`` are extra
    ``X-Logpipe-*`` headers. The plain-text part lists the event's details and
    its full traceback; the HTML part shows the same, escaped.
    """
    _check_envelope(sender, to, cc, links)
    details = _details(fields)
    message = _as_text(get_path(fields, "message"))
    # The table row shows a short one-line message in full; repeat it below only
    # when the row had to flatten or cut it.
    shown_whole = "\n" not in message.strip() and len(one_line(message, None)) <= VALUE_MAX
    full_message = "" if shown_whole else multi_line(message, MESSAGE_MAX)
    trace = multi_line(_as_text(get_path(fields, "error.stack_trace")), TRACE_MAX)

    lines = [one_line(line) for line in summary]
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = safe_subject(subject_template, fields, subject_values)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = _message_id(message_id, sender)
    _add_own_headers(msg, headers or {})
    msg.set_content(_plain_body(details, full_message, trace, lines, links), cte="quoted-printable")
    msg.add_alternative(
        _html_body(details, full_message, trace, lines, links),
        subtype="html",
        cte="quoted-printable",
    )
    return msg


def one_line(text: str, limit: int | None = VALUE_MAX) -> str:
    """Make ``text`` safe to show on one line: no controls, single spaces, bounded."""
    if limit is not None:
        # Cleaning can only shrink text; 8x leaves room for collapsed whitespace
        # while keeping the work bounded for huge values.
        text = text[: limit * 8]
    text = _SURROGATE.sub("\ufffd", text)
    text = _INVISIBLE.sub("", _BREAKING.sub(" ", text))
    text = " ".join(text.split())
    return text if limit is None else _bound(text, limit)


def multi_line(text: str, limit: int) -> str:
    """Make ``text`` safe to show as a block: ``\\n`` line breaks, no other controls.

    TABs stay (tracebacks and aligned output use them). Longer text is cut at
    ``limit`` characters with a note saying how much was left out.
    """
    original_length = len(text)
    text = text[: limit * 2]  # bound the cleaning work; cleaning only shrinks
    text = _SURROGATE.sub("\ufffd", text)
    text = _LINE_BREAK.sub("\n", text)
    text = _INVISIBLE.sub("", _BREAKING_EXCEPT_NL_TAB.sub(" ", text)).strip("\n")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n{ELLIPSIS} (about {original_length - limit} more characters cut)"


def _bound(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _as_text(value: Any) -> str:
    """Show a field value as text; missing is empty, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def _details(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """The non-empty rows of the details table, each value on one bounded line."""
    rows: list[tuple[str, str]] = []
    for label, path in DETAILS:
        value = one_line(_as_text(get_path(fields, path)))
        if value:
            rows.append((label, value))
        if label == "File" and (origin := _origin(fields)):
            rows.append(("Origin", origin))
    return rows


def _origin(fields: dict[str, Any]) -> str:
    """Where in the code the event was logged: ``function (file:line)``."""
    function, file_name, line = (one_line(_as_text(get_path(fields, p))) for p in _ORIGIN)
    where = ":".join(part for part in (file_name, line) if part)
    if file_name == "" and line:
        where = f"line {line}"
    if function and where:
        return f"{function} ({where})"
    return function or where


def _plain_body(
    details: list[tuple[str, str]],
    full_message: str,
    trace: str,
    summary: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
) -> str:
    width = max((len(label) for label, _ in details), default=0) + 2
    lines = [*summary, ""] if summary else []
    lines += [f"{label + ':':<{width}}{value}" for label, value in details]
    if links:
        lines += ["", *(f"{one_line(label)}: {url}" for label, url in links)]
    if full_message:
        lines += ["", "Full message:", full_message]
    if trace:
        lines += ["", "Traceback:", trace]
    lines.append("")
    return "\n".join(lines)


def _html_body(
    details: list[tuple[str, str]],
    full_message: str,
    trace: str,
    summary: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
) -> str:
    esc = html.escape
    rows = "\n".join(
        f'<tr><th align="left" valign="top">{esc(label)}</th><td>{esc(value)}</td></tr>'
        for label, value in details
    )
    parts = ["<!DOCTYPE html>", "<html><body>"]
    parts += [f"<p>{esc(line)}</p>" for line in summary]
    parts.append(f'<table cellpadding="4">\n{rows}\n</table>')
    parts += [f'<p><a href="{esc(url)}">{esc(one_line(label))}</a></p>' for label, url in links]
    if full_message:
        parts.append(f"<h3>Full message</h3>\n<pre>{esc(full_message)}</pre>")
    if trace:
        parts.append(f"<h3>Traceback</h3>\n<pre>{esc(trace)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def check_address(address: str, role: str) -> None:
    """Reject a configured address that could smuggle a header or a second address."""
    if not isinstance(address, str) or one_line(address, limit=None) != address.strip():
        raise ValueError(f"invalid {role} address: must be one line of printable text")
    parsed = getaddresses([address])
    if len(parsed) != 1 or "@" not in parsed[0][1]:
        raise ValueError(f"invalid {role} address, expected exactly one: {address!r}")


def _check_envelope(
    sender: str, to: Sequence[str], cc: Sequence[str], links: Sequence[tuple[str, str]]
) -> None:
    check_address(sender, "sender")
    if not to:
        raise ValueError("an alert needs at least one recipient")
    for recipient in [*to, *cc]:
        check_address(recipient, "recipient")
    for _, url in links:
        _check_link(url)


def _add_own_headers(msg: EmailMessage, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not _OWN_HEADER.fullmatch(name) or not _OWN_VALUE.fullmatch(value):
            raise ValueError(f"invalid extra header {name!r}")
        msg[name] = value


def _check_link(url: str) -> None:
    if not url.startswith(("http://", "https://")) or not re.fullmatch(r"[\x21-\x7e]+", url):
        raise ValueError("a link must be an http(s) URL of printable ASCII, without spaces")


def _message_id(local: str | None, sender: str) -> str:
    domain = _msgid_domain(sender)
    if local is None:
        return make_msgid(idstring="logpipe", domain=domain)
    if not _MSGID_LOCAL.fullmatch(local):
        raise ValueError(f"invalid Message-ID key {local!r}")
    return f"<{local}@{domain}>"


def _msgid_domain(sender: str) -> str:
    # make_msgid() would otherwise call socket.getfqdn(), a DNS lookup per e-mail.
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if _DOMAIN.fullmatch(domain) else "logpipe.invalid"
