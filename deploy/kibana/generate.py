"""Write logpipe's Kibana saved objects: ``saved-objects.ndjson`` beside this file.

Regenerate after editing this script (never edit the ``.ndjson`` by hand: the
inner JSON strings are escaped twice)::

    .venv/bin/python deploy/kibana/generate.py

It writes the same bytes to ``logpipe/kibana_saved_objects.ndjson``, the copy
``logpipe kibana-import`` sends by default (deploy/ is not part of the installed
package). ``tests/unit/test_kibana_objects.py`` checks that both files are what
this script writes, and that every reference resolves.

The objects are what a Kibana 8.8 export holds (``coreMigrationVersion`` 8.8.0,
each type at the migration version of that format), so Kibana 8.8 and later
import them and migrate them forward. Visualizations are the aggregation-based
("legacy") kind: plain ``visState`` JSON (built by ``visstate.py``), which every
8.x Kibana still imports and renders, where Lens state would tie the file to
one minor version.

Field names are the ones logpipe indexes (the ECS fields of
``logpipe/sinks/elasticsearch/template.json``). Two gaps in what the parsers
emit shape the searches:

- ``event.duration`` (nanoseconds) comes only from nginx JSON access logs
  (``request_time``); the ``combined`` format has no request time, so "Slow
  requests" is empty for sites that log ``combined``.
- ``http.request.id`` comes from application lines and from nginx JSON access
  logs with a ``request_id`` key (nginx's ``$request_id``, passed upstream as
  X-Request-ID); ``combined`` lines carry no request id at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from visstate import (
    count,
    date_histogram,
    histogram_params,
    pie_params,
    status_classes,
    table_params,
    terms,
)

HERE = Path(__file__).resolve().parent
OUTPUTS = (
    HERE / "saved-objects.ndjson",
    HERE.parents[1] / "logpipe" / "kibana_saved_objects.ndjson",
)

CORE_VERSION = "8.8.0"
DATA_VIEW = "erp-logs"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
SEARCH_REF = "search_0"
SLOW_NANOSECONDS = 1_000_000_000  # one second

SEARCH_ERRORS = "erp-logs-errors"
SEARCH_5XX = "erp-logs-5xx-responses"
SEARCH_SLOW = "erp-logs-slow-requests"
SEARCH_REQUEST = "erp-logs-request-trace"


def dumps(value: Any) -> str:
    """JSON as Kibana writes it: compact, keys sorted (stable diffs)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def saved_object(
    kind: str, object_id: str, migration: str, attributes: dict[str, Any], references: list[Any]
) -> dict[str, Any]:
    return {
        "attributes": attributes,
        "coreMigrationVersion": CORE_VERSION,
        "id": object_id,
        "references": references,
        "type": kind,
        "typeMigrationVersion": migration,
    }


def reference(name: str, kind: str, object_id: str) -> dict[str, str]:
    return {"id": object_id, "name": name, "type": kind}


def search_source(query: str, *, index: bool = True) -> dict[str, str]:
    """``kibanaSavedObjectMeta``: a KQL query, and the data view by reference name."""
    source: dict[str, Any] = {"filter": [], "query": {"language": "kuery", "query": query}}
    if index:
        source["indexRefName"] = INDEX_REF
    return {"searchSourceJSON": dumps(source)}


def data_view() -> dict[str, Any]:
    # event.duration is ECS nanoseconds: shown in milliseconds, as ops read nginx times.
    formats = {
        "event.duration": {
            "id": "duration",
            "params": {
                "inputFormat": "nanoseconds",
                "outputFormat": "asMilliseconds",
                "outputPrecision": 0,
            },
        }
    }
    attributes = {
        "fieldFormatMap": dumps(formats),
        "name": "ERP logs",
        "timeFieldName": "@timestamp",
        "title": "erp-logs-*",
    }
    return saved_object("index-pattern", DATA_VIEW, "8.0.0", attributes, [])


def search(
    object_id: str,
    title: str,
    description: str,
    query: str,
    columns: list[str],
    sort: list[list[str]] | None = None,
) -> dict[str, Any]:
    attributes = {
        "columns": columns,
        "description": description,
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": search_source(query),
        "sort": sort or [["@timestamp", "desc"]],
        "timeRestore": False,
        "title": title,
    }
    return saved_object(
        "search", object_id, "8.0.0", attributes, [reference(INDEX_REF, "index-pattern", DATA_VIEW)]
    )


def searches() -> list[dict[str, Any]]:
    return [
        search(
            SEARCH_ERRORS,
            "ERP errors",
            "Application lines at level error or critical: what ops are e-mailed about.",
            "log.level:(error or critical)",
            ["log.level", "log.logger", "message", "error.type", "http.request.id"],
        ),
        search(
            SEARCH_5XX,
            "nginx 5xx responses",
            "Requests nginx answered with a server error (500-599).",
            "http.response.status_code >= 500",
            [
                "http.response.status_code",
                "http.request.method",
                "url.path",
                "source.ip",
                "user_agent.original",
            ],
        ),
        search(
            SEARCH_SLOW,
            "Slow requests (1 s and more)",
            "Requests nginx took a second or more to answer, slowest first. Needs an nginx"
            " JSON access log with request_time: the combined format has no request time.",
            f"event.duration >= {SLOW_NANOSECONDS}",
            ["event.duration", "http.request.method", "url.path", "http.response.status_code"],
            sort=[["event.duration", "desc"]],
        ),
        search(
            SEARCH_REQUEST,
            "One request, app and nginx",
            "Every line that carries a request id, oldest first. Narrow it to one request"
            ' with http.request.id:"<id>": application lines, and nginx JSON access logs'
            " with a request_id key.",
            "http.request.id:*",
            [
                "event.dataset",
                "http.request.id",
                "log.level",
                "message",
                "http.response.status_code",
                "url.path",
            ],
            sort=[["@timestamp", "asc"]],
        ),
    ]


def visualization(
    object_id: str,
    title: str,
    kind: str,
    aggs: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    query: str = "",
    saved_search: str | None = None,
) -> dict[str, Any]:
    """A legacy visualization over the data view, or over a saved search's hits."""
    attributes: dict[str, Any] = {
        "description": "",
        "kibanaSavedObjectMeta": search_source(query, index=saved_search is None),
        "title": title,
        "uiStateJSON": "{}",
        "version": 1,
        "visState": dumps({"aggs": aggs, "params": params, "title": title, "type": kind}),
    }
    if saved_search is None:
        refs = [reference(INDEX_REF, "index-pattern", DATA_VIEW)]
    else:
        attributes["savedSearchRefName"] = SEARCH_REF
        refs = [reference(SEARCH_REF, "search", saved_search)]
    return saved_object("visualization", object_id, "8.5.0", attributes, refs)


def visualizations() -> list[dict[str, Any]]:
    return [
        visualization(
            "erp-logs-lines-over-time",
            "Log lines over time, by dataset",
            "histogram",
            [count(), date_histogram("2"), terms("3", "event.dataset", "group", 5)],
            histogram_params(),
        ),
        visualization(
            "erp-logs-levels",
            "Application log levels",
            "pie",
            [count(), terms("2", "log.level", "segment", 6)],
            pie_params(),
            query="log.level:*",
        ),
        visualization(
            "erp-logs-status-classes",
            "nginx responses over time, by status class",
            "histogram",
            [count(), date_histogram("2"), status_classes("3")],
            histogram_params(),
            query="http.response.status_code:*",
        ),
        visualization(
            "erp-logs-top-error-sources",
            "Top error sources (logger, exception)",
            "table",
            [
                count(),
                terms("2", "log.logger", "bucket", 10),
                terms("3", "error.type", "bucket", 5),
            ],
            table_params(),
            saved_search=SEARCH_ERRORS,
        ),
        visualization(
            "erp-logs-top-5xx-paths",
            "Top paths answered 5xx",
            "table",
            [
                count(),
                terms("2", "url.path", "bucket", 10),
                terms("3", "http.response.status_code", "bucket", 5),
            ],
            table_params(),
            saved_search=SEARCH_5XX,
        ),
    ]


# (panel type, saved object id, x, y, w, h) on Kibana's 48-column grid.
LAYOUT = [
    ("visualization", "erp-logs-lines-over-time", 0, 0, 32, 12),
    ("visualization", "erp-logs-levels", 32, 0, 16, 12),
    ("visualization", "erp-logs-status-classes", 0, 12, 24, 12),
    ("visualization", "erp-logs-top-error-sources", 24, 12, 24, 12),
    ("search", SEARCH_ERRORS, 0, 24, 48, 15),
    ("visualization", "erp-logs-top-5xx-paths", 0, 39, 20, 15),
    ("search", SEARCH_5XX, 20, 39, 28, 15),
]


def dashboard() -> dict[str, Any]:
    """The overview; each panel names its object as Kibana 8 stores it.

    The panel holds ``panelRefName: panel_<i>`` and the dashboard's reference is
    named ``<i>:panel_<i>``, ``<i>`` being the panel index (Kibana's
    ``prefixReferencesFromPanel``).
    """
    panels, refs = [], []
    for number, (kind, object_id, x, y, w, h) in enumerate(LAYOUT, start=1):
        index = str(number)
        panels.append(
            {
                "embeddableConfig": {"enhancements": {}},
                "gridData": {"h": h, "i": index, "w": w, "x": x, "y": y},
                "panelIndex": index,
                "panelRefName": f"panel_{index}",
                "type": kind,
                "version": CORE_VERSION,
            }
        )
        refs.append(reference(f"{index}:panel_{index}", kind, object_id))
    options = {
        "hidePanelTitles": False,
        "syncColors": False,
        "syncCursor": True,
        "syncTooltips": False,
        "useMargins": True,
    }
    attributes = {
        "description": "logpipe: application and nginx logs of the ERP backend.",
        "kibanaSavedObjectMeta": search_source("", index=False),
        "optionsJSON": dumps(options),
        "panelsJSON": dumps(panels),
        "refreshInterval": {"pause": False, "value": 60000},
        "timeFrom": "now-24h",
        "timeRestore": True,
        "timeTo": "now",
        "title": "ERP logs overview",
        "version": 1,
    }
    return saved_object("dashboard", "erp-logs-overview", "8.7.0", attributes, refs)


def objects() -> list[dict[str, Any]]:
    """Every object, each after the ones it references (as Kibana exports them)."""
    return [data_view(), *searches(), *visualizations(), dashboard()]


def render() -> str:
    return "".join(dumps(obj) + "\n" for obj in objects())


def write(paths: tuple[Path, ...] = OUTPUTS) -> None:
    text = render()
    for path in paths:
        path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write()
