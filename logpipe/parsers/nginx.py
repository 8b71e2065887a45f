"""Parse nginx access log lines to ECS: the ``combined`` format and JSON access logs.

``combined`` is ``$remote_addr - $remote_user [$time_local] "$request" $status
$body_bytes_sent "$http_referer" "$http_user_agent"``. Variants seen in the wild
are accepted too: a leading virtual host (``example.com``, ``example.com:443``),
a forwarded-for list in place of the address (``203.0.113.7, 10.0.0.2``), IPv6
and ``unix:`` clients, the ``common`` format (no referrer and agent), and extra
trailing fields (``"$http_x_forwarded_for"``, ``$request_time``), kept as
strings in ``nginx.access.extra``.

Client address choice: in a list ``a, b`` the rightmost entry is the peer nginx
saw and the leftmost the original client. ``source.address`` / ``source.ip`` take
the leftmost, because that is who people search for; it is client-supplied and
can be forged, so the whole list is kept as written in
``nginx.access.remote_ip_list`` and its valid IPs in ``network.forwarded_ip``.

Escapes: nginx writes ``"`` and ``\\`` inside quoted fields as ``\\x22`` and
``\\x5C`` (some configs as ``\\"`` and ``\\\\``); those are undone. Other ``\\xHH``
escapes (control bytes, non-ASCII bytes, TLS handshakes sent to the HTTP port)
are kept as written: decoding them could yield control characters or invalid
UTF-8, and the escaped form is what people grep for.

``message`` is always the whole line. A line that does not match at all keeps only
``message`` and is tagged ``_nginxparsefailure``; an unparseable request line is
tagged ``_nginx_bad_request_line`` and the rest of the line is still mapped.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from logpipe.parsers import Parsed
from logpipe.parsers.timestamps import (
    Stamp,
    parse_epoch_seconds,
    parse_iso8601,
    parse_time_local,
)

NGINX_FAILURE = "_nginxparsefailure"
JSON_FAILURE = "_jsonparsefailure"
BAD_REQUEST_LINE = "_nginx_bad_request_line"
TIMESTAMP_FAILURE = "_timestampparsefailure"

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
# Greedy target, then backtrack to " HTTP/x.y" at the end: a lazy target would
# retry the version at every character of a long URL. Targets may hold spaces.
_REQUEST = re.compile(
    r"([A-Za-z][A-Za-z0-9_-]*) (?:(\S.*) HTTP/(\d+(?:\.\d+)?)|(\S.*))\Z",
    re.ASCII | re.DOTALL,
)
_QUOTE_ESCAPE = re.compile(r'\\(?:x22|x5[Cc]|["\\])')
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}\Z", re.ASCII)
# Elasticsearch's long is 64-bit; orjson refuses to encode a larger int at all.
_MAX_DIGITS = 18
_MAX_LONG = 2**63 - 1


def parse_nginx(text: str) -> Parsed:
    """Parse one ``combined`` (or ``common``) access log line; never raises."""
    match = _COMBINED.match(text) or _COMBINED_LOOSE.match(text) or _COMMON.match(text)
    if match is None:
        return Parsed({"message": text}, [NGINX_FAILURE])
    fields: dict[str, Any] = {"message": text}
    tags: list[str] = []
    vhost = match["vhost"]
    if vhost is not None:
        _set_domain(fields, vhost)
    _set_client(fields, match["remote"].split(","))
    _set_user(fields, match["user"])
    stamp = parse_time_local(match["time"])
    if stamp is None:
        tags.append(TIMESTAMP_FAILURE)
        _set_access(fields, "time_local", match["time"])
    else:
        fields["@timestamp"] = stamp[1]
    http: dict[str, Any] = {}
    _set_request(fields, http, tags, _unescape(match["request"]))
    _set_response(http, match["status"], match["bytes"])
    if match.re is not _COMMON:
        referrer, agent = _unescape(match["referrer"]), _unescape(match["agent"])
        _set_referrer_and_agent(fields, http, referrer, agent)
    if http:
        fields["http"] = http
    extra = match["extra"]
    if extra is not None and not extra.isspace():
        found = [_unescape(quoted or bare) for quoted, bare in _EXTRA_FIELD.findall(extra)]
        _set_access(fields, "extra", found)
    return Parsed(fields, tags, None if stamp is None else stamp[0])


def parse_nginx_json(text: str) -> Parsed:
    """Parse one line of an nginx ``log_format ... escape=json`` access log; never raises.

    Keys named after nginx variables (``remote_addr``, ``remote_user``,
    ``time_iso8601`` / ``time_local`` / ``msec``, ``request``, ``status``,
    ``body_bytes_sent``, ``http_referer``, ``http_user_agent``,
    ``http_x_forwarded_for``, ``request_time``) map to the same ECS fields as
    :func:`parse_nginx` (``request_time`` to ``event.duration`` in nanoseconds);
    any other key, or a known key whose value does not parse, goes to
    ``nginx.access.<key>`` unchanged. nginx's ``-`` and ``""`` mean absent.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Parsed({"message": text, "error": {"message": f"not JSON: {exc}"}}, [JSON_FAILURE])
    if not isinstance(obj, dict):
        reason = f"JSON {type(obj).__name__} is not an object"
        return Parsed({"message": text, "error": {"message": reason}}, [JSON_FAILURE])
    fields: dict[str, Any] = {"message": text}
    tags: list[str] = []
    stamp = _take_json_time(obj)
    if stamp is None:
        tags.append(TIMESTAMP_FAILURE)
    else:
        fields["@timestamp"] = stamp[1]
    _map_json_client(obj, fields)
    http: dict[str, Any] = {}
    request = _take_str(obj, "request")
    if request is not None:
        _set_request(fields, http, tags, request)
    _map_json_response(obj, fields, http)
    if http:
        fields["http"] = http
    if obj:
        # Only unknown (or unparseable) keys are left: hand the dict over whole.
        fields.setdefault("nginx", {}).setdefault("access", {}).update(obj)
    return Parsed(fields, tags, None if stamp is None else stamp[0])


def _take_json_time(obj: dict[str, Any]) -> Stamp | None:
    """Pop the first time key that parses, preferring the most precise form."""
    for key, parse in (
        ("time_iso8601", parse_iso8601),
        ("msec", parse_epoch_seconds),
        ("time_local", parse_time_local),
    ):
        value = obj.get(key)
        if value is None:
            continue
        stamp = parse(str(value)) if isinstance(value, str | int | float) else None
        if stamp is not None:
            del obj[key]
            return stamp
    return None


def _map_json_client(obj: dict[str, Any], fields: dict[str, Any]) -> None:
    """Map the client chain (forwarded-for list, then the peer) and the user."""
    chain: list[str] = []
    forwarded = _take_str(obj, "http_x_forwarded_for")
    if forwarded is not None:
        chain.extend(forwarded.split(","))
    remote = _take_str(obj, "remote_addr")
    if remote is not None:
        chain.append(remote)
    _set_client(fields, chain)
    user = _take_str(obj, "remote_user")
    if user is not None:
        _set_user(fields, user)


def _map_json_response(obj: dict[str, Any], fields: dict[str, Any], http: dict[str, Any]) -> None:
    """Map status, size, referrer, user agent and request time."""
    status = _take_int(obj, "status")
    body_bytes = _take_int(obj, "body_bytes_sent")
    _set_response(http, status, body_bytes)
    referrer = _take_str(obj, "http_referer")
    agent = _take_str(obj, "http_user_agent")
    _set_referrer_and_agent(fields, http, referrer, agent)
    request_time = obj.get("request_time")
    if isinstance(request_time, str | int | float) and not isinstance(request_time, bool):
        try:
            # event.duration is ECS's nanoseconds; request_time is seconds (ms resolution).
            duration = round(float(request_time) * 1_000_000_000)
        except (ValueError, OverflowError):
            return
        if 0 <= duration <= _MAX_LONG:
            fields["event"] = {"duration": duration}
            del obj["request_time"]


def _take_str(obj: dict[str, Any], key: str) -> str | None:
    """Pop ``key`` if its value is a string; leave any other value in place."""
    value = obj.get(key)
    if isinstance(value, str):
        del obj[key]
        return value
    return None


def _take_int(obj: dict[str, Any], key: str) -> str | int | None:
    """Pop ``key`` if it holds an integer or digit string; leave anything else."""
    value = obj.get(key)
    if (type(value) is int and 0 <= value <= _MAX_LONG) or (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS
    ):
        del obj[key]
        return value
    return None


def _set_access(fields: dict[str, Any], key: str, value: Any) -> None:
    fields.setdefault("nginx", {}).setdefault("access", {})[key] = value


def _set_domain(fields: dict[str, Any], host: str) -> None:
    """Map a virtual host (``example.com``, ``example.com:443``, ``[::1]:443``)."""
    domain, port = host, ""
    if host.startswith("["):
        bracket = host.find("]")
        if bracket > 0:
            domain, port = host[1:bracket], host[bracket + 2 :]
    elif host.count(":") == 1:
        domain, _, port = host.partition(":")
    url = fields.setdefault("url", {})
    if domain and domain != "-":
        url["domain"] = domain
    if port.isascii() and port.isdigit() and int(port) <= 65535:
        url["port"] = int(port)
    if not url:
        del fields["url"]


def _set_client(fields: dict[str, Any], entries: list[str]) -> None:
    """Map a client chain, original client first (see the module docstring)."""
    chain = [entry.strip() for entry in entries]
    chain = [entry for entry in chain if entry and entry != "-"]
    if not chain:
        return
    client = chain[0]
    source: dict[str, Any] = {"address": client}
    if _is_ip(client):
        source["ip"] = client
    fields["source"] = source
    if len(chain) > 1:
        _set_access(fields, "remote_ip_list", chain)
        # network.forwarded_ip is mapped as `ip`: one invalid entry ("unknown",
        # "1.2.3.4:5678") would make Elasticsearch reject the whole document.
        valid = [entry for entry in chain if _is_ip(entry)]
        if valid:
            fields["network"] = {"forwarded_ip": valid}


def _is_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address Elasticsearch's ``ip`` type accepts."""
    if _IPV4.match(value) is not None:
        return True
    if ":" not in value or "%" in value:  # zone ids are refused by the ip type
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _set_user(fields: dict[str, Any], user: str) -> None:
    if user and user != "-":
        fields["user"] = {"name": user}


def _set_request(fields: dict[str, Any], http: dict[str, Any], tags: list[str], line: str) -> None:
    """Map ``"GET /path?q HTTP/1.1"``; tag and keep the raw text when it is not one."""
    match = _REQUEST.match(line)
    if match is None:
        tags.append(BAD_REQUEST_LINE)
        if line and line != "-":
            fields.setdefault("url", {})["original"] = line
        return
    http.setdefault("request", {})["method"] = match[1]
    target = match[2]
    if target is None:  # HTTP/0.9 style, no version
        target = match[4]
    else:
        http["version"] = match[3]
    url = fields.setdefault("url", {})
    url["original"] = target
    if target.startswith("/"):
        rest, _, fragment = target.partition("#")
        path, _, query = rest.partition("?")
        url["path"] = path
        if query:
            url["query"] = query
        if fragment:
            url["fragment"] = fragment
    elif "://" in target:
        _set_absolute_target(url, target)


def _set_absolute_target(url: dict[str, Any], target: str) -> None:
    """Map an absolute-form target (``GET http://host/path``, sent to proxies)."""
    try:
        parts = urlsplit(target)
    except ValueError:
        return
    if parts.scheme:
        url["scheme"] = parts.scheme
    if parts.hostname and "domain" not in url:
        url["domain"] = parts.hostname
    if parts.path:
        url["path"] = parts.path
    if parts.query:
        url["query"] = parts.query
    if parts.fragment:
        url["fragment"] = parts.fragment


def _set_response(http: dict[str, Any], status: str | int | None, size: str | int | None) -> None:
    """Map status code and body size; nginx's ``-`` means absent."""
    response: dict[str, Any] = {}
    if status is not None and status != "-":
        response["status_code"] = int(status)
    if size is not None and size != "-":
        response["body"] = {"bytes": int(size)}
    if response:
        http["response"] = response


def _set_referrer_and_agent(
    fields: dict[str, Any], http: dict[str, Any], referrer: str | None, agent: str | None
) -> None:
    if referrer and referrer != "-":
        http.setdefault("request", {})["referrer"] = referrer
    if agent and agent != "-":
        fields["user_agent"] = {"original": agent}


def _unescape(value: str) -> str:
    """Undo nginx's escaping of the quote and the backslash (see the module docstring)."""
    if "\\" not in value:
        return value
    return _QUOTE_ESCAPE.sub(_unescaped, value)


def _unescaped(match: re.Match[str]) -> str:
    # \x22 and \" end in 2 or a quote; \x5C, \x5c and \\ stand for a backslash.
    return '"' if match[0][-1] in '"2' else "\\"
