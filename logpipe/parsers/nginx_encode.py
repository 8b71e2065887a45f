"""The usual ``combined`` line straight to JSON bytes, without building its fields.

:func:`encode_usual` gives exactly ``orjson.dumps(parse_nginx(text).fields)``
for the lines :func:`~logpipe.parsers.nginx.parse_nginx` takes by its fast path
(most of a real access log), and ``None`` for every other line, which then
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

from logpipe.parsers.nginx_fields import is_ip
from logpipe.parsers.timestamps import parse_time_local

# parse_nginx's regex for the usual line (_USUAL in nginx.py) with each class
# narrowed to printable ASCII without the quote and the backslash
# (``[ !#-\[\]-~]``; without the space where _USUAL has none). Every line it
# matches, _USUAL matches with the same groups (each field is still delimited
# the one way), so the parser takes its fast path on it and builds its fields
# from the same values; and one regex pass checks the characters too
# (str.isprintable cost as much as the match).
_ENCODABLE = re.compile(
    r"([0-9A-Fa-f.:]+) - ([!#-\[\]-~]+) \[([^\[\]]*)\] "
    r'"([A-Za-z][A-Za-z0-9_-]*) (/[!#-\[\]-~]*) HTTP/([0-9]+(?:\.[0-9]+)?)" '
    r'([0-9]{3}) ([0-9]{1,18}) "([ !#-\[\]-~]*)" "([ !#-\[\]-~]*)"\Z'
)


def encode_usual(text: str) -> tuple[bytes, datetime] | None:
    """``(JSON object bytes of the line's ECS fields, its time)``, or ``None``."""
    match = _ENCODABLE.match(text)
    if match is None:
        return None
    address, user, time_local, method, target, version, status, size, referrer, agent = (
        match.groups()
    )
    stamp = parse_time_local(time_local)
    if stamp is None:
        return None
    # Keys in the order parse_nginx adds them; see its fast path.
    parts = ['{"message":"', text.replace('"', '\\"'), '","source":{"address":"', address]
    parts.append(f'","ip":"{address}"}}' if is_ip(address) else '"}')
    if user != "-":
        parts.append(f',"user":{{"name":"{user}"}}')
    rest, _, fragment = target.partition("#")
    path, _, query = rest.partition("?")
    parts.append(f',"@timestamp":"{stamp[1]}","url":{{"original":"{target}","path":"{path}"')
    if query:
        parts.append(f',"query":"{query}"')
    if fragment:
        parts.append(f',"fragment":"{fragment}"')
    parts.append("}")
    if agent and agent != "-":
        parts.append(f',"user_agent":{{"original":"{agent}"}}')
    parts.append(f',"http":{{"request":{{"method":"{method}"')
    if referrer and referrer != "-":
        parts.append(f',"referrer":"{referrer}"')
    status = status.lstrip("0") or "0"
    size = size.lstrip("0") or "0"
    parts.append(
        f'}},"version":"{version}","response":{{"status_code":{status},"body":{{"bytes":{size}}}}}}}}}'
    )
    return "".join(parts).encode(), stamp[0]
