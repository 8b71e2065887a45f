"""The Kibana saved objects hold together, and name fields logpipe really writes.

Kibana checks little at import time (only that referenced objects exist); a
broken reference name inside an inner JSON string, or a field that no document
has, shows up later as an empty panel or an error in Discover. So the file is
checked here the way Kibana reads it: every line a saved object, unique
(type, id), every reference resolved, every inner JSON string parsed, every
``indexRefName`` / ``savedSearchRefName`` / ``panelRefName`` matched to a
reference, and every field in the template's mappings. The checker is tested on
broken copies too, so that it cannot pass by checking nothing.

The end also covers the pure parts of ``logpipe.kibana_import``.
"""

from __future__ import annotations

import copy
import email
import email.policy
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from logpipe.alerts.kibana import DATA_VIEW
from logpipe.kibana_import import (
    Credentials,
    KibanaImportError,
    auth_headers,
    bundled_objects,
    count_objects,
    describe_failure,
    import_url,
    multipart,
    read_answer,
)
from logpipe.parsers.app_json import make_app_json_parser
from logpipe.parsers.nginx import parse_nginx, parse_nginx_json

ROOT = Path(__file__).resolve().parents[2]
KIBANA = ROOT / "deploy" / "kibana"
OBJECTS = KIBANA / "saved-objects.ndjson"
TEMPLATE = ROOT / "logpipe" / "sinks" / "elasticsearch" / "template.json"
# Where the parsers put keys they do not map (nginx JSON's upstream_response_time, say):
# mapped by the template's strings_as_keyword dynamic template, not by name.
FREE_FORM = ("nginx.access.",)
INNER_JSON = ("visState", "panelsJSON", "optionsJSON", "uiStateJSON", "fieldFormatMap")
_KQL_FIELD = re.compile(r"([@A-Za-z_][\w.@]*)\s*(?::|>=|<=|>|<)")


def load(path: Path = OBJECTS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_type(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["type"] == kind]


def search_source(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["attributes"].get("kibanaSavedObjectMeta", {})
    return json.loads(meta["searchSourceJSON"]) if "searchSourceJSON" in meta else {}


def ref_names_used(obj: dict[str, Any]) -> Iterator[str]:
    """Every reference name the object's attributes point at, as Kibana resolves them."""
    source = search_source(obj)
    if "indexRefName" in source:
        yield source["indexRefName"]
    for item in source.get("filter", []):
        if "indexRefName" in item.get("meta", {}):
            yield item["meta"]["indexRefName"]
    if "savedSearchRefName" in obj["attributes"]:
        yield obj["attributes"]["savedSearchRefName"]
    # Kibana 8 looks a panel's reference up as "<panelIndex>:<panelRefName>".
    for panel in json.loads(obj["attributes"].get("panelsJSON", "[]")):
        if "panelRefName" in panel:
            yield f"{panel['panelIndex']}:{panel['panelRefName']}"


def problems(objects: list[dict[str, Any]]) -> list[str]:
    """What Kibana would trip over in ``objects``; empty when all is well."""
    found: list[str] = []
    keys = [(obj.get("type"), obj.get("id")) for obj in objects]
    found += [f"duplicate {key}" for key in {k for k in keys if keys.count(k) > 1}]
    present = set(keys)
    for obj in objects:
        name = f"{obj.get('type')} {obj.get('id')}"
        refs = {ref["name"]: ref for ref in obj.get("references", [])}
        for ref in refs.values():
            if (ref["type"], ref["id"]) not in present:
                found.append(
                    f"{name}: reference {ref['name']} to missing {ref['type']} {ref['id']}"
                )
        try:
            used = list(ref_names_used(obj))
            for key in INNER_JSON:
                if key in obj["attributes"]:
                    json.loads(obj["attributes"][key])
        except (ValueError, KeyError) as exc:
            found.append(f"{name}: inner JSON does not parse: {exc!r}")
            continue
        found += [f"{name}: no reference named {ref!r}" for ref in used if ref not in refs]
    return found


def template_fields() -> set[str]:
    mappings = json.loads(TEMPLATE.read_text(encoding="utf-8"))["template"]["mappings"]
    fields: set[str] = set()

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for key, spec in properties.items():
            fields.add(prefix + key)
            walk(spec.get("properties", {}), f"{prefix}{key}.")
            walk(spec.get("fields", {}), f"{prefix}{key}.")

    walk(mappings["properties"], "")
    return fields


def fields_used(obj: dict[str, Any]) -> set[str]:
    attributes = obj["attributes"]
    used = set(attributes.get("columns", []))
    used |= {field for field, _order in attributes.get("sort", [])}
    query = search_source(obj).get("query", {}).get("query", "")
    used |= set(_KQL_FIELD.findall(query))
    if "visState" in attributes:
        aggs = json.loads(attributes["visState"])["aggs"]
        used |= {agg["params"]["field"] for agg in aggs if "field" in agg["params"]}
    used |= set(json.loads(attributes.get("fieldFormatMap", "{}")))
    return used


def query_of(objects: list[dict[str, Any]], object_id: str) -> str:
    (obj,) = [o for o in objects if o["id"] == object_id]
    query: str = search_source(obj)["query"]["query"]
    return query


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load()


@pytest.fixture
def generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """deploy/kibana/generate.py, imported from its path (deploy is not a package)."""
    monkeypatch.syspath_prepend(str(KIBANA))  # for its sibling visstate.py
    spec = importlib.util.spec_from_file_location("kibana_generate", KIBANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_both_copies_are_what_the_generator_writes(generator: ModuleType) -> None:
    expected = generator.render().encode()
    assert OBJECTS.read_bytes() == expected, "rerun deploy/kibana/generate.py"
    assert bundled_objects() == expected, "rerun deploy/kibana/generate.py"


def test_every_line_is_a_saved_object_of_a_known_type(objects: list[dict[str, Any]]) -> None:
    kinds = {"index-pattern", "search", "visualization", "dashboard"}
    for obj in objects:
        assert obj["type"] in kinds
        assert obj["id"] and obj["attributes"]["title"]
        assert obj["coreMigrationVersion"] == "8.8.0"  # Kibana 8.8+ imports and migrates it
    assert count_objects(OBJECTS.read_bytes()) == len(objects)


def test_the_data_view_is_the_one_alert_links_open(objects: list[dict[str, Any]]) -> None:
    (view,) = by_type(objects, "index-pattern")
    assert view["id"] == DATA_VIEW == "erp-logs"
    assert view["attributes"]["title"] == "erp-logs-*"
    assert view["attributes"]["timeFieldName"] == "@timestamp"
    assert view["references"] == []


def test_the_file_holds_together(objects: list[dict[str, Any]]) -> None:
    assert problems(objects) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("duplicate", "duplicate"),
        ("dangling_reference", "to missing index-pattern"),
        ("renamed_reference", "no reference named 'kibanaSavedObjectMeta.searchSourceJSON.index'"),
        ("panel_reference", "no reference named '3:panel_3'"),
        ("saved_search_reference", "no reference named 'search_0'"),
        ("bad_inner_json", "inner JSON does not parse"),
    ],
)
def test_the_checker_finds_each_kind_of_breakage(
    objects: list[dict[str, Any]], breakage: str, expected: str
) -> None:
    broken = copy.deepcopy(objects)
    search = by_type(broken, "search")[0]
    table = next(o for o in broken if "savedSearchRefName" in o["attributes"])
    board = by_type(broken, "dashboard")[0]
    if breakage == "duplicate":
        broken.append(copy.deepcopy(search))
    elif breakage == "dangling_reference":
        search["references"][0]["id"] = "nope"
    elif breakage == "renamed_reference":
        search["references"][0]["name"] = "index"
    elif breakage == "panel_reference":
        board["references"] = [r for r in board["references"] if r["name"] != "3:panel_3"]
    elif breakage == "saved_search_reference":
        table["references"] = []
    else:
        board["attributes"]["panelsJSON"] = board["attributes"]["panelsJSON"][:-1]
    assert any(expected in problem for problem in problems(broken)), problems(broken)


def test_every_field_used_is_mapped_by_the_index_template(objects: list[dict[str, Any]]) -> None:
    mapped = template_fields()
    for obj in objects:
        used = fields_used(obj)
        unknown = {f for f in used if f not in mapped and not f.startswith(FREE_FORM)}
        assert unknown == set(), f"{obj['type']} {obj['id']}"
    assert "http.response.status_code" in fields_used(by_type(objects, "search")[1])


def test_the_four_searches_of_the_issue_are_there(objects: list[dict[str, Any]]) -> None:
    searches = {obj["id"]: obj for obj in by_type(objects, "search")}
    assert set(searches) == {
        "erp-logs-errors",
        "erp-logs-5xx-responses",
        "erp-logs-slow-requests",
        "erp-logs-request-trace",
    }
    for obj in searches.values():
        assert obj["references"] == [
            {
                "id": "erp-logs",
                "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
                "type": "index-pattern",
            }
        ]
        assert search_source(obj)["query"]["language"] == "kuery"


def test_the_error_search_matches_the_levels_the_parser_writes(
    objects: list[dict[str, Any]],
) -> None:
    query = query_of(objects, "erp-logs-errors")
    parse = make_app_json_parser()
    for level in ("ERROR", "CRITICAL"):
        line = json.dumps({"timestamp": "2026-11-27T00:05:00", "level": level, "message": "x"})
        written = parse(line).fields["log"]["level"]
        assert re.search(rf"\b{written}\b", query), (written, query)


def test_the_5xx_and_slow_searches_use_what_nginx_lines_become(
    objects: list[dict[str, Any]],
) -> None:
    combined = '203.0.113.9 - - [27/Nov/2026:07:05:00 +0700] "GET /api/x HTTP/1.1" 502 0 "-" "-"'
    status = parse_nginx(combined).fields["http"]["response"]["status_code"]
    bound = int(query_of(objects, "erp-logs-5xx-responses").rsplit(">=", 1)[1])
    assert status >= bound == 500
    slow = parse_nginx_json('{"time_iso8601":"2026-11-27T00:05:00Z","request_time":"1.250"}')
    duration = slow.fields["event"]["duration"]
    threshold = int(query_of(objects, "erp-logs-slow-requests").rsplit(">=", 1)[1])
    assert duration >= threshold == 1_000_000_000  # one second, in ECS nanoseconds


def test_the_request_search_finds_application_lines_by_request_id(
    objects: list[dict[str, Any]],
) -> None:
    line = json.dumps({"timestamp": "2026-11-27T00:05:00", "level": "INFO", "request_id": "ab12"})
    assert make_app_json_parser()(line).fields["http"]["request"]["id"] == "ab12"
    access = json.dumps({"time_iso8601": "2026-11-27T00:05:00+00:00", "request_id": "ab12"})
    assert parse_nginx_json(access).fields["http"]["request"]["id"] == "ab12"
    assert query_of(objects, "erp-logs-request-trace") == "http.request.id:*"


def test_dashboard_panels_fit_the_grid_without_overlapping(objects: list[dict[str, Any]]) -> None:
    (board,) = by_type(objects, "dashboard")
    panels = json.loads(board["attributes"]["panelsJSON"])
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridData"]
        assert grid["i"] == panel["panelIndex"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 48  # Kibana's grid is 48 wide
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, panel["panelIndex"]
        cells |= area
    shown = {ref["id"] for ref in board["references"]}
    assert shown == {o["id"] for o in objects if o["type"] in ("visualization", "search")} - {
        "erp-logs-slow-requests",
        "erp-logs-request-trace",
    }


# --- logpipe.kibana_import: the pure parts --------------------------------------------


def test_multipart_body_parses_back_to_the_file() -> None:
    content = OBJECTS.read_bytes()
    content_type, body = multipart("saved-objects.ndjson", content)
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "saved-objects.ndjson"
    assert part.get_payload(decode=True) == content


def test_import_url_adds_the_space_and_refuses_what_could_leak_or_escape() -> None:
    assert (
        import_url("https://kb:5601/") == "https://kb:5601/api/saved_objects/_import?overwrite=true"
    )
    assert import_url("http://h/kibana", "ops-1") == (
        "http://h/kibana/s/ops-1/api/saved_objects/_import?overwrite=true"
    )
    for url, space in [
        ("ftp://h", None),
        ("https://user:secret@h", None),
        ("https://h", "../api"),
        ("https://h", "Ops"),
        ("https://h?x=1", None),
    ]:
        with pytest.raises(KibanaImportError) as caught:
            import_url(url, space)
        assert "secret" not in str(caught.value)


def test_auth_headers_for_api_key_or_basic_auth() -> None:
    assert auth_headers(Credentials(api_key="a2V5")) == {"Authorization": "ApiKey a2V5"}
    assert auth_headers(Credentials(username="elastic", password="pw")) == {
        "Authorization": "Basic ZWxhc3RpYzpwdw=="
    }
    assert auth_headers(Credentials()) == {}
    with pytest.raises(KibanaImportError, match="not both"):
        auth_headers(Credentials(api_key="k", username="u", password="p"))
    with pytest.raises(KibanaImportError, match="both a username and a password"):
        auth_headers(Credentials(username="u"))
    assert "pw" not in repr(Credentials(username="elastic", password="pw"))


def test_read_answer_reports_each_refused_object() -> None:
    answer = {
        "success": False,
        "successCount": 1,
        "errors": [
            {
                "id": "v1",
                "type": "visualization",
                "meta": {"title": "Levels"},
                "error": {
                    "type": "missing_references",
                    "references": [{"type": "index-pattern", "id": "x"}],
                },
            },
            {"id": "c", "type": "canvas", "meta": {}, "error": {"type": "unsupported_type"}},
        ],
    }
    result = read_answer(200, json.dumps(answer).encode())
    assert not result.success and result.success_count == 1
    assert result.problems[0] == "visualization v1 (Levels): missing references: index-pattern x"
    assert result.problems[1].startswith("canvas c: Kibana does not know this type")
    ok = read_answer(200, b'{"success":true,"successCount":11,"successResults":[]}')
    assert ok.success and ok.success_count == 11 and ok.problems == []


def test_read_answer_raises_kibanas_own_error_message() -> None:
    body = b'{"statusCode":401,"error":"Unauthorized","message":"unable to authenticate"}'
    with pytest.raises(KibanaImportError, match="HTTP 401 Unauthorized: unable to authenticate"):
        read_answer(401, body)
    with pytest.raises(KibanaImportError, match="not an answer from Kibana"):
        read_answer(200, b"<html>nginx</html>")


def test_describe_failure_keeps_one_line_of_an_unknown_error() -> None:
    failure = {
        "id": "d",
        "type": "dashboard",
        "error": {"type": "unknown", "statusCode": 500, "message": "a\nb"},
    }
    assert describe_failure(failure) == "dashboard d: unknown (500): a b"


def test_count_objects_names_the_bad_line() -> None:
    with pytest.raises(KibanaImportError, match="line 2 is not JSON"):
        count_objects(b'{"type":"search","id":"a","attributes":{}}\n{oops\n')
    with pytest.raises(KibanaImportError, match="no saved objects"):
        count_objects(b"\n")
