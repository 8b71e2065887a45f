"""Links from an alert e-mail to the event in Kibana Discover.

Pure: values in, a URL out.

Kibana 8 keeps Discover's state in the URL fragment as two rison values::

    <base>/app/discover#/?_g=(time:(from:'<iso>',to:'<iso>'))
        &_a=(dataSource:(dataViewId:'erp-logs',type:dataViewId),
             query:(language:kuery,query:'http.request.id:"req-1"'))

A request id comes from a log line, so it is escaped three times, innermost
first: for KQL (a quoted string: backslash and double quote are escaped with a
backslash), for rison (a quoted string: ``!`` becomes ``!!`` and ``'`` becomes
``!'``), and for the URL (percent-encoding, leaving only rison's punctuation
as is). Whatever the id holds, it stays inside the one KQL string it was put in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from logpipe.alerts.render import one_line
from logpipe.event import get_path

DATA_VIEW = "erp-logs"
"""The data view shipped in deploy/kibana/saved-objects.ndjson."""
EVENT_WINDOW = timedelta(minutes=1)
"""Either side of an event without a request id."""
REQUEST_WINDOW = timedelta(minutes=15)
"""Either side of an event found by its request id (ids are unique; wide is cheap)."""
VALUE_MAX = 500
"""Longest field value put in a query."""

# Left as is in the URL: rison's own punctuation. Everything else, including
# ' & # % + and spaces, is percent-encoded.
_URL_SAFE = "(),:!"


def kql_string(value: str) -> str:
    """``value`` as a quoted KQL string (a phrase, no wildcards)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rison_string(value: str) -> str:
    """``value`` as a quoted rison string."""
    return "'" + value.replace("!", "!!").replace("'", "!'") + "'"


def discover_url(
    base: str, *, start: datetime, end: datetime, query: str = "", data_view: str = DATA_VIEW
) -> str:
    """A Discover URL for ``data_view`` over [start, end] filtered by the KQL ``query``."""
    if not base.startswith(("http://", "https://")):
        raise ValueError("the Kibana URL must start with http:// or https://")
    g = f"(time:(from:{rison_string(_iso(start))},to:{rison_string(_iso(end))}))"
    a = (
        f"(dataSource:(dataViewId:{rison_string(data_view)},type:dataViewId),"
        f"query:(language:kuery,query:{rison_string(query)}))"
    )
    return (
        f"{base.rstrip('/')}/app/discover#/?_g={quote(g, safe=_URL_SAFE)}"
        f"&_a={quote(a, safe=_URL_SAFE)}"
    )


def event_link(
    base: str, fields: Mapping[str, Any], *, fallback: float, data_view: str = DATA_VIEW
) -> str:
    """Link to one event: its request's lines if it has a request id, else ±1 minute.

    ``fallback`` (epoch seconds) is used when the event has no usable ``@timestamp``.
    """
    at = _timestamp(fields, fallback)
    request_id = _value(fields, "http.request.id")
    if request_id:
        query = f"http.request.id:{kql_string(request_id)}"
        return discover_url(
            base,
            start=at - REQUEST_WINDOW,
            end=at + REQUEST_WINDOW,
            query=query,
            data_view=data_view,
        )
    return discover_url(base, start=at - EVENT_WINDOW, end=at + EVENT_WINDOW, data_view=data_view)


def group_link(
    base: str,
    sample: Mapping[str, Any],
    *,
    first_at: float,
    last_at: float,
    data_view: str = DATA_VIEW,
) -> str:
    """Link to a digest's period, filtered to the sample's logger and level when known."""
    clauses = [
        f"{path}:{kql_string(value)}"
        for path in ("log.logger", "log.level")
        if (value := _value(sample, path))
    ]
    return discover_url(
        base,
        start=_utc(first_at) - EVENT_WINDOW,
        end=_utc(last_at) + EVENT_WINDOW,
        query=" and ".join(clauses),
        data_view=data_view,
    )


def _value(fields: Mapping[str, Any], path: str) -> str:
    value = get_path(dict(fields), path)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return one_line(str(value), VALUE_MAX)


def _timestamp(fields: Mapping[str, Any], fallback: float) -> datetime:
    value = fields.get("@timestamp")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _utc(fallback)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return _utc(fallback)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
