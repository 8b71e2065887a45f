"""Mapping conflicts lose nothing: pure repairs of a document Elasticsearch refused.

When a field's value does not fit the index's mapping (a number field now holds
a string, an object arrives where a keyword was mapped, …) Elasticsearch
answers 400 for that one document. Logstash drops it (or dead-letters it, if
configured); Filebeat drops it. logpipe re-sends it in a safe form instead:

1. the conflicting field, named in the error reason, is taken out of the
   document and kept as JSON text under ``logpipe.conflicts`` (``field``,
   ``value``, ``reason``) — a place mapped as keyword/text that cannot conflict —
   and the document is tagged ``_mapping_conflict``; repeated if another field
   conflicts next;
2. if the reason names no field, or too many repairs were needed, the document
   is cut down to the fields logpipe itself guarantees (time, message, source
   position, host, tags) and the whole original goes under ``logpipe.conflicts``
   as one JSON string.

Only if the safe form is refused too does the document go to the dead-letter
file. Either way it is still searchable in Kibana (``tags: _mapping_conflict``,
``logpipe.conflicts.value``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from logpipe.event import set_path

MAX_FIELD_REPAIRS = 3
_MAX_REASON = 500

# The exception types Elasticsearch uses for a value that does not fit a mapping.
_CONFLICT_TYPES = (
    "document_parsing_exception",
    "mapper_parsing_exception",
    "illegal_argument_exception",
    "strict_dynamic_mapping_exception",
)

_FIELD_PATTERNS = [
    re.compile(p)
    for p in (
        r"object mapping for \[([^\]]+)\] tried to parse field",
        r"failed to parse field \[([^\]]+)\]",
        r"can't merge a non object mapping \[([^\]]+)\]",
        r"mapper \[([^\]]+)\] cannot be changed",
        r"[Ee]xisting mapping for \[([^\]]+)\]",
        r"mapping for field \[([^\]]+)\]",
        r"field \[([^\]]+)\]",
    )
]

# What a document keeps when it is cut down to its safe core.
_CORE = (
    "@timestamp",
    "message",
    "log.file.path",
    "log.offset",
    "log.level",
    "event.dataset",
    "event.ingested",
    "host.name",
)


def is_mapping_conflict(reason: str) -> bool:
    """Whether a rejection reason (``"400 <type>: ..."``) is a value/mapping mismatch."""
    return reason.startswith("400 ") and any(t in reason for t in _CONFLICT_TYPES)


_STRICT = re.compile(r"dynamic introduction of \[([^\]]+)\] within \[([^\]]+)\]")


def conflicting_field(reason: str) -> str | None:
    """The dotted field a rejection reason names, if any."""
    strict = _STRICT.search(reason)
    if strict:
        name, parent = strict.groups()
        return name if parent == "_doc" else f"{parent}.{name}"
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(reason)
        if match:
            return match.group(1)
    return None


def _pop_path(doc: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    parts = dotted.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            return False, None
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        return False, None
    return True, node.pop(parts[-1])


def _note(doc: dict[str, Any], field: str, value: Any, reason: str) -> None:
    section = doc.get("logpipe")
    if not isinstance(section, dict):
        section = doc["logpipe"] = {}
    conflicts = section.setdefault("conflicts", [])
    conflicts.append(
        {
            "field": field,
            "value": orjson.dumps(value, default=str).decode(),
            "reason": reason[:_MAX_REASON],
        }
    )
    tags = doc.get("tags")
    if not isinstance(tags, list):
        tags = doc["tags"] = []
    if "_mapping_conflict" not in tags:
        tags.append("_mapping_conflict")


def move_conflicting_field(doc: dict[str, Any], reason: str) -> bool:
    """Move the field ``reason`` names under ``logpipe.conflicts``; False if none found."""
    field = conflicting_field(reason)
    if field is None or field.startswith("logpipe."):
        return False
    found, value = _pop_path(doc, field)
    if not found:
        return False
    _note(doc, field, value, reason)
    return True


def safe_core(doc: dict[str, Any], reason: str) -> dict[str, Any]:
    """The document cut to logpipe's own fields, with the whole original as JSON text."""
    core: dict[str, Any] = {}
    for dotted in _CORE:
        value: Any = doc
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            set_path(core, dotted, value)
    original = {k: v for k, v in doc.items() if k != "tags"}
    _note(core, "*", original, reason)
    tags = doc.get("tags")
    if isinstance(tags, list):
        core["tags"] = [t for t in tags if isinstance(t, str)] + core["tags"]
        core["tags"] = list(dict.fromkeys(core["tags"]))
    return core
