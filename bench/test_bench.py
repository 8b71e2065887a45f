"""Checks that keep the benchmark honest (no timings asserted here).

    .venv/bin/pytest bench/test_bench.py

- the workload is deterministic and shaped as documented;
- the null server satisfies the official Elasticsearch client;
- the baseline writes the same ECS field names as logpipe for the same lines,
  so "logpipe vs baseline" compares the same output.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from baseline import documents
from servers import request
from workload import access_lines, app_lines, write_workload

from logpipe.config import EnrichConfig, InputConfig
from logpipe.devservers import free_port
from logpipe.enrich.static import Enricher, static_fields
from logpipe.event import Line
from logpipe.process import LineProcessor
from logpipe.sinks.elasticsearch.encode import IndexNamer

BENCH = Path(__file__).resolve().parent


def test_workload_is_deterministic_and_realistic(tmp_path: Path) -> None:
    first = write_workload(tmp_path / "a", 2000)
    second = write_workload(tmp_path / "b", 2000)
    assert first.app_log.read_bytes() == second.app_log.read_bytes()
    assert first.access_log.read_bytes() == second.access_log.read_bytes()
    records = [orjson.loads(line) for line in app_lines(5000)]
    errors = [r for r in records if r["level"] == "ERROR"]
    assert 20 <= len(errors) <= 80  # about 1%
    assert all(r["exception"].startswith("Traceback (most recent call last):") for r in errors)
    assert all("exception" not in r for r in records if r["level"] != "ERROR")
    assert list(records[0])[:7] == [
        "timestamp", "level", "logger", "message", "module", "function", "line",
    ]  # fmt: skip
    assert all('+0700] "' in line for line in access_lines(500))


def test_empty_workload_writes_empty_files(tmp_path: Path) -> None:
    empty = write_workload(tmp_path, 0)
    assert empty.app_log.read_bytes() == empty.access_log.read_bytes() == b""


@pytest.fixture
def null_es_url() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(BENCH / "null_es.py"), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()  # "null-es listening on ..." once bound
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_null_server_satisfies_the_official_client(null_es_url: str) -> None:
    from elasticsearch import Elasticsearch, NotFoundError

    with Elasticsearch(null_es_url) as client:
        assert client.info()["version"]["number"] == "8.15.3"
        with pytest.raises(NotFoundError):
            client.indices.get_index_template(name="bench")
        assert client.indices.put_index_template(name="bench", index_patterns=["b-*"])[
            "acknowledged"
        ]
        operations: list[dict[str, Any]] = [
            {"create": {"_index": "b-1", "_id": "x"}},
            {"a": 1},
            {"index": {}},
            {},
        ]
        response = client.bulk(operations=operations, index="b-2")
    assert not response["errors"]
    assert response["items"] == [
        {"create": _created("b-1", "x")},
        {"index": _created("b-2", "null-0")},
    ]
    assert orjson.loads(request(null_es_url, "GET", "/_null/stats")[1])["docs"] == 2


def _created(index: str, doc_id: str) -> dict[str, Any]:
    result = {"_index": index, "_id": doc_id, "_version": 1, "result": "created"}
    return {**result, "status": 201, "_seq_no": 0, "_primary_term": 1}


def _paths(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        out |= _paths(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


@pytest.mark.parametrize(
    ("kind", "parser", "dataset"),
    [("app", "app_json", "erp.application"), ("access", "nginx", "nginx.access")],
)
def test_baseline_writes_the_fields_logpipe_writes(
    tmp_path: Path, kind: str, parser: str, dataset: str
) -> None:
    workload = write_workload(tmp_path, 1000)
    path = workload.app_log if kind == "app" else workload.access_log
    enrich = EnrichConfig(fields={"service.environment": "production", "cloud.region": "x"})
    process = LineProcessor(
        InputConfig.model_validate({"paths": [str(path)], "parser": parser, "dataset": dataset}),
        Enricher(static_fields(enrich, {})),
        IndexNamer("bench"),
    )
    theirs: set[str] = set()
    for raw in path.read_bytes().splitlines():
        doc = process(Line("id", 0, str(path), 0, len(raw) + 1, raw, kind)).document()
        assert "tags" not in doc, raw
        theirs |= _paths(doc)
    ours: set[str] = set()
    for _, doc in documents(path, kind, "bench"):
        doc["event"]["ingested"] = "set per batch"
        assert "tags" not in doc
        ours |= _paths(doc)
    assert ours == theirs
