"""Parse nginx JSON access logs (``log_format ... escape=json``) to ECS.

The keys are named after the nginx variables and map to the same ECS fields as
the ``combined`` format (see :mod:`logpipe.parsers.nginx`); import
:func:`parse_nginx_json` from there.
"""

from __future__ import annotations

from typing import Any

import orjson

from logpipe.parsers import Parsed
from logpipe.parsers.nginx_fields import (
    TIMESTAMP_FAILURE,
    set_client,
    set_referrer_and_agent,
    set_request,
    set_response,
    set_user,
)
from logpipe.parsers.timestamps import (
    Stamp,
    parse_epoch_seconds,
    parse_iso8601,
    parse_time_local,
)

JSON_FAILURE = "_jsonparsefailure"
# Elasticsearch's long is 64-bit; orjson refuses to encode a larger int at all.
_MAX_DIGITS = 18
_MAX_LONG = 2**63 - 1


def parse_nginx_json(text: str) -> Parsed:
    """Parse one line of an nginx ``log_format ... escape=json`` access log; never raises.

    Keys named after nginx variables (``remote_addr``, ``remote_user``,
    ``time_iso8601`` / ``time_local`` / ``msec``, ``request``, ``status``,
    ``body_bytes_sent``, ``http_referer``, ``http_user_agent``,
    ``http_x_forwarded_for``, ``request_time``) map to the same ECS fields as
    :func:`~logpipe.parsers.nginx.parse_nginx` (``request_time`` to
    ``event.duration`` in nanoseconds), and ``request_id`` to
    ``http.request.id`` as the application's lines have it; any other key, or a known key whose
    value does not parse, goes to ``nginx.access.<key>`` unchanged. nginx's
    ``-`` and ``""`` mean absent.
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
        set_request(fields, http, tags, request)
    request_id = _take_str(obj, "request_id")
    if request_id not in (None, "", "-"):
        # The id the application logs too (nginx passes $request_id upstream as
        # X-Request-ID): one search finds a request's nginx and app lines.
        http.setdefault("request", {})["id"] = request_id
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
    set_client(fields, chain)
    user = _take_str(obj, "remote_user")
    if user is not None:
        set_user(fields, user)


def _map_json_response(obj: dict[str, Any], fields: dict[str, Any], http: dict[str, Any]) -> None:
    """Map status, size, referrer, user agent and request time."""
    status = _take_int(obj, "status")
    body_bytes = _take_int(obj, "body_bytes_sent")
    set_response(http, status, body_bytes)
    referrer = _take_str(obj, "http_referer")
    agent = _take_str(obj, "http_user_agent")
    set_referrer_and_agent(fields, http, referrer, agent)
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
