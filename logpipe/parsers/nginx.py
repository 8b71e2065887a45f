"""Parse nginx access log lines to ECS: the ``combined`` format and JSON access logs.

``combined`` is ``$remote_addr - $remote_user [$time_local] "$request" $status
$body_bytes_sent "$http_referer" "$http_user_agent"``. Variants seen in the wild
are accepted too: a leading virtual host (``example.com``, ``example.com:443``),
a forwarded-for list in place of the address (``203.0.113.7, 10.0.0.2``), IPv6
and ``unix:`` clients, the ``common`` format (no referrer and agent), and extra
trailing fields (``"$http_x_forwarded_for"``, ``$request_time``), kept as
strings in ``nginx.access.extra``. How a forwarded-for list is mapped is told
in :mod:`logpipe.parsers.nginx_fields`; JSON access logs are parsed by
:func:`parse_nginx_json` (in :mod:`logpipe.parsers.nginx_json`, importable from here).

Escapes: nginx writes ``"`` and ``\\`` inside quoted fields as ``\\x22`` and
``\\x5C`` (some configs as ``\\"`` and ``\\\\``); those are undone. Other ``\\xHH``
escapes (control bytes, non-ASCII bytes, TLS handshakes sent to the HTTP port)
are kept as written: decoding them could yield control characters or invalid
UTF-8, and the escaped form is what people grep for.

``message`` is always the whole line. A line that does not match at all keeps only
``message`` and is tagged ``_nginxparsefailure``; an unparseable request line is
tagged ``_nginx_bad_request_line`` and the rest of the line is still mapped.

Speed: :func:`parse_nginx` first tries one regex for the usual shape of a line and
builds the fields directly; everything else goes to :func:`parse_nginx_general`,
which handles every variant and gives the same result for the usual lines too
(the tests check both paths against each other).
"""

from __future__ import annotations

import re
from typing import Any

from logpipe.parsers import Parsed
from logpipe.parsers.nginx_fields import (
    TIMESTAMP_FAILURE,
    is_ip,
    set_access,
    set_client,
    set_domain,
    set_referrer_and_agent,
    set_request,
    set_response,
    set_user,
)
from logpipe.parsers.nginx_json import parse_nginx_json
from logpipe.parsers.timestamps import parse_time_local

__all__ = ["NGINX_FAILURE", "parse_nginx", "parse_nginx_general", "parse_nginx_json"]

NGINX_FAILURE = "_nginxparsefailure"

# A quoted field's content, with backslash escapes ("unrolled loop" form: far
# fewer backtracking steps than (?:[^"\\]|\\.)* on long user agents).
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'


def _combined(quoted: str, *, agent: bool = True) -> re.Pattern[str]:
    head = (
        r"(?:(?P<vhost>[^\s,]+) )?"  # optional virtual host; never ends in a comma
        r"(?P<remote>[^\s,]+(?:, ?[^\s,]+)*) "  # address, or a forwarded-for list
        r"\S+ (?P<user>\S+) "  # ident (always "-"), remote user
        r"\[(?P<time>[^\]]*)\] "
        rf'"(?P<request>{quoted})" '
        r"(?P<status>\d{3}|-) (?P<bytes>\d{1,18}|-)"
    )
    tail = rf' "(?P<referrer>{quoted})" "(?P<agent>{quoted})"' if agent else ""
    return re.compile(head + tail + r"(?P<extra>\s.*)?\Z", re.DOTALL)


# Tried in order. Referrer and agent are required in the first two so that a
# field the escape-aware form cannot close is never mistaken for an extra field.
_COMBINED = _combined(_QUOTED)
# For writers that leave a lone backslash unescaped (old nginx, other servers):
# without escape handling a quote always ends the field.
_COMBINED_LOOSE = _combined(r'[^"]*')
# The `common` format: no referrer and agent.
_COMMON = _combined(_QUOTED, agent=False)
_EXTRA_FIELD = re.compile(rf'"({_QUOTED})"|(\S+)')
_QUOTE_ESCAPE = re.compile(r'\\(?:x22|x5[Cc]|["\\])')

# The usual line, for the fast path: `combined` from one address, with an
# origin-form target and a version, numeric status and size, nothing after the
# agent, and no backslash anywhere (checked before matching). It is a strict
# subset of what _COMBINED accepts, and on it _COMBINED and _REQUEST can only
# split the line the same way:
# - the address is hex digits, dots and colons: no comma (no forwarded-for
#   list), not "-", and nothing str.strip() would remove;
# - the time holds no "[": a leading virtual host would need the remote user to
#   start at the time's "[" and be followed by " [" inside the time (such a
#   time would not parse either, which also sends the line to the general path);
# - the target holds no space, so " HTTP/" occurs once in the request;
# - without backslashes _QUOTED is [^"]* and unescaping changes nothing. A
#   one-character class is also what makes this regex nearly twice as fast as
#   _COMBINED on long user agents.
# Digits are ASCII here ([0-9]) because _REQUEST matches versions with re.ASCII.
_USUAL = re.compile(
    r"([0-9A-Fa-f.:]+) - (\S+) \[([^\[\]]*)\] "
    r'"([A-Za-z][A-Za-z0-9_-]*) (/[^ "]*) HTTP/([0-9]+(?:\.[0-9]+)?)" '
    r'([0-9]{3}) ([0-9]{1,18}) "([^"]*)" "([^"]*)"\Z'
)


def parse_nginx(text: str) -> Parsed:
    """Parse one ``combined`` (or ``common``) access log line; never raises."""
    match = None if "\\" in text else _USUAL.match(text)
    if match is None:
        return parse_nginx_general(text)
    address, user, time_local, method, target, version, status, size, referrer, agent = (
        match.groups()
    )
    stamp = parse_time_local(time_local)
    if stamp is None:
        return parse_nginx_general(text)
    # Keys are added in the general path's order, so both encode to the same bytes.
    fields: dict[str, Any] = {
        "message": text,
        "source": {"address": address, "ip": address} if is_ip(address) else {"address": address},
    }
    if user != "-":
        fields["user"] = {"name": user}
    fields["@timestamp"] = stamp[1]
    rest, _, fragment = target.partition("#")
    path, _, query = rest.partition("?")
    url = {"original": target, "path": path}
    if query:
        url["query"] = query
    if fragment:
        url["fragment"] = fragment
    fields["url"] = url
    request = {"method": method}
    if referrer and referrer != "-":
        request["referrer"] = referrer
    if agent and agent != "-":
        fields["user_agent"] = {"original": agent}
    fields["http"] = {
        "request": request,
        "version": version,
        "response": {"status_code": int(status), "body": {"bytes": int(size)}},
    }
    return Parsed(fields, [], stamp[0])


def parse_nginx_general(text: str) -> Parsed:
    """Parse any accepted access log line; what :func:`parse_nginx` falls back to."""
    match = _COMBINED.match(text) or _COMBINED_LOOSE.match(text) or _COMMON.match(text)
    if match is None:
        return Parsed({"message": text}, [NGINX_FAILURE])
    fields: dict[str, Any] = {"message": text}
    tags: list[str] = []
    vhost = match["vhost"]
    if vhost is not None:
        set_domain(fields, vhost)
    set_client(fields, match["remote"].split(","))
    set_user(fields, match["user"])
    stamp = parse_time_local(match["time"])
    if stamp is None:
        tags.append(TIMESTAMP_FAILURE)
        set_access(fields, "time_local", match["time"])
    else:
        fields["@timestamp"] = stamp[1]
    http: dict[str, Any] = {}
    set_request(fields, http, tags, _unescape(match["request"]))
    set_response(http, match["status"], match["bytes"])
    if match.re is not _COMMON:
        referrer, agent = _unescape(match["referrer"]), _unescape(match["agent"])
        set_referrer_and_agent(fields, http, referrer, agent)
    if http:
        fields["http"] = http
    extra = match["extra"]
    if extra is not None and not extra.isspace():
        found = [_unescape(quoted or bare) for quoted, bare in _EXTRA_FIELD.findall(extra)]
        set_access(fields, "extra", found)
    return Parsed(fields, tags, None if stamp is None else stamp[0])


def _unescape(value: str) -> str:
    """Undo nginx's escaping of the quote and the backslash (see the module docstring)."""
    if "\\" not in value:
        return value
    return _QUOTE_ESCAPE.sub(_unescaped, value)


def _unescaped(match: re.Match[str]) -> str:
    # \x22 and \" end in 2 or a quote; \x5C, \x5c and \\ stand for a backslash.
    return '"' if match[0][-1] in '"2' else "\\"
