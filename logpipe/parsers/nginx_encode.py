"""The usual ``combined`` line straight to JSON bytes, without building its fields.

:func:`encode_usual` takes the raw bytes of a line and gives exactly
``orjson.dumps(parse_nginx(raw.decode()).fields)`` for the lines
:func:`~logpipe.parsers.nginx.parse_nginx` takes by its fast path (most of a
real access log), and ``None`` for every other line, which is then decoded and
goes through the parser and the dict as before. The tests hold the two
against each other, byte for byte, on the benchmark workload and on tables
of edge cases.

Why: for such a line the parser builds eleven small dicts (with the position
and event fields added later) only for orjson to walk them again; formatting
the JSON text directly costs about a third of that (bench/RESULTS.md).

Why it is safe to write the JSON by hand here: a line is taken only if every
field is printable ASCII without a backslash or a double quote (the regex
below), so the only character that JSON must escape anywhere is the quote
around the fields in ``message`` (the whole line), and each one there is
escaped. Numbers are written as the parser's ``int()`` would print them (no
leading zeros).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

from logpipe.parsers.nginx_fields import CACHED_IP_LENGTH, is_ip
from logpipe.parsers.timestamps import parse_time_local

# parse_nginx's regex for the usual line (_USUAL in nginx.py), on bytes, with
# each class narrowed to printable ASCII without the quote and the backslash
# (``[ !#-\[\]-~]``; without the space where _USUAL has none; the time without
# brackets). Every line it matches, _USUAL matches (decoded) with the same
# groups (each field is still delimited the one way), so the parser takes its
# fast path on it and builds its fields from the same values; one regex pass
# checks the characters too, and the line is never decoded (nor the document
# encoded).
_ENCODABLE = re.compile(
    rb"([0-9A-Fa-f.:]+) - ([!#-\[\]-~]+) \[([ -Z\\^-~]*)\] "
    rb'"([A-Za-z][A-Za-z0-9_-]*) (/[!#-\[\]-~]*) HTTP/([0-9]+(?:\.[0-9]+)?)" '
    rb'([0-9]{3}) ([0-9]{1,18}) "([ !#-\[\]-~]*)" "([ !#-\[\]-~]*)"\Z'
)
# The document, keys in the order parse_nginx adds them (see its fast path).
_DOCUMENT = (
    b'{"message":"%b","source":{"address":"%b"%b}%b,"@timestamp":"%b",'
    b'"url":{"original":"%b","path":"%b"%b%b}%b,"http":{"request":{"method":"%b"%b},'
    b'"version":"%b","response":{"status_code":%b,"body":{"bytes":%b}}}}'
)


def encode_usual(raw: bytes) -> tuple[bytes, datetime] | None:
    """``(JSON object bytes of the line's ECS fields, its time)``, or ``None``."""
    match = _ENCODABLE.match(raw)
    if match is None:
        return None
    address, user, time_local, method, target, version, status, size, referrer, agent = (
        match.groups()
    )
    stamp = _stamp(time_local)
    if stamp is None:
        return None
    rest, _, fragment = target.partition(b"#")
    path, _, query = rest.partition(b"?")
    document = _DOCUMENT % (
        raw.replace(b'"', b'\\"'),
        address,
        b',"ip":"%b"' % address if _is_ip(address) else b"",
        b',"user":{"name":"%b"}' % user if user != b"-" else b"",
        stamp[1],
        target,
        path,
        b',"query":"%b"' % query if query else b"",
        b',"fragment":"%b"' % fragment if fragment else b"",
        b',"user_agent":{"original":"%b"}' % agent if agent and agent != b"-" else b"",
        method,
        b',"referrer":"%b"' % referrer if referrer and referrer != b"-" else b"",
        version,
        status.lstrip(b"0") or b"0",  # written as int() reads them
        size.lstrip(b"0") or b"0",
    )
    return document, stamp[0]


@lru_cache(maxsize=1024)
def _stamp(time_local: bytes) -> tuple[datetime, bytes] | None:
    """parse_time_local for the bytes of an ASCII time (cached the same way)."""
    stamp = parse_time_local(time_local.decode("ascii"))
    return None if stamp is None else (stamp[0], stamp[1].encode())


def _is_ip(address: bytes) -> bool:
    """is_ip for the bytes of an ASCII address (cached unless too long to be one)."""
    if len(address) > CACHED_IP_LENGTH:
        return is_ip(address.decode("ascii"))
    return _cached_is_ip(address)


@lru_cache(maxsize=4096)
def _cached_is_ip(address: bytes) -> bool:
    return is_ip(address.decode("ascii"))
