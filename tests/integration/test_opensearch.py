"""``kind: opensearch`` end to end against a real OpenSearch-compatible server (osmem-server).

The same promises as for Elasticsearch: every line searchable in its own daily
index under its deterministic id, nothing indexed twice, a refused document
dead-lettered, and a server that is down retried until it is up. Searches go
through opensearch-py's own client, as a person's would.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from logpipe.config import ElasticsearchConfig
from logpipe.config.models import RetentionConfig
from logpipe.devservers import free_port
from logpipe.pipeline import Pipeline, RunReport
from logpipe.sinks.elasticsearch.encode import document_id
from logpipe.sinks.elasticsearch.retention import RetentionKeeper, RetentionMode
from logpipe.sinks.opensearch import make_opensearch_client
from tests.integration.helpers import access_line, app_line, file_lines, load, write_pipeline
from tests.integration.opensearch_server import OpenSearchTestServer, search_all
from tests.integration.proxies import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def opensearch() -> Iterator[OpenSearchTestServer]:
    with OpenSearchTestServer() as server:
        yield server


def opensearch_pipeline(tmp_path: Path, log_dir: Path, prefix: str, *hosts: str) -> Path:
    """The integration tests' pipeline file, sending to ``hosts`` with ``kind: opensearch``."""
    path = write_pipeline(tmp_path, log_dir, prefix)
    listed = ", ".join(f'"{h}"' for h in hosts) if hosts else '"${ES_URL}"'
    text = path.read_text().replace(
        '    hosts: ["${ES_URL}"]', f"    kind: opensearch\n    hosts: [{listed}]"
    )
    path.write_text(text)
    return path


def write_workload(log_dir: Path) -> None:
    """App lines on both sides of midnight UTC, one that is not JSON, and nginx lines."""
    with (log_dir / "app.log").open("w") as fh:
        fh.write(app_line("2026-11-26T23:59:58.5", "INFO", "Daily input received", user_id=7))
        fh.write(app_line("2026-11-27T00:00:01", "ERROR", "Database error", request_id="r-2"))
        fh.write("this is not json at all\n")
    with (log_dir / "access.log").open("w") as fh:
        fh.write(access_line("10.1.2.3", "27/Nov/2026:06:59:59 +0700", "GET /a HTTP/1.1", 201))
        fh.write(access_line("10.1.2.4", "27/Nov/2026:07:00:01 +0700", "POST /b HTTP/1.1", 500))


def expected_ids(path: Path) -> set[str]:
    """The ids logpipe must give the lines of ``path`` (first generation of the file)."""
    return {document_id(line) for line in file_lines(path)}


def run_once(path: Path, env: dict[str, str], timeout: float = 60) -> RunReport:
    return asyncio.run(Pipeline(load(path, env), env).run_once(timeout=timeout))


def test_app_and_access_lines_land_in_their_daily_indices_under_their_ids_once(
    tmp_path: Path, log_dir: Path, opensearch: OpenSearchTestServer, index_prefix: str
) -> None:
    write_workload(log_dir)
    pipeline = opensearch_pipeline(tmp_path, log_dir, index_prefix)
    env = {"ES_URL": opensearch.url}
    report = run_once(pipeline, env)
    assert report.problems == []
    assert (report.read, report.created, report.dead_lettered) == (5, 5, 0)

    client = opensearch.client()
    found = search_all(client, index_prefix)
    # 23:59:58 UTC and 06:59:59+07:00 (= 23:59:59 UTC) belong to the 26th.
    assert Counter(h["_index"] for h in found) == {
        f"{index_prefix}-2026.11.26": 2,
        f"{index_prefix}-2026.11.27": 3,
    }
    assert {h["_id"] for h in found} == expected_ids(log_dir / "app.log") | expected_ids(
        log_dir / "access.log"
    )
    by_message = {h["_source"]["message"]: h["_source"] for h in found}
    assert by_message["Database error"]["log"]["level"] == "error"
    assert "_jsonparsefailure" in by_message["this is not json at all"]["tags"]
    statuses = sorted(
        d["http"]["response"]["status_code"] for d in by_message.values() if "url" in d
    )
    assert statuses == [201, 500]

    # Checkpoints lost: every line is read again, and the server answers 409 for each.
    (tmp_path / "data" / "checkpoints.json").unlink()
    again = run_once(pipeline, env)
    assert (again.problems, again.read, again.created, again.duplicates) == ([], 5, 0, 5)
    assert len(search_all(client, index_prefix)) == 5


def test_installed_template_maps_the_fields_kibana_searches_on(
    tmp_path: Path, log_dir: Path, opensearch: OpenSearchTestServer, index_prefix: str
) -> None:
    write_workload(log_dir)
    assert (
        run_once(
            opensearch_pipeline(tmp_path, log_dir, index_prefix), {"ES_URL": opensearch.url}
        ).problems
        == []
    )
    client = opensearch.client()
    template = client.indices.get_index_template(name=index_prefix)
    (installed,) = template["index_templates"]
    assert installed["index_template"]["_meta"]["managed_by"] == "logpipe"
    mapping = client.indices.get_mapping(index=f"{index_prefix}-2026.11.27")
    props = mapping[f"{index_prefix}-2026.11.27"]["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    errors = search_all(client, index_prefix, {"term": {"log.level": "error"}})
    assert [h["_source"]["message"] for h in errors] == ["Database error"]
    five_hundreds = search_all(
        client, index_prefix, {"range": {"http.response.status_code": {"gte": 500}}}
    )
    assert [h["_source"]["url"]["path"] for h in five_hundreds] == ["/b"]


def test_document_refused_even_in_safe_form_is_dead_lettered(
    tmp_path: Path, log_dir: Path, opensearch: OpenSearchTestServer, index_prefix: str
) -> None:
    client = opensearch.client()
    # An index someone created by hand with a strict mapping refuses every field we add.
    client.indices.create(
        index=f"{index_prefix}-2026.11.27",
        body={"mappings": {"dynamic": "strict", "properties": {"message": {"type": "text"}}}},
    )
    with (log_dir / "app.log").open("w") as fh:
        fh.write(app_line("2026-11-26T02:00:00", "INFO", "accepted"))
        fh.write(app_line("2026-11-27T02:00:00", "INFO", "refused"))
    report = run_once(
        opensearch_pipeline(tmp_path, log_dir, index_prefix), {"ES_URL": opensearch.url}
    )
    assert (report.created, report.dead_lettered) == (1, 1)
    (letter,) = (tmp_path / "data" / "dead_letters.ndjson").read_text().splitlines()
    assert "strict_dynamic_mapping_exception" in letter and '"refused"' in letter
    assert [h["_source"]["message"] for h in search_all(client, index_prefix)] == ["accepted"]


async def test_server_down_at_start_is_retried_and_everything_delivered_once_it_is_up(
    tmp_path: Path, log_dir: Path, index_prefix: str
) -> None:
    write_workload(log_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pipeline = Pipeline(load(opensearch_pipeline(tmp_path, log_dir, index_prefix, url), {}), {})
    run = asyncio.create_task(pipeline.run_once(timeout=60))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while pipeline.sink.stats.request_errors["ConnectionError"] < 2:
        assert loop.time() < deadline and not run.done(), "no connection attempts seen"
        await asyncio.sleep(0.05)
    server = OpenSearchTestServer(port)
    await asyncio.to_thread(server.start)
    try:
        report = await run
        assert (report.problems, report.created) == ([], 5)
        found = await asyncio.to_thread(search_all, server.client(), index_prefix)
        assert len(found) == 5
    finally:
        await asyncio.to_thread(server.stop)


def test_a_dead_host_is_failed_over_without_the_sink_seeing_an_error(
    tmp_path: Path, log_dir: Path, opensearch: OpenSearchTestServer, index_prefix: str
) -> None:
    write_workload(log_dir)
    dead = f"http://127.0.0.1:{free_port()}"
    path = opensearch_pipeline(tmp_path, log_dir, index_prefix, dead, opensearch.url)

    async def scenario() -> tuple[RunReport, int]:
        pipeline = Pipeline(load(path, {}), {})
        report = await pipeline.run_once(timeout=60)
        return report, sum(pipeline.sink.stats.request_errors.values())

    report, sink_errors = asyncio.run(scenario())
    # Round robin over both hosts for info, template and bulk: the dead one was
    # met, and each time the request went on to the live one at once.
    assert (report.problems, report.created, sink_errors) == ([], 5, 0)
    assert len(search_all(opensearch.client(), index_prefix)) == 5


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="logpipe test CA")


def tls_proxy(upstream: str, ca: trustme.CA, *names: str) -> TcpProxy:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return TcpProxy(int(upstream.rsplit(":", 1)[1]), tls=context)


def test_tls_is_verified_against_the_given_ca_refused_for_another_name_unless_told_not_to(
    tmp_path: Path,
    log_dir: Path,
    opensearch: OpenSearchTestServer,
    index_prefix: str,
    ca: trustme.CA,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    (log_dir / "app.log").write_text(app_line("2026-11-27T08:00:00", "INFO", "Shift started"))
    with tls_proxy(opensearch.url, ca, "elsewhere.example") as wrong:
        env = {"ES_CA_CERT": str(ca_file)}
        refused = run_once(
            opensearch_pipeline(tmp_path, log_dir, index_prefix, wrong.url), env, timeout=2
        )
        assert refused.created == 0
        (problem,) = refused.problems
        assert "certificate verify failed" in problem
        assert wrong.counts.connections == 0
    with tls_proxy(opensearch.url, ca, "127.0.0.1") as proxy:
        path = opensearch_pipeline(tmp_path, log_dir, index_prefix, proxy.url)
        report = run_once(path, {"ES_CA_CERT": str(ca_file)})
        assert (report.problems, report.created) == ([], 1)
        assert proxy.counts.connections >= 1
    assert len(search_all(opensearch.client(), index_prefix)) == 1

    # verify_certs: false gets through the wrong name. Regression: urllib3 sets the
    # context's verify_mode from the pool's cert_reqs at every connect, which
    # opensearch-py leaves unset (read as CERT_REQUIRED) when given a context.
    with (log_dir / "app.log").open("a") as fh:
        fh.write(app_line("2026-11-27T08:00:01", "INFO", "Shift goes on"))
    with tls_proxy(opensearch.url, ca, "elsewhere.example") as wrong:
        path = opensearch_pipeline(tmp_path, log_dir, index_prefix, wrong.url)
        unverified = "    kind: opensearch\n    verify_certs: false\n"
        path.write_text(path.read_text().replace("    kind: opensearch\n", unverified))
        report = run_once(path, {})
        assert (report.problems, report.created) == ([], 1)
    assert len(search_all(opensearch.client(), index_prefix)) == 2


async def test_retention_deletes_expired_daily_indices_itself_on_opensearch(
    opensearch: OpenSearchTestServer, index_prefix: str
) -> None:
    client = opensearch.client()
    names = [f"{index_prefix}-2026.11.{day}" for day in (20, 24, 27)] + [f"{index_prefix}-keep"]
    for name in names:
        await asyncio.to_thread(client.indices.create, index=name)
    config = ElasticsearchConfig(
        kind="opensearch",
        hosts=[opensearch.url],
        index_prefix=index_prefix,
        retention=RetentionConfig(days=5),
    )
    adapter = make_opensearch_client(config)
    try:
        keeper = RetentionKeeper(adapter, config)
        deleted = await keeper.check(datetime(2026, 11, 28, 12, tzinfo=UTC))
    finally:
        await adapter.close()
    # No ILM on OpenSearch: logpipe deletes what is older than 5 days, and only that.
    assert keeper.stats.mode is RetentionMode.DELETE
    assert deleted == [f"{index_prefix}-2026.11.20"]
    left = await asyncio.to_thread(client.indices.get, index=f"{index_prefix}-*")
    assert sorted(left) == sorted(names[1:])
