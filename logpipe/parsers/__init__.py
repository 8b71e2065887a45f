"""Parsers: pure functions from one decoded line to ECS fields.

Every parser has the signature ``(text: str) -> Parsed``. It never raises on bad
input: a line it cannot parse comes back with ``message`` set to the whole line
and a tag naming the failure (``_jsonparsefailure``, ``_nginxparsefailure``), so
it is still indexed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Parsed:
    """What a parser returns: the nested ECS fields and any tags.

    ``timestamp`` is the event's own time as an aware UTC datetime (``None`` when
    the line carries none or it did not parse); ``fields["@timestamp"]`` holds the
    same instant as an ISO-8601 string ending in ``Z``. The index date is taken
    from ``timestamp``.
    """

    fields: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    timestamp: datetime | None = None


Parser = Callable[[str], Parsed]
