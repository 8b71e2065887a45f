"""Aggregation-based ("legacy") visualization state, as Kibana 8 saves it.

``visState`` holds the aggregations (``aggs``: one metric, then buckets whose
``schema`` says where they go: ``segment`` the x axis or pie slices, ``group``
split series, ``bucket`` table rows) and the chart's ``params``. The params are
what Kibana 8.8's editor writes for each chart type; Kibana fills in anything
missing from its defaults, but the axis and series lists are not merged item by
item, so they are written out in full. Used by generate.py beside this file.
"""

from __future__ import annotations

from typing import Any


def count() -> dict[str, Any]:
    return {"enabled": True, "id": "1", "params": {}, "schema": "metric", "type": "count"}


def date_histogram(agg_id: str) -> dict[str, Any]:
    params = {
        "drop_partials": False,
        "extended_bounds": {},
        "field": "@timestamp",
        "interval": "auto",
        "min_doc_count": 1,
        "scaleMetricValues": False,
        "useNormalizedEsInterval": True,
    }
    return {
        "enabled": True,
        "id": agg_id,
        "params": params,
        "schema": "segment",
        "type": "date_histogram",
    }


def terms(agg_id: str, field: str, schema: str, size: int) -> dict[str, Any]:
    params = {
        "field": field,
        "missingBucket": False,
        "missingBucketLabel": "Missing",
        "order": "desc",
        "orderBy": "1",
        "otherBucket": True,
        "otherBucketLabel": "Other",
        "size": size,
    }
    return {"enabled": True, "id": agg_id, "params": params, "schema": schema, "type": "terms"}


def status_classes(agg_id: str) -> dict[str, Any]:
    ranges = [{"from": low, "to": low + 100} for low in (100, 200, 300, 400, 500)]
    params = {"field": "http.response.status_code", "ranges": ranges}
    return {"enabled": True, "id": agg_id, "params": params, "schema": "group", "type": "range"}


def histogram_params() -> dict[str, Any]:
    """A stacked bar chart over time, as Kibana 8's aggregation-based editor saves it."""
    return {
        "addLegend": True,
        "addTimeMarker": False,
        "addTooltip": True,
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "labels": {"filter": True, "show": True, "truncate": 100},
                "position": "bottom",
                "scale": {"type": "linear"},
                "show": True,
                "style": {},
                "title": {},
                "type": "category",
            }
        ],
        "detailedTooltip": True,
        "grid": {"categoryLines": False},
        "isVislibVis": True,
        "labels": {"show": False},
        "legendPosition": "right",
        "legendSize": "auto",
        "palette": {"name": "kibana_palette", "type": "palette"},
        "seriesParams": [
            {
                "data": {"id": "1", "label": "Count"},
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "mode": "stacked",
                "show": True,
                "showCircles": True,
                "type": "histogram",
                "valueAxis": "ValueAxis-1",
            }
        ],
        "thresholdLine": {
            "color": "#E7664C",
            "show": False,
            "style": "full",
            "value": 10,
            "width": 1,
        },
        "times": [],
        "type": "histogram",
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "labels": {"filter": False, "rotate": 0, "show": True, "truncate": 100},
                "name": "LeftAxis-1",
                "position": "left",
                "scale": {"mode": "normal", "type": "linear"},
                "show": True,
                "style": {},
                "title": {"text": "Count"},
                "type": "value",
            }
        ],
    }


def pie_params() -> dict[str, Any]:
    return {
        "addTooltip": True,
        "distinctColors": False,
        "emptySizeRatio": 0.3,
        "isDonut": True,
        "labels": {
            "last_level": False,
            "percentDecimals": 2,
            "position": "default",
            "show": True,
            "truncate": 100,
            "values": True,
            "valuesFormat": "percent",
        },
        "legendDisplay": "show",
        "legendPosition": "right",
        "maxLegendLines": 1,
        "nestedLegend": False,
        "palette": {"name": "default", "type": "palette"},
        "truncateLegend": True,
        "type": "pie",
    }


def table_params() -> dict[str, Any]:
    return {
        "autoFitRowToContent": False,
        "perPage": 10,
        "percentageCol": "",
        "row": True,
        "showMetricsAtAllLevels": False,
        "showPartialRows": False,
        "showTotal": False,
        "totalFunc": "sum",
        "type": "table",
    }
