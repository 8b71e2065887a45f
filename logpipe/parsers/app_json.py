"""Parse the application's JSON log lines (the backend's ``JSONFormatter``) to ECS.

One line is one JSON object::

    {"timestamp": "2026-11-27T10:00:00.123456", "level": "ERROR", "logger": "erp.db",
     "message": "...", "module": "session", "function": "connect", "line": 42,
     "exception": "Traceback (most recent call last):\\n ...", "request_id": "...",
     "user_id": 7, "order_id": 991}

Mapping (``<ns>`` is the parser's ``extra_namespace``, ``app`` by default):

==============  =========================================================
``timestamp``   ``@timestamp`` (naive means UTC) and :attr:`Parsed.timestamp`
``level``       ``log.level``, lower-cased as written (``WARN`` -> ``warn``)
``logger``      ``log.logger``
``message``     ``message`` (non-strings rendered as JSON text)
``function``    ``log.origin.function``
``line``        ``log.origin.file.line`` (int)
``module``      ``<ns>.module``: ECS has no module field, and guessing a file
                name (``module + ".py"``) would be wrong for packages
``exception``   ``error.stack_trace``; ``error.type`` and ``error.message``
                from the final exception line of the traceback
``request_id``  ``http.request.id``
``user_id``     ``user.id`` (as a string)
anything else   ``<ns>.<key>``, value unchanged
==============  =========================================================

A known key whose value has the wrong type (``"line": "n/a"``, ``"level": {...}``)
is moved to ``<ns>.<key>`` unchanged rather than coerced or dropped. JSON ``null``
on a known key is treated as absent.

``log`` is the parser's last field, after the extras: the per-line step adds
the position (``log.file.path``, ``log.offset``) to it, and for the usual line
does so by splicing bytes (below).

Speed: a line as the formatter writes it (every key present and well typed) is
encoded by :func:`make_usual_encoder` straight from its bytes to the document's
JSON, without a :class:`Parsed` or the per-line step's dict handling; any other
line goes through the parser, which gives the same fields for the usual lines
too (the tests hold the two against each other, byte for byte).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from logpipe.parsers import Parsed, Parser
from logpipe.parsers.timestamps import Stamp, parse_iso8601

JSON_FAILURE = "_jsonparsefailure"
TIMESTAMP_FAILURE = "_timestampparsefailure"

# Top-level fields this parser maps the known keys to (the usual line's document
# has these, ``event`` and the namespace at most), and with ``tags`` the ones a
# namespace may not be: it would overwrite the mapped fields with the extras.
MAPPED_ROOTS = frozenset({"@timestamp", "log", "message", "error", "http", "user"})
_RESERVED_ROOTS = MAPPED_ROOTS | {"tags"}

_TRACEBACK_HEADER = "Traceback (most recent call last):"
# The final exception: a dotted class name, then ": message" or nothing at all.
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::(.*)|\s*\Z)", re.DOTALL)
_NAN_WORDS = ("NaN", "Infinity")
_ID_TYPES = (str, int)  # exact types: bool, an int subclass, is no id


def make_app_json_parser(extra_namespace: str = "app") -> Parser:
    """Build a parser for the application's JSON lines.

    Keys the mapping does not know go under ``extra_namespace`` (a top-level
    field name, or a dotted path such as ``labels.app``). Raises ``ValueError``
    for an empty namespace or one that would collide with the mapped ECS fields.
    """
    # A partial, not a closure: one Python call per line instead of two.
    return functools.partial(_parse_general, parts=_namespace_parts(extra_namespace))


def _namespace_parts(extra_namespace: str) -> list[str]:
    parts = extra_namespace.split(".")
    if not all(parts) or parts[0] in _RESERVED_ROOTS:
        raise ValueError(f"extra_namespace {extra_namespace!r} is empty or collides with ECS")
    return parts


def make_usual_encoder(
    extra_namespace: str = "app", alert_levels: frozenset[str] = frozenset()
) -> Callable[[bytes], tuple[bytes, datetime] | None]:
    """The encoder of the usual line: its raw bytes to ``orjson.dumps(parse(text).fields)``.

    The encoder gives those bytes and the line's time for a line with every key
    the formatter writes, each well typed, and ``None`` for any other line (not
    UTF-8, not a JSON object, a missing, ``null`` or wrongly typed key, a
    timestamp that does not parse) and for a line whose level is one of
    ``alert_levels``: the per-line step then decodes it and calls the parser,
    which keeps the fields the alert rules need.
    """
    # A partial with positional arguments, not a closure: one Python call per line.
    return functools.partial(_encode_usual, _namespace_parts(extra_namespace), alert_levels)


def _encode_usual(
    parts: list[str], alert_levels: frozenset[str], raw: bytes
) -> tuple[bytes, datetime] | None:
    """The usual line's fields, in the parser's key order, with one lookup per key
    instead of a helper per key.

    Declined lines pay twice (this decode, then the parser's), so that the
    usual ones need not keep ``obj`` intact while checking it.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    pop = obj.pop
    timestamp, level, logger = pop("timestamp", None), pop("level", None), pop("logger", None)
    message, function, line = pop("message", None), pop("function", None), pop("line", None)
    exception = pop("exception", None)
    request_id, user_id = pop("request_id", None), pop("user_id", None)
    if not (
        type(timestamp) is str
        and type(level) is str
        and type(logger) is str
        and type(message) is str
        and type(function) is str
        and type(line) is int
        and (exception is None or type(exception) is str)
        and (request_id is None or type(request_id) in _ID_TYPES)
        and (user_id is None or type(user_id) in _ID_TYPES)
    ):
        return None
    stamp = parse_iso8601(timestamp)
    if stamp is None:
        return None
    level = level.lower()
    if alert_levels and level.strip().lower() in alert_levels:
        return None
    fields: dict[str, Any] = {"@timestamp": stamp[1], "message": message}
    if exception is not None:
        fields["error"] = _describe_exception(exception)
    if request_id is not None:
        fields["http"] = {"request": {"id": str(request_id)}}
    if user_id is not None:
        fields["user"] = {"id": str(user_id)}
    if obj:
        if len(parts) == 1:  # saves _place's loop on every line in the usual set-up
            fields[parts[0]] = obj
        else:
            _place(fields, parts, obj)
    fields["log"] = {
        "level": level,
        "logger": logger,
        "origin": {"function": function, "file": {"line": line}},
    }
    try:
        return orjson.dumps(fields), stamp[0]
    except orjson.JSONEncodeError:  # nested too deep: the per-line step tags such lines
        return None


def _parse_general(text: str, parts: list[str]) -> Parsed:
    """Any line, every known key checked and taken on its own; never raises."""
    obj = _loads(text)
    if isinstance(obj, str):
        return _failure(text, obj)
    fields: dict[str, Any] = {}
    tags: list[str] = []
    stamp = _take_timestamp(obj)
    if stamp is None:
        tags.append(TIMESTAMP_FAILURE)
    else:
        fields["@timestamp"] = stamp[1]
    log = _take_log(obj)
    message = obj.pop("message", None)
    if message is not None:
        fields["message"] = message if isinstance(message, str) else _as_text(message)
    _map_context(obj, fields)
    if obj:
        # What is left in obj is exactly the unknown keys: hand the dict over
        # as-is instead of copying it key by key.
        _place(fields, parts, obj)
    if log:
        fields["log"] = log  # last: see the module docstring
    return Parsed(fields, tags, None if stamp is None else stamp[0])


def _loads(text: str) -> dict[str, Any] | str:
    """Decode a line to a JSON object, or return a short reason why not."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        obj = _loads_lenient(text)
        if obj is None:
            return f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return f"JSON {type(obj).__name__} is not an object"
    return obj


def _loads_lenient(text: str) -> Any:
    """Retry what Python's own ``json.dumps`` may write but orjson refuses.

    The formatter uses ``json.dumps`` with its defaults, which writes ``NaN`` and
    ``Infinity`` for such floats; an editor may add a byte-order mark. Only lines
    that failed the fast path get here, and only these cases pay a second parse.
    """
    stripped = text.removeprefix("\ufeff")
    if not stripped.lstrip().startswith("{"):
        return None
    try:
        if any(word in stripped for word in _NAN_WORDS):
            return json.loads(stripped, parse_int=_int_within_long)
        if stripped is not text:
            return orjson.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return None


def _int_within_long(digits: str) -> int | float:
    # Like orjson, fall back to float past 64 bits: orjson cannot encode a larger
    # int when the event is shipped, and Elasticsearch's long could not hold it.
    value = int(digits)
    return value if -(2**63) <= value < 2**64 else float(value)


def _failure(text: str, reason: str) -> Parsed:
    return Parsed({"message": text, "error": {"message": reason}}, [JSON_FAILURE])


def _take_timestamp(obj: dict[str, Any]) -> Stamp | None:
    """Pop and parse ``timestamp``; on failure leave the original value in ``obj``."""
    value = obj.pop("timestamp", None)
    if value is None:
        return None
    stamp = parse_iso8601(value) if isinstance(value, str) else None
    if stamp is None:
        obj["timestamp"] = value
    return stamp


def _take_log(obj: dict[str, Any]) -> dict[str, Any]:
    """``log.*``: the level, the logger and the code origin."""
    log: dict[str, Any] = {}
    level = _take_str(obj, "level")
    if level is not None:
        log["level"] = level.lower()
    logger = _take_str(obj, "logger")
    if logger is not None:
        log["logger"] = logger
    origin: dict[str, Any] = {}
    function = _take_str(obj, "function")
    if function is not None:
        origin["function"] = function
    line = obj.pop("line", None)
    if type(line) is int:
        origin["file"] = {"line": line}
    elif isinstance(line, str) and line.isascii() and line.isdigit():
        origin["file"] = {"line": int(line)}
    elif line is not None:
        obj["line"] = line
    if origin:
        log["origin"] = origin
    return log


def _map_context(obj: dict[str, Any], fields: dict[str, Any]) -> None:
    """Map the exception, request id and user id."""
    exception = _take_str(obj, "exception")
    if exception is not None:
        fields["error"] = _describe_exception(exception)
    request_id = _take_id(obj, "request_id")
    if request_id is not None:
        fields["http"] = {"request": {"id": request_id}}
    user_id = _take_id(obj, "user_id")
    if user_id is not None:
        fields["user"] = {"id": user_id}
    # module stays in obj on purpose: it has no ECS home and goes to <ns>.module.


def _take_str(obj: dict[str, Any], key: str) -> str | None:
    """Pop ``key`` if its value is a string; leave any other value in place."""
    value = obj.get(key)
    if isinstance(value, str):
        del obj[key]
        return value
    if value is None:
        obj.pop(key, None)
    return None


def _take_id(obj: dict[str, Any], key: str) -> str | None:
    """Pop an identifier written as a string or an integer, as a string."""
    value = obj.get(key)
    if isinstance(value, str | int) and not isinstance(value, bool):
        del obj[key]
        return str(value)
    if value is None:
        obj.pop(key, None)
    return None


def _as_text(value: Any) -> str:
    """Render a non-string message as JSON text (``42``, ``true``, ``{"a":1}``)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _describe_exception(stack: str) -> dict[str, Any]:
    """Build ``error.*`` from a formatted traceback.

    The final exception is the first non-indented line after the last
    ``Traceback`` header (frames and source lines are indented; earlier
    headers belong to chained exceptions). Its message may run over several
    lines, so everything from there to the end is the message.
    """
    error: dict[str, Any] = {"stack_trace": stack}
    start = stack.rfind(_TRACEBACK_HEADER)
    body = stack if start < 0 else stack[start + len(_TRACEBACK_HEADER) :]
    offset = 0
    for line in body.splitlines(keepends=True):
        if line.strip() and not line[0].isspace():
            match = _EXCEPTION_LINE.match(body, offset)
            if match is not None:
                error["type"] = match[1]
                message = (match[2] or "").strip()
                if message:
                    error["message"] = message
            break
        offset += len(line)
    return error


def _place(fields: dict[str, Any], parts: list[str], extras: dict[str, Any]) -> None:
    """Put the unknown keys at the namespace path (``app`` or ``labels.app``)."""
    node = fields
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = extras
