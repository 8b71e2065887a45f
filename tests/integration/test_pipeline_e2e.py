"""End to end against a real Elasticsearch-compatible server and a real SMTP server.

Files are written to a temp dir, ``Pipeline.run_once`` ships them, and the
assertions are searches against the server — the same searches people run in
Kibana — and e-mails the SMTP server actually received.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from logpipe.devservers.smtp import RecordingSMTP
from logpipe.pipeline import Pipeline, RunReport
from tests.integration.helpers import (
    EsTarget,
    access_line,
    app_line,
    es_client,
    hits,
    load,
    search,
    write_pipeline,
)

pytestmark = pytest.mark.integration

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/app/services/production.py", line 41, in record_input\n'
    "    await session.commit()\n"
    "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) server closed the connection"
)


def write_workload(log_dir: Path) -> None:
    """Lines on both sides of midnight UTC, one ERROR with a traceback, one bad line."""
    with (log_dir / "app.log").open("w") as fh:
        fh.write(
            app_line(
                "2026-11-26T23:59:58.500000",
                "INFO",
                "Daily input received",
                request_id="req-1",
                user_id=7,
                spk_id="SPK-1",
                quantity=12,
            )
        )
        fh.write(
            app_line(
                "2026-11-27T00:00:01.250000",
                "ERROR",
                "Database error recording daily input",
                request_id="req-2",
                user_id=7,
                exception=TRACEBACK,
                error_type="OperationalError",
            )
        )
        fh.write(
            app_line(
                "2026-11-27T00:00:02",
                "WARNING",
                "Daily input validation failed",
                request_id="req-3",
                user_id=9,
            )
        )
        fh.write("this is not json at all\n")
    with (log_dir / "access.log").open("w") as fh:
        fh.write(
            access_line(
                "10.1.2.3",
                "27/Nov/2026:06:59:59 +0700",
                "POST /api/production/daily-input HTTP/1.1",
                201,
            )
        )
        fh.write(
            access_line(
                "10.1.2.4",
                "27/Nov/2026:07:00:01 +0700",
                "POST /api/production/daily-input?retry=1 HTTP/1.1",
                500,
            )
        )
        fh.write(
            access_line(
                "192.168.7.9", "27/Nov/2026:07:00:03 +0700", "GET /api/health HTTP/1.1", 200
            )
        )


def run_once(path: Path, env: dict[str, str]) -> RunReport:
    return asyncio.run(Pipeline(load(path, env), env).run_once(timeout=120))


def test_every_line_is_searchable_in_its_own_daily_index(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    write_workload(log_dir)
    report = run_once(write_pipeline(tmp_path, log_dir, index_prefix), es_server.env)
    assert report.problems == []
    assert (report.read, report.created) == (7, 7)

    client = es_client(es_server.env)
    result = search(client, index_prefix)
    assert result["hits"]["total"]["value"] == 7
    by_index = Counter(h["_index"] for h in hits(result))
    # 23:59:58 UTC and 06:59:59+07:00 (= 23:59:59 UTC) belong to the 26th.
    assert by_index == {f"{index_prefix}-2026.11.26": 2, f"{index_prefix}-2026.11.27": 5}
    docs = [h["_source"] for h in hits(result)]
    bad = [d["message"] for d in docs if "_jsonparsefailure" in d.get("tags", [])]
    assert bad == ["this is not json at all"]
    for h in hits(result):
        doc = h["_source"]
        assert doc["log"]["file"]["path"].startswith(str(log_dir))
        assert isinstance(doc["log"]["offset"], int)
        assert doc["event"]["dataset"] in {"erp.application", "nginx.access"}
        assert doc["service"]["environment"] == "production"
        assert doc["cloud"]["region"] == "asia-southeast"
        assert doc["host"]["name"]
        assert doc["event"]["ingested"]


def test_lines_orjson_reads_but_cannot_write_are_shipped_tagged_and_the_run_goes_on(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    # Regression: nesting deeper than 254 levels, or a lone surrogate read by the
    # lenient JSON path, raised out of the per-line step and stopped the pipeline.
    deep, odd = (app_line(f"2026-11-27T10:00:0{n}", "INFO", "m")[:-2] for n in (1, 2))
    too_deep = deep + ', "x": ' + "[" * 300 + "]" * 300 + "}\n"
    surrogate = odd + ', "n": NaN, "s": "\\ud800"}\n'
    with (log_dir / "app.log").open("w") as fh:
        fh.write(app_line("2026-11-27T10:00:00", "INFO", "before"))
        fh.write(too_deep)
        fh.write(surrogate)
        fh.write(app_line("2026-11-27T10:00:03", "INFO", "after"))
    report = run_once(write_pipeline(tmp_path, log_dir, index_prefix), es_server.env)

    assert report.problems == []
    assert (report.read, report.created) == (4, 4)
    docs = [h["_source"] for h in hits(search(es_client(es_server.env), index_prefix))]
    assert sorted(d["message"] for d in docs if "_jsonencodefailure" in d.get("tags", [])) == [
        too_deep.rstrip("\n"),
        surrogate.rstrip("\n"),
    ]
    assert {d["message"] for d in docs if "tags" not in d} == {"before", "after"}


def test_kibana_searches_work_against_the_installed_mappings(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    write_workload(log_dir)
    assert run_once(write_pipeline(tmp_path, log_dir, index_prefix), es_server.env).problems == []
    client = es_client(es_server.env)

    errors = hits(search(client, index_prefix, {"term": {"log.level": "error"}}))
    assert [d["_source"]["http"]["request"]["id"] for d in errors] == ["req-2"]
    assert "OperationalError" in errors[0]["_source"]["error"]["stack_trace"]

    full_text = hits(search(client, index_prefix, {"match": {"message": "validation"}}))
    assert [d["_source"]["message"] for d in full_text] == ["Daily input validation failed"]

    after_midnight = search(
        client,
        index_prefix,
        {"range": {"@timestamp": {"gte": "2026-11-27T00:00:00Z", "lt": "2026-11-27T00:00:02.5Z"}}},
    )
    # error, warning, the 07:00:01+07 access line, and the undated bad line, which takes
    # the time of the warning before it (00:00:02).
    assert after_midnight["hits"]["total"]["value"] == 4

    statuses = search(
        client,
        index_prefix,
        size=0,
        aggs={"status": {"terms": {"field": "http.response.status_code"}}},
    )
    buckets = {b["key"]: b["doc_count"] for b in statuses["aggregations"]["status"]["buckets"]}
    assert buckets == {200: 1, 201: 1, 500: 1}

    private = hits(
        search(
            client,
            index_prefix,
            {"range": {"source.ip": {"gte": "10.0.0.0", "lte": "10.255.255.255"}}},
        )
    )
    assert sorted(d["_source"]["source"]["ip"] for d in private) == ["10.1.2.3", "10.1.2.4"]

    mapping = client.indices.get_mapping(index=f"{index_prefix}-*").body
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["@timestamp"]["type"] == "date"


def test_second_run_adds_nothing_and_lost_checkpoints_only_find_duplicates(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    write_workload(log_dir)
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    assert run_once(pipeline, es_server.env).created == 7

    again = run_once(pipeline, es_server.env)
    assert (again.read, again.created, again.problems) == (0, 0, [])

    # Without checkpoints every line is re-read; deterministic ids make each a 409.
    (tmp_path / "data" / "checkpoints.json").unlink()
    replay = run_once(pipeline, es_server.env)
    assert (replay.read, replay.created, replay.duplicates) == (7, 0, 7)
    assert search(es_client(es_server.env), index_prefix)["hits"]["total"]["value"] == 7


def test_restart_resumes_after_last_acknowledged_line_without_loss_or_duplicates(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    write_workload(log_dir)
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    assert run_once(pipeline, es_server.env).created == 7
    with (log_dir / "app.log").open("a") as fh:
        for i in range(50):
            fh.write(app_line(f"2026-11-27T00:01:{i:02d}", "INFO", f"later line {i}"))
        fh.write('{"timestamp": "2026-11-27T00:02:00", "level": "INFO", "mess')  # no newline yet

    second = run_once(pipeline, es_server.env)
    assert (second.read, second.created, second.duplicates) == (50, 50, 0)
    with (log_dir / "app.log").open("a") as fh:
        fh.write('age": "completed later"}\n')
    third = run_once(pipeline, es_server.env)
    assert (third.read, third.created) == (1, 1)

    result = search(es_client(es_server.env), index_prefix)
    assert result["hits"]["total"]["value"] == 58
    messages = Counter(h["_source"]["message"] for h in hits(result))
    assert messages["completed later"] == 1
    assert all(count == 1 for msg, count in messages.items() if msg.startswith("later line"))


def test_error_line_produces_one_email_at_the_smtp_server(
    tmp_path: Path,
    log_dir: Path,
    es_server: EsTarget,
    index_prefix: str,
    smtp_server: RecordingSMTP,
) -> None:
    write_workload(log_dir)
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix, smtp_port=smtp_server.port)
    report = run_once(pipeline, es_server.env)
    assert (report.problems, report.alerts_sent) == ([], 1)

    (received,) = smtp_server.messages
    assert received.rcpt_tos == ("ops-team@example.com",)
    message = received.parsed()
    assert message["Subject"] == "Critical Error: Database error recording daily input"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "req-2" in text and "sqlalchemy.exc.OperationalError" in text

    # A replay after lost checkpoints finds only duplicates and e-mails nobody again.
    (tmp_path / "data" / "checkpoints.json").unlink()
    assert run_once(pipeline, es_server.env).alerts_sent == 0
    assert len(smtp_server.messages) == 1


def test_mapping_conflict_is_reindexed_in_safe_form_and_stays_searchable(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    # `quantity` is first mapped as a number (dynamic mapping), then sent as an object.
    with (log_dir / "app.log").open("w") as fh:
        fh.write(app_line("2026-11-27T01:00:00", "INFO", "first", quantity=3))
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    assert run_once(pipeline, es_server.env).problems == []
    with (log_dir / "app.log").open("a") as fh:
        fh.write(app_line("2026-11-27T01:00:01", "INFO", "second", quantity={"a": 1}))
        fh.write(app_line("2026-11-27T01:00:02", "INFO", "third", quantity=4))

    report = run_once(pipeline, es_server.env)
    assert (report.created, report.dead_lettered, report.problems) == (2, 0, [])
    client = es_client(es_server.env)
    (repaired,) = hits(search(client, index_prefix, {"term": {"tags": "_mapping_conflict"}}))
    doc = repaired["_source"]
    assert doc["message"] == "second"
    assert "quantity" not in doc["app"]
    (conflict,) = doc["logpipe"]["conflicts"]
    assert (conflict["field"], conflict["value"]) == ("app.quantity", '{"a":1}')
    found = hits(
        search(client, index_prefix, {"term": {"logpipe.conflicts.field": "app.quantity"}})
    )
    assert len(found) == 1


def test_document_refused_even_in_safe_form_is_dead_lettered_then_replayed_once_fixed(
    tmp_path: Path, log_dir: Path, es_server: EsTarget, index_prefix: str
) -> None:
    client = es_client(es_server.env)
    strict = f"{index_prefix}-2026.11.27"
    # An index someone created by hand with a strict mapping refuses every field we add.
    client.indices.create(
        index=strict, mappings={"dynamic": "strict", "properties": {"message": {"type": "text"}}}
    )
    with (log_dir / "app.log").open("w") as fh:
        fh.write(app_line("2026-11-27T02:00:00", "ERROR", "refused one", request_id="r-1"))
        fh.write(app_line("2026-11-27T02:00:01", "INFO", "refused two"))
    pipeline = write_pipeline(tmp_path, log_dir, index_prefix)
    report = run_once(pipeline, es_server.env)
    assert (report.created, report.dead_lettered) == (0, 2)
    assert any("dead-lettered" in p for p in report.problems)
    letters = (tmp_path / "data" / "dead_letters.ndjson").read_text().splitlines()
    assert len(letters) == 2 and "strict_dynamic_mapping_exception" in letters[0]
    # The checkpoint moved past the dead letters: the next run has nothing to do.
    assert run_once(pipeline, es_server.env).read == 0

    listed = run_cli("dlq", "list", str(pipeline), env=es_server.env)
    assert "2 dead letters" in listed.stdout
    still_broken = run_cli("dlq", "replay", str(pipeline), env=es_server.env)
    assert still_broken.returncode == 1 and "2 dead-lettered again" in still_broken.stdout

    client.indices.delete(index=strict)  # the cause, fixed
    fixed = run_cli("dlq", "replay", str(pipeline), env=es_server.env)
    assert fixed.returncode == 0, fixed.stderr + fixed.stdout
    assert "replayed 2: 2 indexed" in fixed.stdout
    assert not (tmp_path / "data" / "dead_letters.ndjson").exists()
    again = run_cli("dlq", "replay", str(pipeline), env=es_server.env)
    assert "replayed 0" in again.stdout
    messages = sorted(h["_source"]["message"] for h in hits(search(client, index_prefix)))
    assert messages == ["refused one", "refused two"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logpipe", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
