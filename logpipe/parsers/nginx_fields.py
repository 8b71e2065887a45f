"""ECS mapping shared by both nginx access log formats (``combined`` and JSON).

Client address choice: in a list ``a, b`` the rightmost entry is the peer nginx
saw and the leftmost the original client. ``source.address`` / ``source.ip`` take
the leftmost, because that is who people search for; it is client-supplied and
can be forged, so the whole list is kept as written in
``nginx.access.remote_ip_list`` and its valid IPs in ``network.forwarded_ip``.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

BAD_REQUEST_LINE = "_nginx_bad_request_line"
TIMESTAMP_FAILURE = "_timestampparsefailure"

# Greedy target, then backtrack to " HTTP/x.y" at the end: a lazy target would
# retry the version at every character of a long URL. Targets may hold spaces.
_REQUEST = re.compile(
    r"([A-Za-z][A-Za-z0-9_-]*) (?:(\S.*) HTTP/(\d+(?:\.\d+)?)|(\S.*))\Z",
    re.ASCII | re.DOTALL,
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}\Z", re.ASCII)
# The longest address text the ip check can accept is 45 characters
# (``ffff:...:ffff:255.255.255.255``). Only values up to this length are cached,
# so the cache stays small however long the client-supplied entries are; longer
# ones are checked afresh each time.
CACHED_IP_LENGTH = 45


def set_access(fields: dict[str, Any], key: str, value: Any) -> None:
    """Set ``nginx.access.<key>``."""
    fields.setdefault("nginx", {}).setdefault("access", {})[key] = value


def set_domain(fields: dict[str, Any], host: str) -> None:
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


def set_client(fields: dict[str, Any], entries: list[str]) -> None:
    """Map a client chain, original client first (see the module docstring)."""
    chain = [entry.strip() for entry in entries]
    chain = [entry for entry in chain if entry and entry != "-"]
    if not chain:
        return
    client = chain[0]
    source: dict[str, Any] = {"address": client}
    if is_ip(client):
        source["ip"] = client
    fields["source"] = source
    if len(chain) > 1:
        set_access(fields, "remote_ip_list", chain)
        # network.forwarded_ip is mapped as `ip`: one invalid entry ("unknown",
        # "1.2.3.4:5678") would make Elasticsearch reject the whole document.
        valid = [entry for entry in chain if is_ip(entry)]
        if valid:
            fields["network"] = {"forwarded_ip": valid}


def is_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address Elasticsearch's ``ip`` type accepts.

    Cached per address: a log repeats its clients, and checking an IPv6 address
    through :mod:`ipaddress` costs several times a whole line's parse.
    """
    if len(value) > CACHED_IP_LENGTH:
        return _check_ip(value)
    return _cached_check_ip(value)


def _check_ip(value: str) -> bool:
    if _IPV4.match(value) is not None:
        return True
    if ":" not in value or "%" in value:  # zone ids are refused by the ip type
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


_cached_check_ip = lru_cache(maxsize=4096)(_check_ip)


def set_user(fields: dict[str, Any], user: str) -> None:
    """Map ``$remote_user``; nginx's ``-`` means absent."""
    if user and user != "-":
        fields["user"] = {"name": user}


def set_request(fields: dict[str, Any], http: dict[str, Any], tags: list[str], line: str) -> None:
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


def set_response(http: dict[str, Any], status: str | int | None, size: str | int | None) -> None:
    """Map status code and body size; nginx's ``-`` means absent."""
    response: dict[str, Any] = {}
    if status is not None and status != "-":
        response["status_code"] = int(status)
    if size is not None and size != "-":
        response["body"] = {"bytes": int(size)}
    if response:
        http["response"] = response


def set_referrer_and_agent(
    fields: dict[str, Any], http: dict[str, Any], referrer: str | None, agent: str | None
) -> None:
    """Map the referrer and the user agent; ``-`` and empty mean absent."""
    if referrer and referrer != "-":
        http.setdefault("request", {})["referrer"] = referrer
    if agent and agent != "-":
        fields["user_agent"] = {"original": agent}
