"""Pure bulk-response classification, one item at a time.

Each item of a bulk response is one of:

- ``done``: 200/201 (created) or 409 on ``create`` (the same id is already there,
  so the line was delivered before — by a retry, or before a restart);
- ``retry``: 429 or any 5xx — the server may take it later;
- ``reject``: any other 4xx (mapping conflicts, bad values) — retrying the same
  document cannot help, so it is dead-lettered with the reason.

A response that is missing items (or has too many) is a protocol error: every
item not answered is retried rather than assumed delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Outcome(Enum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    REJECT = "reject"


@dataclass(slots=True)
class Classified:
    """Per-item outcomes, in request order, with a reason for every failure."""

    outcomes: list[Outcome] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)


def classify_status(status: int) -> Outcome:
    """Outcome for one item's HTTP status."""
    if status in (200, 201):
        return Outcome.CREATED
    if status == 409:
        return Outcome.DUPLICATE
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.REJECT


def _reason(result: dict[str, Any]) -> str | None:
    error = result.get("error")
    if error is None:
        return None
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, dict):
            text += f" (caused by {caused.get('type', '')}: {caused.get('reason', '')})"
        return text
    return str(error)


def classify_response(response: dict[str, Any], sent: int) -> Classified:
    """Classify the ``sent`` items of a bulk ``response`` body."""
    out = Classified()
    items = response.get("items")
    if not isinstance(items, list):
        items = []
    for i in range(sent):
        if i >= len(items) or not isinstance(items[i], dict) or not items[i]:
            out.outcomes.append(Outcome.RETRY)
            out.reasons.append("no answer for this item in the bulk response")
            continue
        result = next(iter(items[i].values()))
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int):
            out.outcomes.append(Outcome.RETRY)
            out.reasons.append("bulk item without a status")
            continue
        out.outcomes.append(classify_status(status))
        out.reasons.append(f"{status} {_reason(result)}" if status >= 300 else None)
    return out
